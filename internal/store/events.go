package store

import (
	"context"
	"encoding/json"

	"github.com/raibid-labs/raibid-ci/internal/ci"
)

// Publish tells dashboards about a change over Redis pub/sub, so an agent in
// another process reaches every server's /events clients. Best effort: events
// are hints to refetch, and a dashboard refetches on reconnect anyway.
func (s *Store) Publish(ctx context.Context, ev ci.Event) {
	b, err := json.Marshal(ev)
	if err != nil {
		return
	}
	s.rdb.Publish(ctx, s.keys.Events(), b)
}

// Subscribe delivers events until ctx ends. The channel closes then.
func (s *Store) Subscribe(ctx context.Context) (<-chan ci.Event, error) {
	sub := s.rdb.Subscribe(ctx, s.keys.Events())
	if _, err := sub.Receive(ctx); err != nil {
		sub.Close()
		return nil, Wrap("subscribe", err)
	}
	out := make(chan ci.Event, 64)
	go func() {
		defer close(out)
		defer sub.Close()
		msgs := sub.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-msgs:
				if !ok {
					return
				}
				var ev ci.Event
				if json.Unmarshal([]byte(m.Payload), &ev) != nil {
					continue
				}
				select {
				case out <- ev:
				default: // a slow subscriber loses hints, never blocks the others
				}
			}
		}
	}()
	return out, nil
}
