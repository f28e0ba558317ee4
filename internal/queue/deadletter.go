package queue

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// deadLetter tells OnDeadLetter first (so the job's state ends in error even
// if we crash next), then moves the entry to the dead-letter stream and acks
// it in one MULTI.
func (q *Queue) deadLetter(ctx context.Context, d *Delivery, reason string) error {
	if q.opts.OnDeadLetter != nil {
		if err := q.opts.OnDeadLetter(ctx, d, reason); err != nil {
			return fmt.Errorf("dead letter %s: %w", d.ID, err)
		}
	}
	fields := copyFields(d.Fields)
	fields[FieldReason] = reason
	fields[FieldOriginalID] = d.ID
	fields["deliveries"] = strconv.Itoa(d.Deliveries)
	_, err := q.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		// The dead-letter stream keeps the last DeadLetterMax entries.
		p.XAdd(ctx, &redis.XAddArgs{Stream: q.opts.Keys.Dead, Values: fields, MaxLen: q.opts.DeadLetterMax, Approx: true})
		p.XAck(ctx, q.opts.Keys.Stream, q.opts.Keys.Group, d.ID)
		return nil
	})
	if err != nil {
		return fmt.Errorf("dead letter %s: %w", d.ID, err)
	}
	return nil
}

// DeadLetter is an entry of the dead-letter stream.
type DeadLetter struct {
	ID     string
	Fields map[string]string
}

// DeadLetters lists up to count dead letters, newest first.
func (q *Queue) DeadLetters(ctx context.Context, count int64) ([]DeadLetter, error) {
	msgs, err := q.rdb.XRevRangeN(ctx, q.opts.Keys.Dead, "+", "-", count).Result()
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	out := make([]DeadLetter, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, DeadLetter{ID: m.ID, Fields: toStrings(m.Values)})
	}
	return out, nil
}
