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
