// Package ticker runs a control loop's round at an interval until its
// context ends: the one way raibid's background loops (reaper, expiry,
// schedules, executor reconcile) wait between rounds, so each stops
// promptly on shutdown.
package ticker

import (
	"context"
	"time"
)

// Every calls round each interval (the first after one interval) until ctx
// ends; it returns then, never in the middle of a round.
func Every(ctx context.Context, interval time.Duration, round func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		round()
	}
}
