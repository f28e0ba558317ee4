package server

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// handleEvents streams job changes (event "job") and queue figures when they
// change (event "queue", checked every second) until the client leaves.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := mergeDone(r.Context(), s.streams)
	defer cancel()
	events, err := s.opts.Store.Subscribe(ctx)
	if err != nil {
		s.storeError(w, err)
		return
	}
	sse, ok := startSSE(w)
	if !ok {
		return
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastPing := time.Now()
	var lastStats string
	sendStats := func() error {
		st, err := s.opts.Queue.Stats(ctx)
		if err != nil {
			return nil // Redis hiccup: the next tick tries again
		}
		key := fmt.Sprintf("%+v", st)
		if key == lastStats {
			return nil
		}
		lastStats = key
		return sse.event("", "queue", st)
	}
	if sendStats() != nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			if sse.event("", ev.Type, ev) != nil {
				return
			}
		case <-tick.C:
			if sendStats() != nil {
				return
			}
			if time.Since(lastPing) >= keepAlive {
				if sse.ping() != nil {
					return
				}
				lastPing = time.Now()
			}
		}
	}
}

// mergeDone returns a context that ends when either a or b does.
func mergeDone(a, b context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(a)
	stop := context.AfterFunc(b, cancel)
	return ctx, func() { stop(); cancel() }
}
