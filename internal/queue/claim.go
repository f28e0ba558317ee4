package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ReaperConsumer is the consumer name the server's reaper claims entries as.
const ReaperConsumer = "raibid-reaper"

// Claim hands the consumer one entry: first an entry whose holder stopped
// heartbeating for longer than the lease, else a new one, waiting up to block
// for it with XREADGROUP BLOCK (Redis wakes the reader the moment an entry is
// added, so there is no polling tick). It returns nil, nil when nothing came.
// Deliveries counts every delivery of the job so far; whether that is too
// many is the caller's decision (internal/jobs dead-letters it).
func (q *Queue) Claim(ctx context.Context, consumer string, block time.Duration) (*Delivery, error) {
	if err := q.EnsureGroup(ctx); err != nil {
		return nil, err
	}
	idle, err := q.idle(ctx, consumer, "0-0", 1)
	if err != nil || len(idle) > 0 {
		if len(idle) > 0 {
			return idle[0], nil
		}
		return nil, err
	}
	if block <= 0 {
		block = time.Millisecond // XREADGROUP BLOCK 0 would wait forever
	}
	for attempt := 0; ; attempt++ {
		res, err := q.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: q.opts.Keys.Group, Consumer: consumer,
			Streams: []string{q.opts.Keys.Stream, ">"},
			Count:   1, Block: block,
		}).Result()
		if errors.Is(err, redis.Nil) {
			return nil, nil
		}
		if isNoGroup(err) && attempt == 0 {
			q.groupReady.Store(false)
			if err := q.EnsureGroup(ctx); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("claim: %w", err)
		}
		if len(res) == 0 || len(res[0].Messages) == 0 {
			return nil, nil
		}
		m := res[0].Messages[0]
		d := &Delivery{ID: m.ID, Fields: toStrings(m.Values), Consumer: consumer}
		d.Deliveries = d.prior() + 1
		return d, nil
	}
}

// Abandoned takes over, as the reaper, up to max entries whose holder
// stopped heartbeating for longer than the lease. The reaper's own
// XAUTOCLAIM is not counted as a delivery: it runs nothing.
func (q *Queue) Abandoned(ctx context.Context, max int) ([]*Delivery, error) {
	out, err := q.idle(ctx, ReaperConsumer, "0-0", max)
	for _, d := range out {
		d.Deliveries--
	}
	return out, err
}

// idle takes over, for consumer, up to max entries idle past the lease,
// scanning the pending list from start. Each XAUTOCLAIM counts as a delivery
// in Redis; the count is read back with XPENDING.
func (q *Queue) idle(ctx context.Context, consumer, start string, max int) ([]*Delivery, error) {
	var out []*Delivery
	for range 1000 { // bounded per call; callers call again
		msgs, next, err := q.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: q.opts.Keys.Stream, Group: q.opts.Keys.Group, Consumer: consumer,
			MinIdle: q.opts.Lease, Start: start, Count: int64(max - len(out)),
		}).Result()
		if err != nil {
			if isNoGroup(err) || isNoSuchKey(err) {
				q.groupReady.Store(false)
				return out, nil
			}
			return out, fmt.Errorf("reclaim: %w", err)
		}
		for _, m := range msgs {
			count, err := q.deliveryCount(ctx, m.ID)
			if err != nil {
				return out, err
			}
			d := &Delivery{ID: m.ID, Fields: toStrings(m.Values), Consumer: consumer, Reclaimed: true}
			d.Deliveries = d.prior() + count
			out = append(out, d)
		}
		if len(out) >= max || next == "0-0" || next == "" {
			return out, nil
		}
		start = next
	}
	return out, nil
}

// deliveryCount is Redis's delivery counter of a pending entry.
func (q *Queue) deliveryCount(ctx context.Context, id string) (int, error) {
	p, err := q.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
		Stream: q.opts.Keys.Stream, Group: q.opts.Keys.Group,
		Start: id, End: id, Count: 1,
	}).Result()
	if err != nil {
		return 0, fmt.Errorf("pending %s: %w", id, err)
	}
	if len(p) == 0 {
		return 0, fmt.Errorf("pending %s: %w", id, ErrLeaseLost)
	}
	return int(p[0].RetryCount), nil
}
