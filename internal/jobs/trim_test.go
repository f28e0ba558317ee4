package jobs_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/jobs"
	"github.com/raibid-labs/raibid-ci/internal/queue"
	"github.com/raibid-labs/raibid-ci/internal/store"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// groupLag reads what KEDA reads: XINFO GROUPS' lag (Redis ≥ 7), which is
// NULL (-1 here) when Redis can no longer tell.
func groupLag(t *testing.T, rdb *redis.Client) (lag, pending int64, lastDelivered string) {
	t.Helper()
	gs, err := rdb.XInfoGroups(context.Background(), queue.DefaultStream).Result()
	if err != nil || len(gs) != 1 {
		t.Fatalf("xinfo groups: %v %v", gs, err)
	}
	return gs[0].Lag, gs[0].Pending, gs[0].LastDeliveredID
}

// Trimming drops acked entries only: with entries acked, dead-lettered,
// pending (held by an agent) and not yet delivered, KEDA's lag and the
// pending count are the same after the trim, and a job queued after it is
// claimed as before.
func TestTrimKeepsLagPendingAndUndelivered(t *testing.T) {
	r := testutil.StartRedis(t)
	rdb := r.Client()
	ctx := context.Background()
	q := queue.New(rdb, queue.Options{Lease: time.Minute})
	st := store.New(rdb, store.Options{})
	l := jobs.New(st, q, jobs.Options{MaxDeliveries: 1})
	name := map[string]string{} // job id → job-<n>
	submit := func(n string) {
		id, _, err := l.Submit(ctx, push("acme/"+n, "main"), "")
		if err != nil {
			t.Fatal(err)
		}
		name[id] = n
	}
	for i := range 10 {
		submit(fmt.Sprint("job-", i))
	}
	var held []*jobs.Claimed
	for i := range 6 {
		run, err := l.Claim(ctx, "agent", 10*time.Millisecond, nil)
		if err != nil || run == nil {
			t.Fatalf("claim %d: %v", i, err)
		}
		switch i {
		case 0, 1, 3:
			run.Finish(ctx, jobs.Verdict{Status: ci.StatusSuccess}) // done
		case 4:
			if dead, err := run.Requeue(ctx, "boom"); err != nil || !dead { // MaxDeliveries 1: dead letter
				t.Fatalf("requeue: %v %v", dead, err)
			}
		default:
			held = append(held, run) // 2 and 5 stay pending
		}
	}
	lag, pending, last := groupLag(t, rdb)
	if lag != 4 || pending != 2 {
		t.Fatalf("before trim: lag %d pending %d", lag, pending)
	}
	n, err := q.Trim(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 { // job-0 and job-1: below the oldest pending (job-2)
		t.Fatalf("trimmed %d entries, want the 2 acked below the oldest pending", n)
	}
	lag2, pending2, last2 := groupLag(t, rdb)
	if lag2 != lag || pending2 != pending || last2 != last {
		t.Fatalf("after trim: lag %d→%d, pending %d→%d, last %s→%s", lag, lag2, pending, pending2, last, last2)
	}
	// The held entries finish; everything delivered can now go.
	for _, run := range held {
		run.Finish(ctx, jobs.Verdict{Status: ci.StatusSuccess})
	}
	if n, _ := q.Trim(ctx); n != 4 {
		t.Fatalf("second trim removed %d, want 4 (job-2 to job-5)", n)
	}
	if lag3, _, _ := groupLag(t, rdb); lag3 != 4 {
		t.Fatalf("lag after the second trim %d, want 4", lag3)
	}
	if l, _ := rdb.XLen(ctx, queue.DefaultStream).Result(); l != 4 {
		t.Fatalf("stream length %d, want the 4 undelivered", l)
	}
	// Queued after the trims: claimed in order, after the older ones.
	submit("job-late")
	var got []string
	for range 5 {
		run, err := l.Claim(ctx, "agent", 10*time.Millisecond, nil)
		if err != nil || run == nil {
			t.Fatalf("claim after trim: %v", err)
		}
		got = append(got, name[run.Job.ID])
		run.Finish(ctx, jobs.Verdict{Status: ci.StatusSuccess})
	}
	if fmt.Sprint(got) != "[job-6 job-7 job-8 job-9 job-late]" {
		t.Fatalf("claimed %v", got)
	}
	if lag, _, _ := groupLag(t, rdb); lag != 0 {
		t.Fatalf("lag at the end %d", lag)
	}
}

// The dead-letter stream keeps about DeadLetterMax entries.
func TestDeadLettersAreBounded(t *testing.T) {
	r := testutil.StartRedis(t)
	ctx := context.Background()
	st := store.New(r.Client(), store.Options{})
	l := jobs.New(st, queue.New(r.Client(), queue.Options{}), jobs.Options{MaxDeliveries: 1, DeadLetterMax: 10})
	for range 300 {
		l.Submit(ctx, push("acme/doomed", "main"), "")
		run, err := l.Claim(ctx, "agent", 10*time.Millisecond, nil)
		if err != nil || run == nil {
			t.Fatalf("claim: %v", err)
		}
		run.Requeue(ctx, "boom")
	}
	// MAXLEN ~ trims whole nodes of the stream: about, never far above.
	if n, _ := r.Client().XLen(ctx, queue.DefaultStream+":dead").Result(); n < 10 || n > 150 {
		t.Fatalf("dead-letter stream holds %d entries, want about 10", n)
	}
}
