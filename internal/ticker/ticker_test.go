package ticker_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ticker"
)

// Rounds come at the interval and stop when the context ends.
func TestEveryStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var rounds atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		ticker.Every(ctx, 10*time.Millisecond, func() {
			if rounds.Add(1) == 3 {
				cancel()
			}
		})
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Every did not return after its context ended")
	}
	if n := rounds.Load(); n != 3 {
		t.Fatalf("%d rounds, want 3", n)
	}
}
