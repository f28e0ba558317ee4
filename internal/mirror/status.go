package mirror

import (
	"context"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/api"
	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
)

// StaleAfter is how old a mirror's last sync may be before it is stale.
const StaleAfter = 24 * time.Hour

// Mirror is one pull mirror in Gitea as `raibid mirror list` and GET /mirrors
// show it: the API's type, so the two never drift apart.
type Mirror = api.Mirror

// List reads the mirrors of cfg from Gitea: every pull mirror under the
// owners that org entries mirror into, and each single entry's target. A
// mirror whose last sync is older than StaleAfter (or never) is stale.
func List(ctx context.Context, cfg *Config, gt Gitea, now time.Time) ([]Mirror, error) {
	seen := map[string]bool{}
	var out []Mirror
	addRepo := func(r *gitea.Repo) {
		key := strings.ToLower(r.FullName)
		if seen[key] {
			return
		}
		seen[key] = true
		out = append(out, Mirror{Target: r.FullName, Source: r.OriginalURL, LastSync: r.MirrorUpdated,
			Interval: r.MirrorInterval, Stale: r.MirrorUpdated.IsZero() || now.Sub(r.MirrorUpdated) > StaleAfter})
	}
	owners := map[string]bool{}
	for _, e := range cfg.Entries {
		if e.Type != TypeOrg || owners[strings.ToLower(e.TargetOwner)] {
			continue
		}
		owners[strings.ToLower(e.TargetOwner)] = true
		repos, err := gt.ListRepos(ctx, e.TargetOwner)
		if errors.Is(err, gitea.ErrNotFound) {
			continue // the owner does not exist yet: nothing mirrored there
		}
		if err != nil {
			return nil, err
		}
		for i := range repos {
			if repos[i].Mirror {
				addRepo(&repos[i])
			}
		}
	}
	for _, e := range cfg.Entries {
		if e.Type != TypeSingle || seen[strings.ToLower(e.TargetOwner+"/"+e.TargetName)] {
			continue
		}
		r, err := gt.GetRepo(ctx, e.TargetOwner, e.TargetName)
		switch {
		case errors.Is(err, gitea.ErrNotFound):
			out = append(out, Mirror{Target: e.TargetOwner + "/" + e.TargetName, Source: "https://github.com/" + e.Source, Missing: true, Stale: true})
			seen[strings.ToLower(e.TargetOwner+"/"+e.TargetName)] = true
		case err != nil:
			return nil, err
		default:
			addRepo(r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i].Target) < strings.ToLower(out[j].Target) })
	return out, nil
}

// TargetOf maps a pushed GitHub repository (owner/name) to its Gitea mirror
// under cfg: a single entry's target, or an org entry's owner when its
// patterns select the name. ok is false for a repository cfg does not mirror.
func (cfg *Config) TargetOf(source string) (target string, ok bool) {
	owner, name, found := strings.Cut(source, "/")
	if !found {
		return "", false
	}
	for _, e := range cfg.Entries {
		if e.Type == TypeSingle && strings.EqualFold(e.Source, source) {
			return e.TargetOwner + "/" + e.TargetName, true
		}
	}
	for _, e := range cfg.Entries {
		if e.Type == TypeOrg && strings.EqualFold(e.Source, owner) {
			if sel, _ := e.Selects(name); sel {
				return e.TargetOwner + "/" + name, true
			}
		}
	}
	return "", false
}

// Mirrors reports whether target (owner/name in Gitea) is one of cfg's mirrors.
func (cfg *Config) Mirrors(target string) bool {
	owner, name, found := strings.Cut(target, "/")
	if !found {
		return false
	}
	for _, e := range cfg.Entries {
		switch {
		case e.Type == TypeSingle && strings.EqualFold(e.TargetOwner+"/"+e.TargetName, target):
			return true
		case e.Type == TypeOrg && strings.EqualFold(e.TargetOwner, owner):
			if sel, _ := e.Selects(name); sel {
				return true
			}
		}
	}
	return false
}
