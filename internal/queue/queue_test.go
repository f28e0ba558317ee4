package queue_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/queue"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

type deadRecord struct {
	jobID, reason string
	deliveries    int
}

type fixture struct {
	q    *queue.Queue
	mu   sync.Mutex
	dead []deadRecord
}

func (f *fixture) deadLetters() []deadRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]deadRecord(nil), f.dead...)
}

// newQueue gives each test its own real redis-server.
func newQueue(t *testing.T, lease time.Duration) *fixture {
	t.Helper()
	r := testutil.StartRedis(t)
	f := &fixture{}
	f.q = queue.New(r.Client(), queue.Options{
		Lease: lease, MaxDeliveries: 3,
		OnDeadLetter: func(_ context.Context, d *queue.Delivery, reason string) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.dead = append(f.dead, deadRecord{d.JobID(), reason, d.Deliveries})
			return nil
		},
	})
	return f
}

func enqueue(t *testing.T, q *queue.Queue, jobID string) string {
	t.Helper()
	id, err := q.Enqueue(context.Background(), map[string]string{"job_id": jobID, "repo": "acme/widget"})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func claim(t *testing.T, q *queue.Queue, consumer string) *queue.Delivery {
	t.Helper()
	d, err := q.Claim(context.Background(), consumer, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func stats(t *testing.T, q *queue.Queue) queue.Stats {
	t.Helper()
	s, err := q.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestClaimAckOnRealRedis(t *testing.T) {
	f := newQueue(t, time.Second)
	id := enqueue(t, f.q, "j1")
	if s := stats(t, f.q); s.Lag != 1 || s.Pending != 0 || s.Length != 1 {
		t.Fatalf("after enqueue: %+v, want lag 1 pending 0 length 1", s)
	}
	d := claim(t, f.q, "a")
	if d == nil || d.ID != id || d.JobID() != "j1" || d.Deliveries != 1 || d.Fields["repo"] != "acme/widget" {
		t.Fatalf("claim = %+v", d)
	}
	if s := stats(t, f.q); s.Lag != 0 || s.Pending != 1 {
		t.Fatalf("after claim: %+v, want lag 0 pending 1", s)
	}
	if again := claim(t, f.q, "b"); again != nil {
		t.Fatalf("second consumer got the claimed entry %+v", again)
	}
	if err := f.q.Ack(context.Background(), d.ID); err != nil {
		t.Fatal(err)
	}
	// XACK leaves the entry in the stream: nothing is XDELed.
	if s := stats(t, f.q); s.Pending != 0 || s.Length != 1 {
		t.Fatalf("after ack: %+v, want pending 0 length 1", s)
	}
	if err := f.q.Heartbeat(context.Background(), d); !errors.Is(err, queue.ErrLeaseLost) {
		t.Fatalf("heartbeat after ack = %v, want ErrLeaseLost", err)
	}
}

// XREADGROUP BLOCK returns as soon as XADD happens, long before the block
// timeout: a waiting consumer sees the entry without a polling tick.
func TestBlockedClaimWakesOnEnqueue(t *testing.T) {
	f := newQueue(t, time.Second)
	if err := f.q.EnsureGroup(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := make(chan *queue.Delivery, 1)
	go func() {
		d, err := f.q.Claim(context.Background(), "a", 20*time.Second)
		if err != nil {
			t.Error(err)
		}
		got <- d
	}()
	time.Sleep(100 * time.Millisecond)
	enqueue(t, f.q, "j1")
	select {
	case d := <-got:
		if d == nil || d.JobID() != "j1" {
			t.Fatalf("claim = %+v", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocked claim did not wake on XADD")
	}
}

// A holder that heartbeats keeps its entry for three times the lease: neither
// another consumer's Claim nor the reaper ever gets it.
func TestLeaseKeepsHeartbeatingJobFromReclaim(t *testing.T) {
	const lease = 300 * time.Millisecond
	f := newQueue(t, lease)
	enqueue(t, f.q, "long")
	d := claim(t, f.q, "holder")
	if d == nil {
		t.Fatal("no delivery")
	}
	end := time.Now().Add(3 * lease)
	for time.Now().Before(end) {
		if err := f.q.Heartbeat(context.Background(), d); err != nil {
			t.Fatalf("heartbeat: %v", err)
		}
		if other := claim(t, f.q, "thief"); other != nil {
			t.Fatalf("entry delivered twice while its holder heartbeats: %+v", other)
		}
		if requeued, dead, err := f.q.Reap(context.Background()); err != nil || requeued+dead != 0 {
			t.Fatalf("reaper took a live lease: requeued %d dead %d err %v", requeued, dead, err)
		}
		time.Sleep(lease / 3)
	}
	if s := stats(t, f.q); s.Pending != 1 || s.Lag != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestCrashedConsumersEntryIsReclaimedAfterLease(t *testing.T) {
	const lease = 200 * time.Millisecond
	f := newQueue(t, lease)
	enqueue(t, f.q, "j1")
	crashed := claim(t, f.q, "crashed")
	if crashed == nil {
		t.Fatal("no delivery")
	}
	if d := claim(t, f.q, "live"); d != nil {
		t.Fatalf("reclaimed before the lease ran out: %+v", d)
	}
	time.Sleep(lease + 50*time.Millisecond)
	d := claim(t, f.q, "live")
	if d == nil || d.JobID() != "j1" || d.Deliveries != 2 || d.ID != crashed.ID {
		t.Fatalf("reclaim = %+v, want j1 with 2 deliveries", d)
	}
	// The crashed holder, were it only slow, learns it lost the entry.
	if err := f.q.Heartbeat(context.Background(), crashed); !errors.Is(err, queue.ErrLeaseLost) {
		t.Fatalf("old holder's heartbeat = %v, want ErrLeaseLost", err)
	}
	if err := f.q.Heartbeat(context.Background(), d); err != nil {
		t.Fatalf("new holder's heartbeat: %v", err)
	}
}

// The reaper turns an abandoned pending entry back into lag, which is what
// KEDA needs to start a pod when no agent is left.
func TestReaperRequeuesAbandonedEntryAsLag(t *testing.T) {
	const lease = 200 * time.Millisecond
	f := newQueue(t, lease)
	enqueue(t, f.q, "j1")
	if claim(t, f.q, "pod-1") == nil {
		t.Fatal("no delivery")
	}
	if s := stats(t, f.q); s.Lag != 0 || s.Pending != 1 {
		t.Fatalf("stats %+v", s)
	}
	time.Sleep(lease + 50*time.Millisecond)
	requeued, dead, err := f.q.Reap(context.Background())
	if err != nil || requeued != 1 || dead != 0 {
		t.Fatalf("reap = %d requeued %d dead %v", requeued, dead, err)
	}
	if s := stats(t, f.q); s.Lag != 1 || s.Pending != 0 {
		t.Fatalf("after reap: %+v, want lag 1 pending 0", s)
	}
	d := claim(t, f.q, "pod-2")
	if d == nil || d.JobID() != "j1" || d.Deliveries != 2 {
		t.Fatalf("claim after reap = %+v, want j1 with 2 deliveries", d)
	}
}

func TestDeadLetterAfterMaxDeliveries(t *testing.T) {
	const lease = 100 * time.Millisecond
	f := newQueue(t, lease)
	enqueue(t, f.q, "doomed")
	for i := 1; i <= 3; i++ {
		d := claim(t, f.q, "crashy")
		if d == nil || d.Deliveries != i {
			t.Fatalf("delivery %d = %+v", i, d)
		}
		time.Sleep(lease + 30*time.Millisecond)
	}
	if d := claim(t, f.q, "crashy"); d != nil {
		t.Fatalf("fourth delivery happened: %+v", d)
	}
	dead := f.deadLetters()
	if len(dead) != 1 || dead[0].jobID != "doomed" || dead[0].reason == "" {
		t.Fatalf("dead letters told = %+v", dead)
	}
	if s := stats(t, f.q); s.Dead != 1 || s.Pending != 0 || s.Lag != 0 {
		t.Fatalf("stats %+v, want dead 1 pending 0 lag 0", s)
	}
	letters, err := f.q.DeadLetters(context.Background(), 10)
	if err != nil || len(letters) != 1 || letters[0].Fields["job_id"] != "doomed" || letters[0].Fields["reason"] == "" {
		t.Fatalf("dead letters = %+v, %v", letters, err)
	}
}

func TestReaperDeadLettersAfterMaxDeliveries(t *testing.T) {
	const lease = 100 * time.Millisecond
	f := newQueue(t, lease)
	enqueue(t, f.q, "doomed")
	for i := 1; i <= 3; i++ {
		d := claim(t, f.q, "pod")
		if d == nil || d.Deliveries != i {
			t.Fatalf("delivery %d = %+v", i, d)
		}
		time.Sleep(lease + 30*time.Millisecond)
		requeued, dead, err := f.q.Reap(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if wantDead := i == 3; (dead == 1) != wantDead || (requeued == 1) == wantDead {
			t.Fatalf("round %d: requeued %d dead %d", i, requeued, dead)
		}
	}
	if s := stats(t, f.q); s.Dead != 1 || s.Lag != 0 || s.Pending != 0 {
		t.Fatalf("stats %+v", s)
	}
	if dead := f.deadLetters(); len(dead) != 1 || dead[0].deliveries != 3 {
		t.Fatalf("dead = %+v", dead)
	}
}

func TestReleaseDoesNotCountAsDelivery(t *testing.T) {
	f := newQueue(t, time.Second)
	enqueue(t, f.q, "j1")
	d := claim(t, f.q, "stopping")
	if _, err := f.q.Release(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if s := stats(t, f.q); s.Lag != 1 || s.Pending != 0 {
		t.Fatalf("after release %+v", s)
	}
	d2 := claim(t, f.q, "next")
	if d2 == nil || d2.JobID() != "j1" || d2.Deliveries != 1 {
		t.Fatalf("after release: %+v", d2)
	}
}

func TestStatsOnMissingStreamAreZero(t *testing.T) {
	f := newQueue(t, time.Second)
	s, err := f.q.Stats(context.Background())
	if err != nil {
		t.Fatalf("stats on a fresh Redis: %v", err)
	}
	if s != (queue.Stats{}) {
		t.Fatalf("stats = %+v, want zeros", s)
	}
	requeued, dead, err := f.q.Reap(context.Background())
	if err != nil || requeued+dead != 0 {
		t.Fatalf("reap on a fresh Redis: %d %d %v", requeued, dead, err)
	}
}

func TestEnqueueNeedsJobID(t *testing.T) {
	f := newQueue(t, time.Second)
	if _, err := f.q.Enqueue(context.Background(), map[string]string{"repo": "x"}); !errors.Is(err, queue.ErrNoJobID) {
		t.Fatalf("err = %v", err)
	}
}

// A delivery given up for a system failure comes back counted, and the
// MaxDeliveries-th failure makes it a dead letter with the reason.
func TestRetryCountsAndDeadLetters(t *testing.T) {
	f := newQueue(t, time.Second)
	enqueue(t, f.q, "flaky-clone")
	for i := 1; i <= 3; i++ {
		d := claim(t, f.q, "agent")
		if d == nil || d.Deliveries != i {
			t.Fatalf("delivery %d = %+v", i, d)
		}
		dead, err := f.q.Retry(context.Background(), d, "clone failed: connection refused")
		if err != nil || dead != (i == 3) {
			t.Fatalf("retry %d: dead=%v err=%v", i, dead, err)
		}
	}
	if s := stats(t, f.q); s.Dead != 1 || s.Lag != 0 || s.Pending != 0 {
		t.Fatalf("stats %+v", s)
	}
	if dl := f.deadLetters(); len(dl) != 1 || !strings.Contains(dl[0].reason, "clone failed") {
		t.Fatalf("dead letters %+v", dl)
	}
}
