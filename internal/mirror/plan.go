package mirror

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
	"github.com/raibid-labs/raibid-ci/internal/forge/github"
)

// Action is what a sync would do for one repository.
type Action string

const (
	// ActionCreate: missing in Gitea; sync migrates it.
	ActionCreate Action = "create"
	// ActionExists: already a mirror of this source; nothing to do.
	ActionExists Action = "exists"
	// ActionExcluded: the org entry's include/exclude patterns leave it out.
	ActionExcluded Action = "excluded"
	// ActionConflict: the target name is taken by something else (a
	// repository that is not this mirror, or a failed migration's leftover).
	ActionConflict Action = "conflict"
	// ActionError: the source could not be read (missing, no access).
	ActionError Action = "error"
)

// GitHub is what the planner needs of GitHub.
type GitHub interface {
	GetRepo(ctx context.Context, owner, name string) (*github.Repo, error)
	ListRepos(ctx context.Context, owner string) ([]github.Repo, error)
}

// Gitea is what the planner, sync and status need of Gitea.
type Gitea interface {
	GetRepo(ctx context.Context, owner, name string) (*gitea.Repo, error)
	ListRepos(ctx context.Context, owner string) ([]gitea.Repo, error)
	Migrate(ctx context.Context, opts gitea.MigrateOptions) (*gitea.Repo, error)
	MirrorSync(ctx context.Context, owner, name string) error
	DeleteRepo(ctx context.Context, owner, name string) error
	OwnerExists(ctx context.Context, owner string) (bool, error)
	CreateOrg(ctx context.Context, name string) error
}

var (
	_ GitHub = (*github.Client)(nil)
	_ Gitea  = (*gitea.Client)(nil)
)

// Item is one repository of a plan.
type Item struct {
	Entry  int    `json:"entry"`
	Source string `json:"source"` // owner/name on GitHub
	Target string `json:"target"` // owner/name in Gitea
	Action Action `json:"action"`
	Reason string `json:"reason,omitempty"`
	// Leftover: the conflict is an empty repository left by a failed
	// migration, which sync --repair may delete and migrate again.
	Leftover bool `json:"leftover,omitempty"`
	// OwnerMissing: the target owner does not exist in Gitea; sync reports
	// it, or with CreateOwners creates the organisation first.
	OwnerMissing bool `json:"owner_missing,omitempty"`

	cloneURL    string
	description string
	private     bool
	interval    string
}

// TargetParts splits Target into owner and name.
func (it *Item) TargetParts() (owner, name string) {
	owner, name, _ = strings.Cut(it.Target, "/")
	return owner, name
}

// Plan compares what cfg asks for with what GitHub and Gitea hold. It
// changes nothing. An unreadable GitHub organisation fails the plan; one
// missing single repository is an error item.
func Plan(ctx context.Context, cfg *Config, gh GitHub, gt Gitea) ([]Item, error) {
	var items []Item
	planned := map[string]int{} // lower-case target → index in items
	owners := map[string]bool{} // lower-case Gitea owner → exists
	ownerExists := func(owner string) (bool, error) {
		key := strings.ToLower(owner)
		if ok, known := owners[key]; known {
			return ok, nil
		}
		ok, err := gt.OwnerExists(ctx, owner)
		if err == nil {
			owners[key] = ok
		}
		return ok, err
	}
	add := func(it Item) error {
		if it.Action == ActionExcluded || it.Action == ActionError {
			items = append(items, it)
			return nil
		}
		key := strings.ToLower(it.Target)
		if first, dup := planned[key]; dup {
			it.Action, it.Reason = ActionConflict, fmt.Sprintf("also the target of %s (mirrors[%d])", items[first].Source, items[first].Entry)
			items = append(items, it)
			return nil
		}
		if err := checkTarget(ctx, gt, &it); err != nil {
			return err
		}
		if it.Action == ActionCreate {
			owner, _ := it.TargetParts()
			ok, err := ownerExists(owner)
			if err != nil {
				return err
			}
			if !ok {
				it.OwnerMissing = true
				it.Reason = "Gitea has no user or organisation " + owner + ": create it, or run sync --create-owners to make it an organisation"
			}
		}
		planned[key] = len(items)
		items = append(items, it)
		return nil
	}
	for i := range cfg.Entries {
		e := &cfg.Entries[i]
		switch e.Type {
		case TypeSingle:
			owner, name, _ := strings.Cut(e.Source, "/")
			it := Item{Entry: e.Index, Source: e.Source, Target: e.TargetOwner + "/" + e.TargetName}
			repo, err := gh.GetRepo(ctx, owner, name)
			switch {
			case errors.Is(err, github.ErrNotFound):
				it.Action, it.Reason = ActionError, "not found on GitHub (or the token cannot see it)"
			case err != nil:
				return nil, fmt.Errorf("%s: %w", e.Name(), err)
			default:
				it.fill(e, repo)
			}
			if err := add(it); err != nil {
				return nil, err
			}
		case TypeOrg:
			repos, err := gh.ListRepos(ctx, e.Source)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", e.Name(), err)
			}
			for _, r := range repos {
				it := Item{Entry: e.Index, Source: r.FullName, Target: e.TargetOwner + "/" + r.Name}
				if ok, why := e.Selects(r.Name); !ok {
					it.Action, it.Reason = ActionExcluded, why
				} else {
					it.fill(e, &r)
				}
				if err := add(it); err != nil {
					return nil, err
				}
			}
		}
	}
	return items, nil
}

func (it *Item) fill(e *Entry, r *github.Repo) {
	it.cloneURL, it.description = r.CloneURL, r.Description
	// A private source stays private; the entry can make a public one private.
	it.private = e.Private || r.Private
	it.interval = e.Interval.String()
}

// checkTarget sets the action of an item whose source exists, from what
// Gitea holds under its target name.
func checkTarget(ctx context.Context, gt Gitea, it *Item) error {
	owner, name := it.TargetParts()
	repo, err := gt.GetRepo(ctx, owner, name)
	switch {
	case errors.Is(err, gitea.ErrNotFound):
		it.Action = ActionCreate
		return nil
	case err != nil:
		return err
	}
	classify(it, repo)
	return nil
}

// classify decides exists or conflict for a target that is already in Gitea.
// Only one shape is raibid's own failed migration, repairable: what Gitea
// (1.27) leaves when a mirror migration fails — a mirror, empty, with no
// mirror interval, never synced, of this very source. Anything else that is
// not this mirror is a conflict to report, never deleted: an empty
// repository someone created as a placeholder is theirs.
func classify(it *Item, repo *gitea.Repo) {
	switch {
	case isFailedMigration(repo, it.cloneURL):
		it.Action, it.Leftover = ActionConflict, true
		it.Reason = "a failed migration of this source left an empty mirror that never synced; sync --repair deletes it and migrates again"
	case repo.Mirror && (repo.OriginalURL == "" || sameRepoURL(repo.OriginalURL, it.cloneURL)):
		it.Action = ActionExists
	case repo.Mirror:
		it.Action, it.Reason = ActionConflict, "a mirror of another source ("+repo.OriginalURL+") has this name"
	case repo.Empty:
		it.Action, it.Reason = ActionConflict, "an empty repository that is not a mirror has this name (raibid did not create it and will not delete it)"
	default:
		it.Action, it.Reason = ActionConflict, "a repository that is not a mirror has this name"
	}
}

// isFailedMigration recognises the leftover of a failed mirror migration of
// cloneURL, and nothing else.
func isFailedMigration(repo *gitea.Repo, cloneURL string) bool {
	return repo.Mirror && repo.Empty && repo.MirrorInterval == "" && repo.MirrorUpdated.Year() <= 1 &&
		repo.OriginalURL != "" && sameRepoURL(repo.OriginalURL, cloneURL)
}

// sameRepoURL compares clone URLs loosely: scheme, case, ".git" and a
// trailing slash do not matter.
func sameRepoURL(a, b string) bool {
	norm := func(s string) string {
		s = strings.ToLower(strings.TrimSpace(s))
		if i := strings.Index(s, "://"); i >= 0 {
			s = s[i+3:]
		}
		if i := strings.Index(s, "@"); i >= 0 && i < strings.Index(s+"/", "/") {
			s = s[i+1:] // credentials in the URL
		}
		return strings.TrimSuffix(strings.TrimSuffix(s, "/"), ".git")
	}
	return norm(a) == norm(b)
}
