package server

import (
	"context"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/jobs"
	"github.com/raibid-labs/raibid-ci/internal/kube"
	"github.com/raibid-labs/raibid-ci/internal/statuses"
)

// How long an agent pod may fail to start before the job it was made for
// ends in error: an image that cannot be pulled or a container that cannot
// be made does not mend by waiting; a pod no node has room for may, when a
// running build ends.
const (
	podStartGrace       = 20 * time.Second
	unschedulableGrace  = 2 * time.Minute
	podStartCheckPeriod = 5 * time.Second
)

// JobDeleter deletes a Kubernetes Job and its pods.
type JobDeleter interface {
	DeleteJob(ctx context.Context, name string) error
}

// watchPodStarts is the KEDA mode's answer to an agent pod that cannot
// start (ErrImagePull, an unschedulable pod): KEDA made the pod for the
// oldest entry of its stream's lag, so that entry's job is claimed here, as
// the pod would have, and ended in error with Kubernetes' reason — the job
// says why within seconds instead of waiting, queued, for the Job's
// two-hour deadline while the queue stalls. The failing Job is deleted, so
// KEDA, with the entry gone from the lag, makes no other. A pod claims
// nothing twice: each is handled once.
func (s *Server) watchPodStarts(ctx context.Context, pods interface {
	PodLister
	JobDeleter
}) {
	handled := map[string]bool{}
	cpuScaledJob := ""
	if sc, ok := s.opts.Scaler.(interface{ ScaledJobName() string }); ok {
		cpuScaledJob = sc.ScaledJobName()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(podStartCheckPeriod):
		}
		list, err := pods.AgentPods(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("agent pods", "err", err)
			}
			continue
		}
		present := make(map[string]bool, len(list))
		for _, p := range list {
			present[p.Name] = true
		}
		for name := range handled {
			if !present[name] {
				delete(handled, name) // its Job is gone: forget it
			}
		}
		for _, p := range list {
			grace := podStartGrace
			if p.Unschedulable {
				grace = unschedulableGrace
			}
			if p.Problem == "" || handled[p.Name] || time.Since(p.ProblemSince) < grace {
				continue
			}
			handled[p.Name] = true
			lc := s.opts.Jobs
			if s.opts.GPUJobs != nil && p.ScaledJob != "" && p.ScaledJob != cpuScaledJob {
				lc = s.opts.GPUJobs
			}
			s.failStartedFor(ctx, lc, p)
			if p.JobName != "" {
				if err := pods.DeleteJob(ctx, p.JobName); err != nil {
					s.log.Warn("delete the agent Job that cannot start", "job", p.JobName, "err", err)
				}
			}
		}
	}
}

// failStartedFor ends in error the job the pod p was made for: the oldest
// entry its stream has not delivered.
func (s *Server) failStartedFor(ctx context.Context, lc *jobs.Lifecycle, p kube.Pod) {
	why := "agent pod " + p.Name + " could not start: " + p.Problem
	run, err := lc.Claim(ctx, "pod/"+p.Name, 0, nil)
	if err != nil || run == nil {
		s.log.Warn("agent pod cannot start; no queued job was waiting for it", "pod", p.Name, "problem", p.Problem, "err", err)
		return
	}
	j, err := run.Finish(ctx, jobs.Verdict{Status: ci.StatusError, Error: why})
	if err != nil {
		s.log.Warn("end the job of an agent pod that cannot start", "job_id", run.Job.ID, "err", err)
		return
	}
	s.log.Warn("job ended: its agent pod cannot start", "job_id", j.ID, "pod", p.Name, "problem", p.Problem)
	if s.opts.Status == nil || j.Commit == "" {
		return
	}
	if err := s.opts.Status.PostStatus(ctx, j.Repo, j.Commit, statuses.ForJob(j, "", s.opts.PublicURL, time.Now())); err != nil {
		s.log.Warn("commit status not stored", "job_id", j.ID, "err", err)
	}
	if err := statuses.PostAggregate(ctx, s.opts.Store, s.opts.Status, j, s.opts.PublicURL); err != nil {
		s.log.Warn("matrix commit status not stored", "group", j.Group, "err", err)
	}
}
