package queue

import (
	"context"
	"fmt"
)

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

// DeadLetter reads one dead letter by its id (ci.ErrNotFound-free: ok
// false when there is none).
func (q *Queue) DeadLetter(ctx context.Context, id string) (DeadLetter, bool, error) {
	msgs, err := q.rdb.XRangeN(ctx, q.opts.Keys.Dead, id, id, 1).Result()
	if err != nil {
		return DeadLetter{}, false, fmt.Errorf("dead letter %s: %w", id, err)
	}
	if len(msgs) == 0 {
		return DeadLetter{}, false, nil
	}
	return DeadLetter{ID: msgs[0].ID, Fields: toStrings(msgs[0].Values)}, true, nil
}

// RemoveDeadLetter deletes a dead letter (once its job runs again).
func (q *Queue) RemoveDeadLetter(ctx context.Context, id string) error {
	if err := q.rdb.XDel(ctx, q.opts.Keys.Dead, id).Err(); err != nil {
		return fmt.Errorf("remove dead letter %s: %w", id, err)
	}
	return nil
}
