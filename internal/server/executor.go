package server

import (
	"context"
	"strings"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
	"github.com/raibid-labs/raibid-ci/internal/ticker"
)

// Executor starts agents for queued jobs: the Kubernetes executor.
type Executor interface {
	// Launch starts capacity for one queued job.
	Launch(ctx context.Context, j *ci.Job) error
	// Reconcile covers queued entries nothing was launched for, up to max.
	Reconcile(ctx context.Context, lag int64, max int) error
	// WatchFailures reports agents that failed outside raibid's control.
	WatchFailures(ctx context.Context, fn func(jobID, reason string))
}

// queued is the lifecycle's submit hook: every job queued, whichever way
// (webhook, POST /jobs, retry from the API or the web page), is counted,
// gets a pending commit status, and with an executor an agent — both in the
// background: a slow forge or API server must not slow the answer.
func (s *Server) queued(_ context.Context, j *ci.Job) {
	s.metrics.enqueued.WithLabelValues(j.Trigger).Inc()
	s.postPending(j.ID, j.Repo, j.Commit, gitea.ContextOf(j.Event, ci.MatrixLabel(j.Matrix)))
	if s.opts.Executor == nil {
		return
	}
	job := *j
	s.launched.Store(job.ID, time.Now())
	s.background.Go(func() {
		ctx, cancel := context.WithTimeout(s.streams, 30*time.Second)
		defer cancel()
		if err := s.opts.Executor.Launch(ctx, &job); err != nil {
			s.log.Error("kubernetes executor: launch", "job_id", job.ID, "err", err)
		}
	})
}

// launchQueuedElsewhere starts agents for jobs queued outside this server —
// the other combinations of a matrix an agent planned, a job an agent
// handed over for a GPU or its sidecars — as their pending events come,
// until ctx ends. The jobs this server queued were launched by queued and
// are skipped; pub/sub drops events when the server is away, and Reconcile
// covers what it drops.
func (s *Server) launchQueuedElsewhere(ctx context.Context) {
	events, err := s.opts.Store.Subscribe(ctx)
	if err != nil {
		s.log.Warn("kubernetes executor: job events", "err", err)
		return
	}
	for ev := range events {
		if ev.Type != "job" || ev.Status != ci.StatusPending || ev.JobID == "" {
			continue
		}
		if _, ours := s.launched.LoadAndDelete(ev.JobID); ours {
			continue
		}
		j, err := s.opts.Store.Get(ctx, ev.JobID)
		if err != nil || j.Status != ci.StatusPending {
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if err := s.opts.Executor.Launch(lctx, j); err != nil && ctx.Err() == nil {
			s.log.Error("kubernetes executor: launch", "job_id", j.ID, "err", err)
		}
		cancel()
	}
}

// runExecutor reconciles lag the launches did not cover and records agent
// failures on their jobs, until ctx ends.
func (s *Server) runExecutor(ctx context.Context) {
	go s.launchQueuedElsewhere(ctx)
	go s.opts.Executor.WatchFailures(ctx, func(jobID, reason string) {
		s.log.Warn("agent failed outside raibid", "job_id", jobID, "reason", reason)
		if jobID == "" {
			return
		}
		_ = s.opts.Store.AppendLog(ctx, jobID, ci.LogLine{Step: "kubernetes", Stream: "stderr", Text: reason})
	})
	ticker.Every(ctx, 5*time.Second, func() {
		// An event pub/sub lost leaves its job here: forget it after a while.
		s.launched.Range(func(id, at any) bool {
			if time.Since(at.(time.Time)) > time.Minute {
				s.launched.Delete(id)
			}
			return true
		})
		st, err := s.opts.Queue.Stats(ctx)
		if err != nil {
			return
		}
		limit := 6
		if s.opts.Scaler != nil {
			if n, err := s.opts.Scaler.MaxAgents(ctx); err == nil {
				limit = n
			}
		}
		if err := s.opts.Executor.Reconcile(ctx, st.Lag, limit); err != nil && ctx.Err() == nil {
			s.log.Warn("kubernetes executor: reconcile", "err", strings.TrimSpace(err.Error()))
		}
	})
}
