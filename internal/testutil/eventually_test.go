package testutil

import (
	"sync/atomic"
	"testing"
	"time"
)

// Consistently holds only while its condition does: it answers false at
// the first poll that fails (without waiting out the rest), and true when
// every poll of the period held.
func TestConsistently(t *testing.T) {
	var calls atomic.Int32
	if Consistently(t, time.Hour, func() bool { calls.Add(1); return false }) {
		t.Fatal("a condition false from the start held")
	}
	if calls.Load() != 1 {
		t.Fatalf("%d looks at a condition that failed the first", calls.Load())
	}

	flip := time.Now().Add(120 * time.Millisecond)
	if Consistently(t, time.Hour, func() bool { return time.Now().Before(flip) }) {
		t.Fatal("a condition that turned false held")
	}

	calls.Store(0)
	if !Consistently(t, 200*time.Millisecond, func() bool { calls.Add(1); return true }) {
		t.Fatal("a condition always true did not hold")
	}
	if calls.Load() < 3 {
		t.Fatalf("the condition was looked at %d times in 200 ms", calls.Load())
	}
}
