package jobs_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/jobs"
	"github.com/raibid-labs/raibid-ci/internal/queue"
	"github.com/raibid-labs/raibid-ci/internal/store"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

var combos = []map[string]string{{"os": "linux"}, {"os": "mac"}, {"os": "bsd"}}

// A plan cut short (the agent lost its lease after queueing the siblings)
// and made again by the job's next holder queues each combination once:
// the job becomes the first, in a group named by its id.
func TestMatrixPlanQueuesEachCombinationOnce(t *testing.T) {
	const lease = 200 * time.Millisecond
	f := newRuns(t, lease)
	ctx := context.Background()
	id := f.submit(t)
	old := f.claim(t, "slow")
	var run *jobs.Claimed
	testutil.Eventually(t, 10*lease, func() bool { run = f.claim(t, "live"); return run != nil }) // once the lease is out
	if run == nil || run.Job.ID != id {
		t.Fatalf("reclaim = %+v", run)
	}
	if _, err := old.Plan(ctx, jobs.Plan{Matrix: combos}); !errors.Is(err, jobs.ErrLeaseLost) {
		t.Fatalf("the old holder's plan = %v, want ErrLeaseLost", err)
	}
	planned, err := run.Plan(ctx, jobs.Plan{Matrix: combos})
	if err != nil || planned.HandedOff || len(planned.Siblings) != 2 {
		t.Fatalf("plan = %+v, %v", planned, err)
	}
	members, _, err := f.Store.List(ctx, store.Filter{Group: id})
	if err != nil || len(members) != 3 {
		t.Fatalf("group %s has %d jobs (%v), want 3", id, len(members), err)
	}
	labels := map[string]string{}
	for _, m := range members {
		labels[ci.MatrixLabel(m.Matrix)] = string(m.Status)
	}
	if labels["os=linux"] != "running" || labels["os=mac"] != "pending" || labels["os=bsd"] != "pending" {
		t.Fatalf("members %v", labels)
	}
	if j := f.job(t, id); j.Group != id || ci.MatrixLabel(j.Matrix) != "os=linux" || run.Job.Group != id {
		t.Fatalf("the planned job: group %q matrix %v", j.Group, j.Matrix)
	}
	if st := f.stats(t); st.Lag != 2 {
		t.Fatalf("lag %d, want the 2 siblings", st.Lag)
	}
}

// A job whose pipeline needs a GPU is handed to the GPU stream: pending
// again, its GPUs recorded, this entry acked, a new one there that is not
// counted as a delivery.
func TestHandoffMovesTheJobToAnotherStream(t *testing.T) {
	f := newRuns(t, 30*time.Second)
	ctx := context.Background()
	gq := queue.New(f.r.Client(), queue.Options{Keys: queue.GPUKeysWithPrefix("")})
	gpu := jobs.New(f.Store, gq, jobs.Options{})
	id := f.submit(t)
	run := f.claim(t, "cpu")
	planned, err := run.Plan(ctx, jobs.Plan{GPUs: 2, To: gpu})
	if err != nil || !planned.HandedOff {
		t.Fatalf("plan = %+v, %v", planned, err)
	}
	if j := f.job(t, id); j.Status != ci.StatusPending || j.GPUs != 2 || j.Agent != "" {
		t.Fatalf("handed-off job: %s gpus %d agent %q", j.Status, j.GPUs, j.Agent)
	}
	if st := f.stats(t); st.Lag != 0 || st.Pending != 0 {
		t.Fatalf("main stream %+v, want nothing left", st)
	}
	if _, err := run.Finish(ctx, jobs.Verdict{Status: ci.StatusSuccess}); !errors.Is(err, jobs.ErrLeaseLost) {
		t.Fatalf("finish after the handoff = %v, want ErrLeaseLost", err)
	}
	next, err := gpu.Claim(ctx, "gpu", 100*time.Millisecond, nil)
	if err != nil || next == nil || next.Job.ID != id || next.Job.GPUs != 2 || next.Job.Attempt != 1 || next.Entry.Deliveries != 1 {
		t.Fatalf("GPU claim = %+v, %v", next, err)
	}
}

// A cancelled job is not planned: its entry is acked and nothing queued.
func TestPlanOfACancelledJobQueuesNothing(t *testing.T) {
	f := newRuns(t, 30*time.Second)
	ctx := context.Background()
	id := f.submit(t)
	run := f.claim(t, "a")
	if _, err := f.Cancel(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := run.Plan(ctx, jobs.Plan{GPUs: 1}); !errors.Is(err, ci.ErrConflict) {
		t.Fatalf("plan = %v, want a conflict", err)
	}
	if st := f.stats(t); st.Lag != 0 || st.Pending != 0 {
		t.Fatalf("stream %+v", st)
	}
}
