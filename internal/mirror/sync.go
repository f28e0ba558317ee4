package mirror

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
)

// Result actions that only a sync produces.
const (
	// ActionCreated: migrated now.
	ActionCreated Action = "created"
	// ActionRepaired: a failed migration's leftover was deleted and migrated again.
	ActionRepaired Action = "repaired"
	// ActionFailed: the migration failed; Reason says why.
	ActionFailed Action = "failed"
	// ActionRunning: Gitea did not answer within the migration timeout; it
	// is most likely still cloning and finishes on its own.
	ActionRunning Action = "running"
)

// SyncOptions configure Sync.
type SyncOptions struct {
	// GitHubToken is handed to Gitea as the migration's auth_token (Gitea
	// clones and, for service github, reads the source's API with it).
	GitHubToken string
	// Repair deletes a failed migration's empty leftover and migrates again.
	Repair bool
	// Observe, when set, is told of every migration: target, duration, error.
	// It may be called from several goroutines at once.
	Observe func(target string, d time.Duration, err error)
	// Parallel is how many migrations run at once (default 4): Gitea clones
	// before it answers, so one at a time makes a large org's first sync slow.
	Parallel int
	// CreateOwners creates missing target owners as organisations; without
	// it, items whose owner is missing are errors (Gitea would answer 422).
	CreateOwners bool
}

// Sync carries out a plan: each create is migrated as a pull mirror
// (mirror: true, service: github, the interval); exists, excluded and error
// items are left alone, so a second sync creates nothing. A 409 from Gitea is
// examined: a failed migration's leftover is reported (or, with Repair,
// deleted and retried); anything else is a conflict. Failures of one
// repository do not stop the others; the returned items say what happened.
func Sync(ctx context.Context, items []Item, gt Gitea, opts SyncOptions) []Item {
	if opts.Parallel <= 0 {
		opts.Parallel = 4
	}
	items = append([]Item(nil), items...) // the caller's plan stays as it was
	out := make([]Item, len(items))
	created := map[string]error{} // owners made here, once each
	for i := range items {
		it := &items[i]
		if !it.OwnerMissing || it.Action != ActionCreate {
			continue
		}
		owner, _ := it.TargetParts()
		if !opts.CreateOwners {
			it.Action = ActionError
			continue
		}
		key := strings.ToLower(owner)
		if _, done := created[key]; !done {
			created[key] = gt.CreateOrg(ctx, owner)
		}
		if err := created[key]; err != nil {
			it.Action, it.Reason = ActionFailed, err.Error()
		} else {
			it.OwnerMissing, it.Reason = false, ""
		}
	}
	slots := make(chan struct{}, opts.Parallel)
	var wg sync.WaitGroup
	for i, it := range items {
		out[i] = it
		if it.Action != ActionCreate && !(it.Action == ActionConflict && it.Leftover && opts.Repair) {
			continue
		}
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			it := &out[i] // each goroutine owns one element
			if it.Action == ActionCreate {
				migrate(ctx, it, gt, opts, ActionCreated)
			} else {
				repair(ctx, it, gt, opts)
			}
		})
	}
	wg.Wait()
	return out
}

func migrate(ctx context.Context, it *Item, gt Gitea, opts SyncOptions, done Action) {
	owner, name := it.TargetParts()
	start := time.Now()
	_, err := gt.Migrate(ctx, gitea.MigrateOptions{
		CloneAddr: it.cloneURL, RepoOwner: owner, RepoName: name,
		Service: "github", Mirror: true, MirrorInterval: it.interval,
		Private: it.private, Description: it.description, AuthToken: opts.GitHubToken,
	})
	if opts.Observe != nil {
		opts.Observe(it.Target, time.Since(start), err)
	}
	if errors.Is(err, gitea.ErrConflict) {
		// Created meanwhile, or a failed migration's leftover: look again.
		repo, gerr := gt.GetRepo(ctx, owner, name)
		if gerr != nil {
			it.Action, it.Reason = ActionFailed, fmt.Sprintf("gitea answered 409 and then: %v", gerr)
			return
		}
		classify(it, repo)
		if it.Leftover && opts.Repair && done != ActionRepaired {
			repair(ctx, it, gt, opts)
		}
		return
	}
	if errors.Is(err, gitea.ErrStillRunning) {
		it.Action, it.Reason = ActionRunning, "still running in Gitea after the migration timeout; `raibid mirror list` shows when it is done"
		return
	}
	if err != nil {
		it.Action, it.Reason = ActionFailed, err.Error()
		return
	}
	it.Action, it.Reason, it.Leftover = done, "", false
}

func repair(ctx context.Context, it *Item, gt Gitea, opts SyncOptions) {
	owner, name := it.TargetParts()
	// Look again right before deleting: only the exact leftover of a failed
	// migration of this source goes.
	repo, err := gt.GetRepo(ctx, owner, name)
	if err == nil && !isFailedMigration(repo, it.cloneURL) {
		classify(it, repo)
		return
	}
	if err == nil {
		if err := gt.DeleteRepo(ctx, owner, name); err != nil {
			it.Action, it.Reason = ActionFailed, "repair: "+err.Error()
			return
		}
	} else if !errors.Is(err, gitea.ErrNotFound) {
		it.Action, it.Reason = ActionFailed, "repair: "+err.Error()
		return
	}
	migrate(ctx, it, gt, opts, ActionRepaired)
}
