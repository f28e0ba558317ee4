package testutil

import (
	"testing"
	"time"
)

// Eventually polls cond until it holds and reports whether it did within
// the time given: the one way tests wait for something another process or
// goroutine does, instead of sleeping a guessed while.
func Eventually(t testing.TB, within time.Duration, cond func() bool) bool {
	t.Helper()
	deadline := time.Now().Add(within)
	delay := time.Millisecond
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(delay)
		delay = min(2*delay, 250*time.Millisecond)
	}
}
