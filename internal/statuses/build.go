package statuses

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
	"github.com/raibid-labs/raibid-ci/internal/store"
)

// ForJob is the commit status of a job that ended, under its event's (and
// combination's) context, linking to its page: detail says why it did not
// pass, or, for a pass, what to say instead of "passed".
func ForJob(j *ci.Job, detail, publicURL string, now time.Time) gitea.CommitStatus {
	state, desc := gitea.StateError, "error: "+detail
	switch j.Status {
	case ci.StatusSuccess:
		state, desc = gitea.StateSuccess, "passed"
		if detail != "" {
			desc = detail
		}
	case ci.StatusFailed:
		state, desc = gitea.StateFailure, "failed: "+detail
	case ci.StatusCancelled:
		desc = "cancelled"
	}
	if d := j.Duration(now); d > 0 {
		desc = fmt.Sprintf("%s in %s", desc, d.Round(100*time.Millisecond))
	}
	if len(desc) > 140 {
		desc = desc[:137] + "..."
	}
	return gitea.CommitStatus{State: state, Description: desc, TargetURL: ci.PageURL(publicURL, j.ID),
		Context: gitea.ContextOf(j.Event, ci.MatrixLabel(j.Matrix))}
}

// Aggregate is a matrix's plain status once it is decided: failure as soon
// as a combination's newest job ended without passing, success when every
// combination's newest job passed; ok is false while it is undecided.
// members is the group's jobs, newest first (a retry wins over the job it
// retried).
func Aggregate(members []*ci.Job, publicURL string) (st gitea.CommitStatus, ok bool) {
	if len(members) == 0 {
		return st, false
	}
	newest := map[string]*ci.Job{}
	for _, m := range members {
		if l := ci.MatrixLabel(m.Matrix); newest[l] == nil {
			newest[l] = m
		}
	}
	failed, done := 0, 0
	for _, m := range newest {
		if m.Status.Final() {
			done++
			if m.Status != ci.StatusSuccess {
				failed++
			}
		}
	}
	st.Context = gitea.ContextOf(members[0].Event, "")
	switch {
	case failed > 0:
		st.State, st.Description = gitea.StateFailure, fmt.Sprintf("%d of %d matrix jobs did not pass", failed, len(newest))
	case done == len(newest):
		st.State, st.Description = gitea.StateSuccess, fmt.Sprintf("all %d matrix jobs passed", len(newest))
	default:
		return st, false
	}
	if publicURL != "" {
		st.TargetURL = strings.TrimRight(publicURL, "/") + "/ui/?group=" + members[0].Group
	}
	return st, true
}

// Lister reads a matrix's jobs (store.Store).
type Lister interface {
	List(ctx context.Context, f store.Filter) ([]*ci.Job, string, error)
}

// PostAggregate posts the plain status of j's matrix when its members
// decide it (see Aggregate); nothing while it is undecided. Whoever ends a
// member calls it: the agent that finished it, the server that cancelled it.
func PostAggregate(ctx context.Context, jobs Lister, post Poster, j *ci.Job, publicURL string) error {
	if j.Group == "" || j.Commit == "" {
		return nil
	}
	members, _, err := jobs.List(ctx, store.Filter{Group: j.Group, Limit: 500})
	if err != nil {
		return fmt.Errorf("matrix status: %w", err)
	}
	st, ok := Aggregate(members, publicURL)
	if !ok {
		return nil
	}
	return post.PostStatus(ctx, j.Repo, j.Commit, st)
}
