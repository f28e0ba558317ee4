package testutil

import (
	"sync"
	"time"
)

// StepClock is a clock for tests that must see time pass without waiting:
// each reading is step later than the one before, from start.
func StepClock(start time.Time, step time.Duration) func() time.Time {
	var mu sync.Mutex
	t := start
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now := t
		t = t.Add(step)
		return now
	}
}
