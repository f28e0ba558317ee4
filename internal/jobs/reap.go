package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ticker"
)

// reapBatch is how many abandoned entries one round takes over.
const reapBatch = 50

// Reap finds entries whose holder stopped heartbeating for longer than the
// lease and puts their jobs back in the queue as new entries (pending
// again), or ends them as dead letters once delivered MaxDeliveries times.
// Why not leave them for a live agent's Claim: KEDA's lag counts only
// undelivered entries, so with every agent pod gone a stuck pending entry
// would never start a new pod. It returns how many it requeued and
// dead-lettered.
func (l *Lifecycle) Reap(ctx context.Context) (requeued, dead int, err error) {
	for range 1000 { // bounded per call; the loop calls again next tick
		batch, err := l.queue.Abandoned(ctx, reapBatch)
		if err != nil {
			return requeued, dead, fmt.Errorf("reap: %w", err)
		}
		for _, d := range batch {
			deadReason := ""
			if d.Deliveries >= l.opts.MaxDeliveries {
				deadReason = fmt.Sprintf("delivered %d times without finishing (limit %d); the last holder stopped heartbeating", d.Deliveries, l.opts.MaxDeliveries)
			}
			out, err := l.requeue(ctx, d, deadReason, d.Deliveries,
				"agent", "", "steps", "", "error", fmt.Sprintf("delivery %d: the agent stopped heartbeating", d.Deliveries))
			if err != nil {
				return requeued, dead, err
			}
			switch out {
			case "requeued":
				requeued++
			case "dead":
				dead++
			}
		}
		if len(batch) < reapBatch {
			return requeued, dead, nil
		}
	}
	return requeued, dead, nil
}

// RunReaper calls Reap, then trims the acked entries from the stream, every
// interval (default a third of the lease) until ctx ends.
func (l *Lifecycle) RunReaper(ctx context.Context, interval time.Duration, log *slog.Logger) {
	if interval <= 0 {
		interval = l.queue.Lease() / 3
	}
	ticker.Every(ctx, interval, func() {
		requeued, dead, err := l.Reap(ctx)
		if err != nil && ctx.Err() == nil {
			log.Warn("reaper", "err", err)
		}
		if requeued+dead > 0 {
			log.Info("reaper", "requeued", requeued, "dead_lettered", dead)
		}
		// After the reap, so entries it requeued are acked and can go.
		if n, err := l.queue.Trim(ctx); err != nil && ctx.Err() == nil {
			log.Warn("trim queue", "err", err)
		} else if n > 0 {
			log.Debug("queue trimmed", "entries", n)
		}
	})
}
