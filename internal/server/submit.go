package server

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/jobs"
	"github.com/raibid-labs/raibid-ci/internal/statuses"
	"github.com/raibid-labs/raibid-ci/internal/store"
)

// submitted is what one event queued.
type submitted struct {
	ID      string
	Created bool // false: a delivery seen before (ID is its job)
}

// submitEvent queues what one event asks for — every path in (webhooks,
// POST /jobs, schedules) comes here. It reads nothing from the forge: the
// job is durable when this returns, and the agent that claims it reads the
// pipeline at the commit and plans the rest (its when:, a matrix's other
// combinations, a GPU; see jobs.Plan), so an answer never waits for Gitea.
func (s *Server) submitEvent(ctx context.Context, job *ci.Job, delivery string) (submitted, error) {
	id, created, err := s.lifecycleFor(job).Submit(ctx, job, delivery)
	return submitted{ID: id, Created: created}, err
}

// lifecycleFor is the lifecycle a job is queued in: the GPU stream's for a
// job known to need a GPU (a retry of one), else the main one.
func (s *Server) lifecycleFor(j *ci.Job) *jobs.Lifecycle {
	if j.GPUs > 0 && s.opts.GPUJobs != nil {
		return s.opts.GPUJobs
	}
	return s.opts.Jobs
}

// cancelJob cancels a pending or running job. A job that never started
// gets its cancelled commit status here (no agent will post one), and its
// matrix's aggregate when that decides it; a running job's agent posts its
// own when it stops.
func (s *Server) cancelJob(ctx context.Context, id string) (*ci.Job, error) {
	j, err := s.opts.Jobs.Transition(ctx, id, jobs.Change{From: []ci.Status{ci.StatusPending}, To: ci.StatusCancelled, Error: "cancelled by request"})
	if errors.Is(err, ci.ErrConflict) {
		return s.opts.Jobs.Cancel(ctx, id) // running: its agent reports
	}
	if err != nil || s.opts.Status == nil || j.Commit == "" {
		return j, err
	}
	if err := s.opts.Status.PostStatus(ctx, j.Repo, j.Commit, statuses.ForJob(j, "", s.opts.PublicURL, time.Now())); err != nil {
		s.log.Warn("cancelled commit status not stored", "job_id", j.ID, "err", err)
	}
	if err := statuses.PostAggregate(ctx, s.opts.Store, s.opts.Status, j, s.opts.PublicURL); err != nil {
		s.log.Warn("matrix commit status not stored", "group", j.Group, "err", err)
	}
	return j, nil
}

// retry runs a finished job again, in the stream its job needs.
func (s *Server) retry(ctx context.Context, id string) (*ci.Job, error) {
	orig, err := s.opts.Store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.lifecycleFor(orig).Retry(ctx, id)
}

// groupMembers is a matrix's newest job per combination (a retried
// combination's retry, not the job it retried), or 404.
func (s *Server) groupMembers(w http.ResponseWriter, r *http.Request) ([]*ci.Job, bool) {
	group := r.PathValue("id")
	if !groupIDPattern.MatchString(group) {
		writeError(w, http.StatusNotFound, "group not found")
		return nil, false
	}
	group, err := s.groupOf(r.Context(), group)
	if errors.Is(err, ci.ErrNotFound) {
		writeError(w, http.StatusNotFound, "group not found")
		return nil, false
	}
	if err != nil {
		s.storeError(w, err)
		return nil, false
	}
	all, _, err := s.opts.Store.List(r.Context(), store.Filter{Group: group, Limit: 500})
	if err != nil {
		s.storeError(w, err)
		return nil, false
	}
	if len(all) == 0 {
		writeError(w, http.StatusNotFound, "group not found")
		return nil, false
	}
	seen := map[string]bool{}
	var out []*ci.Job
	for _, j := range all { // newest first
		if l := ci.MatrixLabel(j.Matrix); !seen[l] {
			seen[l] = true
			out = append(out, j)
		}
	}
	return out, true
}

// handleCancelGroup cancels every pending or running job of a matrix.
func (s *Server) handleCancelGroup(w http.ResponseWriter, r *http.Request) {
	members, ok := s.groupMembers(w, r)
	if !ok {
		return
	}
	cancelled := []string{}
	for _, j := range members {
		if j.Status.Final() {
			continue
		}
		if _, err := s.cancelJob(r.Context(), j.ID); err == nil {
			cancelled = append(cancelled, j.ID)
		} else if !errors.Is(err, ci.ErrConflict) {
			s.storeError(w, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"cancelled": cancelled})
}

// handleRetryGroup runs a finished matrix's combinations that did not pass
// again (every combination when all passed), in the same group.
func (s *Server) handleRetryGroup(w http.ResponseWriter, r *http.Request) {
	members, ok := s.groupMembers(w, r)
	if !ok {
		return
	}
	var again []*ci.Job
	for _, j := range members {
		if !j.Status.Final() {
			writeError(w, http.StatusConflict, "job "+j.ID+" of the group is still "+string(j.Status))
			return
		}
		if j.Status != ci.StatusSuccess {
			again = append(again, j)
		}
	}
	if len(again) == 0 {
		again = members
	}
	jobs := []*ci.Job{}
	for _, j := range again {
		n, err := s.retry(r.Context(), j.ID)
		if err != nil {
			s.storeError(w, err)
			return
		}
		jobs = append(jobs, n)
	}
	writeJSON(w, http.StatusCreated, map[string]any{"jobs": jobs})
}
