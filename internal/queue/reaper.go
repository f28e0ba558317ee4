package queue

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
)

// ReaperConsumer is the consumer name the server's reaper claims entries as.
const ReaperConsumer = "raibid-reaper"

// Reap finds entries whose holder stopped heartbeating for longer than the
// lease and puts them back in the queue as new entries. Why not leave them for
// a live agent's Claim: KEDA's lag counts only undelivered entries, so with
// every agent pod gone a stuck pending entry would never start a new pod.
// Entries already delivered MaxDeliveries times become dead letters instead.
// It returns how many entries it requeued and dead-lettered.
func (q *Queue) Reap(ctx context.Context) (requeued, dead int, err error) {
	start := "0-0"
	for range 1000 { // bounded per call; the loop calls again next tick
		msgs, next, err := q.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: q.opts.Keys.Stream, Group: q.opts.Keys.Group, Consumer: ReaperConsumer,
			MinIdle: q.opts.Lease, Start: start, Count: 50,
		}).Result()
		if err != nil {
			if isNoGroup(err) || isNoSuchKey(err) {
				return requeued, dead, nil
			}
			return requeued, dead, fmt.Errorf("reap: %w", err)
		}
		for _, m := range msgs {
			count, err := q.deliveryCount(ctx, m.ID)
			if err != nil {
				return requeued, dead, err
			}
			d := &Delivery{ID: m.ID, Fields: toStrings(m.Values), Consumer: ReaperConsumer}
			// The reaper's own XAUTOCLAIM counted as a delivery; it is not one.
			d.Deliveries = d.prior() + count - 1
			if d.Deliveries >= q.opts.MaxDeliveries {
				reason := fmt.Sprintf("delivered %d times without finishing (limit %d); the last holder stopped heartbeating", d.Deliveries, q.opts.MaxDeliveries)
				if err := q.deadLetter(ctx, d, reason); err != nil {
					return requeued, dead, err
				}
				dead++
				continue
			}
			if _, err := q.requeue(ctx, d, d.Deliveries); err != nil {
				return requeued, dead, err
			}
			requeued++
		}
		if next == "0-0" || next == "" {
			return requeued, dead, nil
		}
		start = next
	}
	return requeued, dead, nil
}

// RunReaper calls Reap, then Trim, every interval until ctx ends.
func (q *Queue) RunReaper(ctx context.Context, interval time.Duration, log *slog.Logger) {
	if interval <= 0 {
		interval = q.opts.Lease / 3
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		requeued, dead, err := q.Reap(ctx)
		if err != nil && ctx.Err() == nil {
			log.Warn("reaper", "err", err)
		}
		if requeued+dead > 0 {
			log.Info("reaper", "requeued", requeued, "dead_lettered", dead)
		}
		// After the reap, so entries it requeued are acked and can go.
		if n, err := q.Trim(ctx); err != nil && ctx.Err() == nil {
			log.Warn("trim queue", "err", err)
		} else if n > 0 {
			log.Debug("queue trimmed", "entries", n)
		}
	}
}
