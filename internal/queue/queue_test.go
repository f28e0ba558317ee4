package queue_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raibid-labs/raibid-ci/internal/queue"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// The queue only reads the stream; entries are added here with a raw XADD
// (internal/jobs adds them with their job, in its submit script).
func newQueue(t *testing.T, lease time.Duration) (*queue.Queue, *redis.Client) {
	t.Helper()
	r := testutil.StartRedis(t)
	q := queue.New(r.Client(), queue.Options{Lease: lease})
	if err := q.EnsureGroup(context.Background()); err != nil {
		t.Fatal(err)
	}
	return q, r.Client()
}

func add(t *testing.T, rdb *redis.Client, jobID string) string {
	t.Helper()
	id, err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: queue.DefaultStream,
		Values: map[string]any{queue.FieldJobID: jobID, "repo": "acme/widget"}}).Result()
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

// An entry goes to one consumer; after an ack its lease is gone.
func TestClaimDeliversOnce(t *testing.T) {
	q, rdb := newQueue(t, time.Second)
	ctx := context.Background()
	id := add(t, rdb, "j1")
	d := claim(t, q, "a")
	if d == nil || d.ID != id || d.JobID() != "j1" || d.Deliveries != 1 || d.Fields["repo"] != "acme/widget" || d.Reclaimed {
		t.Fatalf("claim = %+v", d)
	}
	if again := claim(t, q, "b"); again != nil {
		t.Fatalf("second consumer got the claimed entry %+v", again)
	}
	if err := q.Heartbeat(ctx, d); err != nil {
		t.Fatal(err)
	}
	rdb.XAck(ctx, queue.DefaultStream, queue.DefaultGroup, d.ID)
	if err := q.Heartbeat(ctx, d); !errors.Is(err, queue.ErrLeaseLost) {
		t.Fatalf("heartbeat after ack = %v, want ErrLeaseLost", err)
	}
}

// XREADGROUP BLOCK returns as soon as XADD happens, long before the block
// timeout: a waiting consumer sees the entry without a polling tick.
func TestBlockedClaimWakesOnXADD(t *testing.T) {
	q, rdb := newQueue(t, time.Second)
	got := make(chan *queue.Delivery, 1)
	go func() {
		d, err := q.Claim(context.Background(), "a", 20*time.Second)
		if err != nil {
			t.Error(err)
		}
		got <- d
	}()
	testutil.WaitBlocked(t, rdb, 1)
	add(t, rdb, "j1")
	select {
	case d := <-got:
		if d == nil || d.JobID() != "j1" {
			t.Fatalf("claim = %+v", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocked claim did not wake on XADD")
	}
}

// An entry idle past the lease goes to the next consumer that claims,
// counted as a second delivery, and its old holder's heartbeat fails; the
// reaper's takeover is not counted as a delivery.
func TestIdleEntryIsReclaimedAfterLease(t *testing.T) {
	const lease = 200 * time.Millisecond
	q, rdb := newQueue(t, lease)
	add(t, rdb, "j1")
	crashed := claim(t, q, "crashed")
	if d := claim(t, q, "live"); d != nil {
		t.Fatalf("reclaimed before the lease ran out: %+v", d)
	}
	testutil.WaitPendingIdle(t, rdb, queue.DefaultStream, queue.DefaultGroup, lease)
	d := claim(t, q, "live")
	if d == nil || d.ID != crashed.ID || d.Deliveries != 2 || !d.Reclaimed {
		t.Fatalf("reclaim = %+v, want the entry with 2 deliveries", d)
	}
	if err := q.Heartbeat(context.Background(), crashed); !errors.Is(err, queue.ErrLeaseLost) {
		t.Fatalf("old holder's heartbeat = %v, want ErrLeaseLost", err)
	}
	testutil.WaitPendingIdle(t, rdb, queue.DefaultStream, queue.DefaultGroup, lease)
	ab, err := q.Abandoned(context.Background(), 10)
	if err != nil || len(ab) != 1 || ab[0].Deliveries != 2 || ab[0].Consumer != queue.ReaperConsumer {
		t.Fatalf("abandoned = %+v, %v", ab, err)
	}
}

func TestStatsOnMissingStreamAreZero(t *testing.T) {
	r := testutil.StartRedis(t)
	q := queue.New(r.Client(), queue.Options{})
	s, err := q.Stats(context.Background())
	if err != nil {
		t.Fatalf("stats on a fresh Redis: %v", err)
	}
	if s != (queue.Stats{}) {
		t.Fatalf("stats = %+v, want zeros", s)
	}
	if ab, err := q.Abandoned(context.Background(), 10); err != nil || len(ab) != 0 {
		t.Fatalf("abandoned on a fresh Redis: %v %v", ab, err)
	}
}
