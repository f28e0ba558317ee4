package queue

import (
	"context"
	"fmt"
	"strings"
)

// Stats describe the queue for dashboards and autoscalers.
type Stats struct {
	// Length is the number of entries in the stream (acked ones included).
	Length int64 `json:"length"`
	// Lag is the number of entries not yet delivered to the group: what KEDA
	// scales on. -1 when Redis cannot tell.
	Lag int64 `json:"lag"`
	// Pending is the number of delivered, unacked entries (running jobs).
	Pending int64 `json:"pending"`
	// Dead is the number of dead letters.
	Dead      int64 `json:"dead"`
	Consumers int64 `json:"consumers"`
}

// Stats reads the queue's figures. A stream or group that does not exist yet
// reads as zeros, not as an error: a fresh install has an empty queue.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	p := q.rdb.Pipeline()
	length := p.XLen(ctx, q.opts.Keys.Stream)
	dead := p.XLen(ctx, q.opts.Keys.Dead)
	groups := p.XInfoGroups(ctx, q.opts.Keys.Stream)
	_, _ = p.Exec(ctx) // each command's error is read below
	if err := length.Err(); err != nil {
		return s, fmt.Errorf("queue stats: %w", err)
	}
	if err := dead.Err(); err != nil {
		return s, fmt.Errorf("queue stats: %w", err)
	}
	s.Length, s.Dead = length.Val(), dead.Val()
	gs, err := groups.Result()
	if err != nil && !isNoSuchKey(err) {
		return s, fmt.Errorf("queue stats: %w", err)
	}
	for _, g := range gs {
		if g.Name == q.opts.Keys.Group {
			s.Lag, s.Pending, s.Consumers = g.Lag, g.Pending, g.Consumers
		}
	}
	return s, nil
}

func isNoSuchKey(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no such key")
}
