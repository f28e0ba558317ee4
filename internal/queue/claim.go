package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Claim hands the consumer one entry: first an entry whose holder stopped
// heartbeating for longer than the lease, else a new one, waiting up to block
// for it with XREADGROUP BLOCK (Redis wakes the reader the moment an entry is
// added, so there is no polling tick). It returns nil, nil when nothing came.
// Entries delivered more than MaxDeliveries times become dead letters on the
// way and are never returned.
func (q *Queue) Claim(ctx context.Context, consumer string, block time.Duration) (*Delivery, error) {
	if err := q.EnsureGroup(ctx); err != nil {
		return nil, err
	}
	d, err := q.reclaimOne(ctx, consumer)
	if err != nil || d != nil {
		return d, err
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
		if d.Deliveries > q.opts.MaxDeliveries {
			reason := fmt.Sprintf("delivered %d times, more than the limit of %d", d.Deliveries, q.opts.MaxDeliveries)
			if err := q.deadLetter(ctx, d, reason); err != nil {
				return nil, err
			}
			return nil, nil
		}
		return d, nil
	}
}

// reclaimOne takes over, for consumer, one entry idle past the lease. Each
// XAUTOCLAIM counts as a delivery in Redis; the count is read back with
// XPENDING to decide whether the entry has been tried too often.
func (q *Queue) reclaimOne(ctx context.Context, consumer string) (*Delivery, error) {
	start := "0-0"
	for range 100 { // bounded: each round dead-letters one entry or ends
		msgs, next, err := q.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: q.opts.Keys.Stream, Group: q.opts.Keys.Group, Consumer: consumer,
			MinIdle: q.opts.Lease, Start: start, Count: 1,
		}).Result()
		if err != nil {
			if isNoGroup(err) {
				q.groupReady.Store(false)
				return nil, nil
			}
			return nil, fmt.Errorf("reclaim: %w", err)
		}
		if len(msgs) == 0 {
			if next == "0-0" || next == "" {
				return nil, nil
			}
			start = next
			continue
		}
		m := msgs[0]
		count, err := q.deliveryCount(ctx, m.ID)
		if err != nil {
			return nil, err
		}
		d := &Delivery{ID: m.ID, Fields: toStrings(m.Values), Consumer: consumer}
		d.Deliveries = d.prior() + count
		if d.Deliveries <= q.opts.MaxDeliveries {
			return d, nil
		}
		reason := fmt.Sprintf("delivered %d times without finishing (limit %d); the last holder stopped heartbeating", d.Deliveries-1, q.opts.MaxDeliveries)
		if err := q.deadLetter(ctx, d, reason); err != nil {
			return nil, err
		}
		start = next
		if next == "0-0" {
			start = "0-0"
		}
	}
	return nil, nil
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
