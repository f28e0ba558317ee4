package server

import (
	"context"
	"time"
)

// countFinished adds every finished job's cargo artifacts to the cache
// counters and its phases on the agent to their histogram. Agents may run
// in other processes, so the server learns of verdicts the way dashboards
// do: from the job events.
func (s *Server) countFinished(ctx context.Context) {
	for ctx.Err() == nil {
		events, err := s.opts.Store.Subscribe(ctx)
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
				continue
			}
		}
		for ev := range events {
			if ev.Type != "job" || !ev.Status.Final() {
				continue
			}
			j, err := s.opts.Store.Get(ctx, ev.JobID)
			if err != nil {
				continue
			}
			for phase, ms := range j.Phases {
				s.metrics.jobPhases.WithLabelValues(phase).Observe(ms / 1000)
			}
			if j.CacheArtifacts == 0 {
				continue
			}
			s.metrics.cacheArtifacts.WithLabelValues("true").Add(float64(j.CacheFresh))
			s.metrics.cacheArtifacts.WithLabelValues("false").Add(float64(j.CacheArtifacts - j.CacheFresh))
		}
	}
}
