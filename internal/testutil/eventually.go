package testutil

import (
	"testing"
	"time"
)

// Eventually polls cond until it holds and reports whether it did within
// the time given: the one way tests wait for something another process or
// goroutine does, instead of sleeping a guessed while. It polls after 1 ms,
// then twice as long each time, up to every 250 ms.
func Eventually(t testing.TB, within time.Duration, cond func() bool) bool {
	t.Helper()
	return poll(within, time.Millisecond, func(d time.Duration) time.Duration { return min(2*d, 250*time.Millisecond) }, cond)
}

// EventuallyEvery is Eventually polling at a fixed interval: for waits
// whose polling must not load the machine being measured (a benchmark's
// wait for a job it times from the job's own timestamps).
func EventuallyEvery(t testing.TB, within, every time.Duration, cond func() bool) bool {
	t.Helper()
	return PollUntil(within, every, cond)
}

// poll is cond polled until within passes, waiting delay, then next(delay).
func poll(within, delay time.Duration, next func(time.Duration) time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(delay)
		delay = next(delay)
	}
}

// Consistently reports whether cond holds at every poll (every 50 ms) for
// the whole of within, returning false at the first poll it fails: the wait
// of a test that something does NOT happen ("two more polls launch
// nothing"). Unlike a sleep and one look at the end, it catches a change
// that came and went, and fails as soon as it comes.
func Consistently(t testing.TB, within time.Duration, cond func() bool) bool {
	t.Helper()
	// The same poll as EventuallyEvery's, looking for the first failure.
	return !PollUntil(within, consistentlyEvery, func() bool { return !cond() })
}

// consistentlyEvery is how often Consistently looks.
const consistentlyEvery = 50 * time.Millisecond

// PollUntil is EventuallyEvery for code with no testing.TB (a TestMain).
func PollUntil(within, every time.Duration, cond func() bool) bool {
	return poll(within, every, func(d time.Duration) time.Duration { return d }, cond)
}
