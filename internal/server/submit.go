package server

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
	"github.com/raibid-labs/raibid-ci/internal/jobs"
	"github.com/raibid-labs/raibid-ci/internal/pipeline"
	"github.com/raibid-labs/raibid-ci/internal/store"
)

// submitted is what one event queued.
type submitted struct {
	IDs     []string // the job, or a matrix's jobs in order
	Group   string   // a matrix's group id
	Created bool     // false: a delivery seen before (IDs[0] is its first job)
	Skipped string   // why nothing was queued: the pipeline's when
}

// submitEvent queues what one event asks for — every path in (webhooks,
// POST /jobs, schedules) comes here. It reads the pipeline file at the
// commit when it can: a when: that does not hold queues nothing, a matrix
// queues one job per combination, in one group. When the file cannot be
// read here, one job is queued and the agent decides.
func (s *Server) submitEvent(ctx context.Context, job *ci.Job, delivery string) (submitted, error) {
	p := s.pipelineAt(ctx, job)
	if p != nil {
		if ok, why := p.When.Match(pipeline.ContextOf(job, nil)); !ok {
			return submitted{Skipped: "pipeline when: " + why}, nil
		}
	}
	if p != nil {
		for _, svc := range p.Services {
			if svc.Image != "" {
				job.Sidecars = append(job.Sidecars, ci.Sidecar{Name: svc.Name, Image: svc.Image, Port: svc.Port})
			}
		}
	}
	lc := s.opts.Jobs
	if p != nil && p.GPUs() > 0 {
		job.GPUs = p.GPUs()
		lc = s.lifecycleFor(job)
	}
	if p == nil || p.Matrix == nil {
		id, created, err := lc.Submit(ctx, job, delivery)
		return submitted{IDs: []string{id}, Created: created}, err
	}
	out := submitted{Group: ci.NewID(time.Now()), Created: true}
	for i, combo := range p.Matrix.Combinations() {
		j := *job
		j.ID, j.Matrix, j.Group = "", combo, out.Group
		d := delivery
		if d != "" {
			d += "#" + strconv.Itoa(i)
		}
		id, created, err := lc.Submit(ctx, &j, d)
		if err != nil {
			return out, err
		}
		if !created {
			// A redelivery: the matrix was queued the first time.
			return submitted{IDs: []string{id}}, nil
		}
		out.IDs = append(out.IDs, id)
	}
	s.postAggregatePending(job, out.Group)
	return out, nil
}

// lifecycleFor is the lifecycle a job is queued in: the GPU stream's for a
// job that needs a GPU (when this server has one), else the main one.
func (s *Server) lifecycleFor(j *ci.Job) *jobs.Lifecycle {
	if j.GPUs > 0 && s.opts.GPUJobs != nil {
		return s.opts.GPUJobs
	}
	return s.opts.Jobs
}

// retry runs a finished job again, in the stream its job needs.
func (s *Server) retry(ctx context.Context, id string) (*ci.Job, error) {
	orig, err := s.opts.Store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.lifecycleFor(orig).Retry(ctx, id)
}

// pipelineAt is the repository's pipeline file at the job's commit, parsed;
// nil when there is none, it cannot be read from here in time, or it does
// not parse (the agent reports that).
func (s *Server) pipelineAt(ctx context.Context, j *ci.Job) *pipeline.Pipeline {
	if s.opts.PipelineFiles == nil || j.Commit == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	b, err := s.opts.PipelineFiles.PipelineFile(ctx, j.Repo, j.CloneURL, j.Commit)
	if err != nil {
		s.log.Warn("pipeline file not read; the agent will check its when", "repo", j.Repo, "err", err)
		return nil
	}
	if b == nil {
		return nil
	}
	p, err := pipeline.Parse(pipeline.FileName, b)
	if err != nil {
		return nil
	}
	return p
}

// postAggregatePending marks a matrix's commit pending under the plain
// context; each member posts its own context (see queued), and the agent
// that ends the last member posts the aggregate's verdict.
func (s *Server) postAggregatePending(j *ci.Job, group string) {
	if s.opts.Status == nil || j.Commit == "" {
		return
	}
	target := ""
	if s.opts.PublicURL != "" {
		target = strings.TrimRight(s.opts.PublicURL, "/") + "/ui/?group=" + group
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.opts.Status.PostStatus(ctx, j.Repo, j.Commit, gitea.CommitStatus{State: gitea.StatePending,
			TargetURL: target, Description: "matrix queued", Context: gitea.ContextOf(j.Event, "")}); err != nil {
			s.log.Warn("pending commit status not posted", "group", group, "err", err)
		}
	}()
}

// errorIf is an error saying why, or nil for "".
func errorIf(why string) error {
	if why == "" {
		return nil
	}
	return errors.New(why)
}

// groupMembers is a matrix's newest job per combination (a retried
// combination's retry, not the job it retried), or 404.
func (s *Server) groupMembers(w http.ResponseWriter, r *http.Request) ([]*ci.Job, bool) {
	group := r.PathValue("id")
	if !jobIDPattern.MatchString(group) {
		writeError(w, http.StatusNotFound, "group not found")
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
		if _, err := s.opts.Jobs.Cancel(r.Context(), j.ID); err == nil {
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
