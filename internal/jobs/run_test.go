package jobs_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/jobs"
	"github.com/raibid-labs/raibid-ci/internal/queue"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// runFixture is a lifecycle on a real redis-server with a given lease.
type runFixture struct {
	*testutil.Jobs
	q       *queue.Queue
	r       *testutil.Redis
	skipped []string
}

func newRuns(t *testing.T, lease time.Duration) *runFixture {
	t.Helper()
	r := testutil.StartRedis(t)
	jb := testutil.NewJobs(r.Client(), lease)
	return &runFixture{Jobs: jb, q: jb.Queue, r: r}
}

func (f *runFixture) submit(t *testing.T) string {
	t.Helper()
	id, _, err := f.Submit(context.Background(), push("acme/widget", "main"), "")
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (f *runFixture) claim(t *testing.T, agent string) *jobs.Claimed {
	t.Helper()
	run, err := f.Claim(context.Background(), agent, 10*time.Millisecond, func(_ *queue.Delivery, why string) {
		f.skipped = append(f.skipped, why)
	})
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func (f *runFixture) stats(t *testing.T) queue.Stats {
	t.Helper()
	s, err := f.q.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *runFixture) job(t *testing.T, id string) *ci.Job {
	t.Helper()
	j, err := f.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// A claim marks the job running on its agent and a finish records the
// verdict and acks, in one step each: the queue and the job agree after
// each.
func TestClaimStartsAndFinishAcks(t *testing.T) {
	f := newRuns(t, time.Second)
	ctx := context.Background()
	id := f.submit(t)
	if s := f.stats(t); s.Lag != 1 || s.Pending != 0 || s.Length != 1 {
		t.Fatalf("after submit: %+v, want lag 1 pending 0 length 1", s)
	}
	run := f.claim(t, "a")
	if run == nil || run.Job.ID != id || run.Job.Status != ci.StatusRunning || run.Job.Agent != "a" || run.Entry.Deliveries != 1 {
		t.Fatalf("claim = %+v", run)
	}
	if j := f.job(t, id); j.Status != ci.StatusRunning || j.StartedAt == nil {
		t.Fatalf("job after claim = %+v", j)
	}
	if s := f.stats(t); s.Lag != 0 || s.Pending != 1 {
		t.Fatalf("after claim: %+v, want lag 0 pending 1", s)
	}
	if again := f.claim(t, "b"); again != nil {
		t.Fatalf("second agent got the claimed job %+v", again)
	}
	steps := []ci.Step{{Name: "test", Status: ci.StatusSuccess}}
	if err := run.Progress(ctx, steps); err != nil {
		t.Fatal(err)
	}
	done, err := run.Finish(ctx, jobs.Verdict{Status: ci.StatusSuccess, Steps: steps, Fields: map[string]string{"cache_fresh": "3"}})
	if err != nil || done.Status != ci.StatusSuccess || done.FinishedAt == nil || len(done.Steps) != 1 || done.CacheFresh != 3 {
		t.Fatalf("finish = %+v, %v", done, err)
	}
	// XACK leaves the entry in the stream: nothing is XDELed.
	if s := f.stats(t); s.Pending != 0 || s.Length != 1 {
		t.Fatalf("after finish: %+v, want pending 0 length 1", s)
	}
	if err := run.Heartbeat(ctx); !errors.Is(err, jobs.ErrLeaseLost) {
		t.Fatalf("heartbeat after finish = %v, want ErrLeaseLost", err)
	}
}

// XREADGROUP BLOCK returns as soon as the submit's XADD happens, long before
// the block timeout: a waiting agent sees the job without a polling tick.
func TestBlockedClaimWakesOnSubmit(t *testing.T) {
	f := newRuns(t, time.Second)
	got := make(chan *jobs.Claimed, 1)
	go func() {
		run, err := f.Claim(context.Background(), "a", 20*time.Second, nil)
		if err != nil {
			t.Error(err)
		}
		got <- run
	}()
	testutil.WaitBlocked(t, f.r.Client(), 1)
	id := f.submit(t)
	select {
	case run := <-got:
		if run == nil || run.Job.ID != id {
			t.Fatalf("claim = %+v", run)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocked claim did not wake on submit")
	}
}

// A holder that heartbeats keeps its job for three times the lease: neither
// another agent's Claim nor the reaper ever gets it.
func TestLeaseKeepsHeartbeatingJobFromReclaim(t *testing.T) {
	const lease = 300 * time.Millisecond
	f := newRuns(t, lease)
	f.submit(t)
	run := f.claim(t, "holder")
	if run == nil {
		t.Fatal("no run")
	}
	// Heartbeats three times a lease, as the agent does, for three leases.
	beat := time.NewTicker(lease / 3)
	defer beat.Stop()
	for range 9 {
		if err := run.Heartbeat(context.Background()); err != nil {
			t.Fatalf("heartbeat: %v", err)
		}
		if other := f.claim(t, "thief"); other != nil {
			t.Fatalf("job delivered twice while its holder heartbeats: %+v", other)
		}
		if requeued, dead, err := f.Reap(context.Background()); err != nil || requeued+dead != 0 {
			t.Fatalf("reaper took a live lease: requeued %d dead %d err %v", requeued, dead, err)
		}
		<-beat.C
	}
	if s := f.stats(t); s.Pending != 1 || s.Lag != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// A crashed agent's job is reclaimed by a live one after the lease; the old
// holder, were it only slow, can no longer finish it: its verdict writes
// nothing, and the new holder's stands.
func TestReclaimedJobCannotBeFinishedByItsOldHolder(t *testing.T) {
	const lease = 200 * time.Millisecond
	f := newRuns(t, lease)
	ctx := context.Background()
	id := f.submit(t)
	old := f.claim(t, "slow")
	if old == nil {
		t.Fatal("no run")
	}
	if run := f.claim(t, "live"); run != nil {
		t.Fatalf("reclaimed before the lease ran out: %+v", run)
	}
	testutil.WaitPendingIdle(t, f.r.Client(), queue.DefaultStream, queue.DefaultGroup, lease)
	run := f.claim(t, "live")
	if run == nil || run.Job.ID != id || run.Entry.Deliveries != 2 || run.Job.Agent != "live" || run.Job.Attempt != 2 {
		t.Fatalf("reclaim = %+v, want the job on live, delivery 2, attempt 2", run)
	}
	if err := old.Heartbeat(ctx); !errors.Is(err, jobs.ErrLeaseLost) {
		t.Fatalf("old holder's heartbeat = %v, want ErrLeaseLost", err)
	}
	if _, err := old.Finish(ctx, jobs.Verdict{Status: ci.StatusFailed, Error: "stale"}); !errors.Is(err, jobs.ErrLeaseLost) {
		t.Fatalf("old holder's finish = %v, want ErrLeaseLost", err)
	}
	if j := f.job(t, id); j.Status != ci.StatusRunning || j.Agent != "live" {
		t.Fatalf("the old holder's verdict was written: %+v", j)
	}
	if _, err := run.Finish(ctx, jobs.Verdict{Status: ci.StatusSuccess}); err != nil {
		t.Fatal(err)
	}
}

// The reaper turns an abandoned job back into lag, which is what KEDA needs
// to start a pod when no agent is left; the job reads pending again.
func TestReaperRequeuesAbandonedJobAsLag(t *testing.T) {
	const lease = 200 * time.Millisecond
	f := newRuns(t, lease)
	id := f.submit(t)
	first := f.claim(t, "pod-1")
	if first == nil {
		t.Fatal("no run")
	}
	// The agent was killed mid-step: its step still reads running.
	now := time.Now()
	if err := first.Progress(context.Background(), []ci.Step{{Name: "build", Status: ci.StatusRunning, StartedAt: &now}}); err != nil {
		t.Fatal(err)
	}
	if s := f.stats(t); s.Lag != 0 || s.Pending != 1 {
		t.Fatalf("stats %+v", s)
	}
	testutil.WaitPendingIdle(t, f.r.Client(), queue.DefaultStream, queue.DefaultGroup, lease)
	requeued, dead, err := f.Reap(context.Background())
	if err != nil || requeued != 1 || dead != 0 {
		t.Fatalf("reap = %d requeued %d dead %v", requeued, dead, err)
	}
	if s := f.stats(t); s.Lag != 1 || s.Pending != 0 {
		t.Fatalf("after reap: %+v, want lag 1 pending 0", s)
	}
	if j := f.job(t, id); j.Status != ci.StatusPending || j.Agent != "" || !strings.Contains(j.Error, "stopped heartbeating") || len(j.Steps) != 0 {
		t.Fatalf("job after reap = %+v (a pending job shows no running step)", j)
	}
	run := f.claim(t, "pod-2")
	if run == nil || run.Job.ID != id || run.Entry.Deliveries != 2 || run.Job.Error != "" {
		t.Fatalf("claim after reap = %+v, want the job with 2 deliveries", run)
	}
}

// A job whose agents keep dying is a dead letter after MaxDeliveries, and
// ends in error with the reason, in the same step.
func TestDeadLetterAfterMaxDeliveries(t *testing.T) {
	const lease = 100 * time.Millisecond
	f := newRuns(t, lease)
	id := f.submit(t)
	for i := 1; i <= 3; i++ {
		run := f.claim(t, "crashy")
		if run == nil || run.Entry.Deliveries != i {
			t.Fatalf("delivery %d = %+v", i, run)
		}
		testutil.WaitPendingIdle(t, f.r.Client(), queue.DefaultStream, queue.DefaultGroup, lease)
	}
	if run := f.claim(t, "crashy"); run != nil {
		t.Fatalf("fourth delivery happened: %+v", run)
	}
	if len(f.skipped) != 1 || !strings.Contains(f.skipped[0], "dead letter") {
		t.Fatalf("skipped = %q", f.skipped)
	}
	if j := f.job(t, id); j.Status != ci.StatusError || !strings.Contains(j.Error, "dead letter") || j.FinishedAt == nil {
		t.Fatalf("job = %+v", j)
	}
	if s := f.stats(t); s.Dead != 1 || s.Pending != 0 || s.Lag != 0 {
		t.Fatalf("stats %+v, want dead 1 pending 0 lag 0", s)
	}
	letters, err := f.q.DeadLetters(context.Background(), 10)
	if err != nil || len(letters) != 1 || letters[0].Fields["job_id"] != id || letters[0].Fields["reason"] == "" || letters[0].Fields["repo"] != "acme/widget" {
		t.Fatalf("dead letters = %+v, %v", letters, err)
	}
}

func TestReaperDeadLettersAfterMaxDeliveries(t *testing.T) {
	const lease = 100 * time.Millisecond
	f := newRuns(t, lease)
	id := f.submit(t)
	for i := 1; i <= 3; i++ {
		run := f.claim(t, "pod")
		if run == nil || run.Entry.Deliveries != i {
			t.Fatalf("delivery %d = %+v", i, run)
		}
		testutil.WaitPendingIdle(t, f.r.Client(), queue.DefaultStream, queue.DefaultGroup, lease)
		requeued, dead, err := f.Reap(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if wantDead := i == 3; (dead == 1) != wantDead || (requeued == 1) == wantDead {
			t.Fatalf("round %d: requeued %d dead %d", i, requeued, dead)
		}
	}
	if s := f.stats(t); s.Dead != 1 || s.Lag != 0 || s.Pending != 0 {
		t.Fatalf("stats %+v", s)
	}
	letters, _ := f.q.DeadLetters(context.Background(), 10)
	if len(letters) != 1 || letters[0].Fields["deliveries"] != "3" {
		t.Fatalf("dead letters = %+v", letters)
	}
	if j := f.job(t, id); j.Status != ci.StatusError {
		t.Fatalf("job = %+v", j)
	}
}

// An agent shutting down hands its job back: pending again at once, in a new
// entry, the interrupted delivery not counted.
func TestReleaseDoesNotCountAsDelivery(t *testing.T) {
	f := newRuns(t, time.Second)
	id := f.submit(t)
	run := f.claim(t, "stopping")
	run.Progress(context.Background(), []ci.Step{{Name: "build", Status: ci.StatusRunning}})
	if err := run.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := f.stats(t); s.Lag != 1 || s.Pending != 0 {
		t.Fatalf("after release %+v", s)
	}
	if j := f.job(t, id); j.Status != ci.StatusPending || j.Agent != "" || len(j.Steps) != 0 {
		t.Fatalf("job after release = %+v", j)
	}
	next := f.claim(t, "next")
	if next == nil || next.Job.ID != id || next.Entry.Deliveries != 1 || next.Job.Attempt != 1 {
		t.Fatalf("after release: %+v", next)
	}
}

func TestReapOnFreshRedisDoesNothing(t *testing.T) {
	f := newRuns(t, time.Second)
	requeued, dead, err := f.Reap(context.Background())
	if err != nil || requeued+dead != 0 {
		t.Fatalf("reap on a fresh Redis: %d %d %v", requeued, dead, err)
	}
}

// A delivery given up for a system failure comes back counted, the job
// pending with the reason meanwhile; the MaxDeliveries-th failure makes it a
// dead letter and ends the job in error.
func TestRequeueCountsAndDeadLetters(t *testing.T) {
	f := newRuns(t, time.Second)
	id := f.submit(t)
	for i := 1; i <= 3; i++ {
		run := f.claim(t, "agent")
		if run == nil || run.Entry.Deliveries != i {
			t.Fatalf("delivery %d = %+v", i, run)
		}
		dead, err := run.Requeue(context.Background(), "clone failed: connection refused")
		if err != nil || dead != (i == 3) {
			t.Fatalf("requeue %d: dead=%v err=%v", i, dead, err)
		}
		if j := f.job(t, id); i < 3 && (j.Status != ci.StatusPending || !strings.Contains(j.Error, "connection refused")) {
			t.Fatalf("job after requeue %d = %+v", i, j)
		}
	}
	if s := f.stats(t); s.Dead != 1 || s.Lag != 0 || s.Pending != 0 {
		t.Fatalf("stats %+v", s)
	}
	if j := f.job(t, id); j.Status != ci.StatusError || !strings.Contains(j.Error, "clone failed") {
		t.Fatalf("job = %+v", j)
	}
}

// A job cancelled while queued keeps its entry (KEDA's lag must still count
// it); the agent that claims it skips and acks it. A job cancelled while
// running is acked with how far its steps got.
func TestCancelledJobsAreSkippedOrEnded(t *testing.T) {
	f := newRuns(t, time.Second)
	ctx := context.Background()
	queued := f.submit(t)
	if _, err := f.Cancel(ctx, queued); err != nil {
		t.Fatal(err)
	}
	if s := f.stats(t); s.Lag != 1 {
		t.Fatalf("a cancelled queued job left the lag: %+v", s)
	}
	if run := f.claim(t, "a"); run != nil {
		t.Fatalf("cancelled job started: %+v", run)
	}
	if s := f.stats(t); s.Lag != 0 || s.Pending != 0 || len(f.skipped) != 1 || !strings.Contains(f.skipped[0], "cancelled") {
		t.Fatalf("after skip: %+v, skipped %q", s, f.skipped)
	}
	running := f.submit(t)
	run := f.claim(t, "a")
	f.Cancel(ctx, running)
	if c, err := run.Cancelled(ctx); err != nil || !c {
		t.Fatalf("cancelled = %v, %v", c, err)
	}
	if _, err := run.Finish(ctx, jobs.Verdict{Status: ci.StatusSuccess}); !errors.Is(err, ci.ErrConflict) {
		t.Fatalf("finish after cancel = %v, want a conflict", err)
	}
	if s := f.stats(t); s.Pending != 0 {
		t.Fatalf("the conflicting finish did not ack: %+v", s)
	}
	if j := f.job(t, running); j.Status != ci.StatusCancelled {
		t.Fatalf("job = %+v", j)
	}
}
