package server

import (
	"context"
	"slices"
	"sync"
	"time"
)

// A controlLoop is background work the server runs beside the HTTP
// handlers, each in its own file or package: it runs until its context
// ends and returns promptly then.
type controlLoop struct {
	name string
	run  func(ctx context.Context)
}

// controlLoops are the server's loops in the order they start:
//  1. reaper (internal/jobs reap.go): abandoned entries back into the
//     queue, then the acked ones trimmed — first, so a restarted server
//     hands on what its agents dropped;
//  2. expiry (internal/jobs expire.go): finished jobs removed on schedule;
//     then, once, indexes written before they were paged move into pages
//     (migrate.go) — after the reaper, which does not read them;
//  3. finished-job counters (finished.go): cache figures and phase timings from job events;
//  4. executor reconcile (executor.go), on Kubernetes;
//  5. the features' loops (feature.go), in the order Options.Features
//     gives them: mirror rescan, artifacts prune, schedules;
//  6. agent limit (internal/kube), with KEDA: the ScaledJob's
//     maxReplicaCount set to --max-agents while the tree leaves it unset;
//     and agent pod starts (podstarts.go): a pod that cannot start ends the
//     job it was made for, with Kubernetes' reason;
//  7. commit statuses (internal/statuses), with a forge token: the outbox
//     posted, retried across outages; what is left when it stops waits in
//     Redis for the next poster.
//
// They stop in the reverse order, after the HTTP drain: the executor
// launches nothing more before the reaper, the last to stop, lets go of
// the queue.
func (s *Server) controlLoops() []controlLoop {
	var out []controlLoop
	if s.opts.ReaperInterval >= 0 {
		out = append(out, controlLoop{"reaper", func(ctx context.Context) { s.opts.Jobs.RunReaper(ctx, s.opts.ReaperInterval, s.log) }})
		if s.opts.GPUJobs != nil {
			out = append(out, controlLoop{"gpu reaper", func(ctx context.Context) { s.opts.GPUJobs.RunReaper(ctx, s.opts.ReaperInterval, s.log) }})
		}
	}
	out = append(out,
		controlLoop{"expiry", func(ctx context.Context) {
			s.opts.Jobs.RunIndexUpgrade(ctx, s.log)
			s.opts.Jobs.RunExpiry(ctx, time.Minute, s.log)
		}},
		controlLoop{"finished-job counters", s.countFinished})
	if s.opts.Executor != nil {
		out = append(out, controlLoop{"executor", s.runExecutor})
	}
	out = append(out, s.featureLoops...)
	if sc, ok := s.opts.Scaler.(interface {
		RunEnsureMax(ctx context.Context, every time.Duration, warn func(error))
	}); ok {
		out = append(out, controlLoop{"agent limit", func(ctx context.Context) {
			sc.RunEnsureMax(ctx, 10*time.Second, func(err error) { s.log.Warn("set the agent limit", "err", err) })
		}})
		if pods, ok := s.opts.Pods.(interface {
			PodLister
			JobDeleter
		}); ok {
			out = append(out, controlLoop{"agent pod starts", func(ctx context.Context) { s.watchPodStarts(ctx, pods) }})
		}
	}
	if box, ok := s.opts.Status.(interface {
		Run(ctx context.Context, poll time.Duration)
	}); ok {
		out = append(out, controlLoop{"commit statuses", func(ctx context.Context) { box.Run(ctx, time.Second) }})
	}
	return out
}

// startLoops starts the control loops and returns the function that stops
// them, one at a time in reverse order, each waited for.
func (s *Server) startLoops() (stop func()) {
	type running struct {
		name   string
		cancel context.CancelFunc
		done   *sync.WaitGroup
	}
	var started []running
	for _, l := range s.controlLoops() {
		ctx, cancel := context.WithCancel(context.Background())
		done := &sync.WaitGroup{}
		done.Go(func() { l.run(ctx) })
		started = append(started, running{l.name, cancel, done})
	}
	return func() {
		for _, r := range slices.Backward(started) {
			r.cancel()
			r.done.Wait()
			s.log.Debug("control loop stopped", "loop", r.name)
		}
	}
}
