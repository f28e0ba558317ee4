package store_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/jobs"
	"github.com/raibid-labs/raibid-ci/internal/store"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// countingHook counts the round trips a client makes (a pipeline is one).
type countingHook struct{ n atomic.Int64 }

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}
func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.n.Add(1); return next(ctx, cmds) }
}

// A filtered list costs the same number of round trips whether 100,000 jobs
// that do not match came before the ones that do (counted, not timed).
func TestFilteredListCostIndependentOfHistory(t *testing.T) {
	r := testutil.StartRedis(t)
	ctx := context.Background()
	st := testutil.NewJobs(r.Client(), 0)
	submit := func(repo string, n int) {
		var wg sync.WaitGroup
		work := make(chan int)
		for range 8 {
			wg.Go(func() {
				for range work {
					if _, _, err := st.Submit(ctx, push(repo, "main"), ""); err != nil {
						t.Error(err)
					}
				}
			})
		}
		for i := range n {
			work <- i
		}
		close(work)
		wg.Wait()
	}
	rare := func() {
		for range 3 {
			j := push("acme/rare", "release")
			j.Event, j.Tag = ci.EventTag, "v1"
			id, _, _ := st.Submit(ctx, j, "")
			st.Transition(ctx, id, jobs.Change{From: []ci.Status{ci.StatusPending}, To: ci.StatusRunning})
			st.Transition(ctx, id, jobs.Change{From: []ci.Status{ci.StatusRunning}, To: ci.StatusFailed})
		}
	}
	count := func() map[string]int64 {
		hook := &countingHook{}
		// One connection, opened before counting: its handshake is not the
		// list's cost.
		c := redis.NewClient(&redis.Options{Addr: r.Addr, PoolSize: 1})
		defer c.Close()
		c.AddHook(hook)
		counting := store.New(c, store.Options{})
		filters := map[string]store.Filter{
			"status": {Status: ci.StatusFailed}, "repo": {Repo: "acme/rare"}, "branch": {Branch: "release"},
			"event": {Event: ci.EventTag},
		}
		// A first round loads the scripts and settles the connection: its
		// one-time commands are not the cost of a page.
		for _, f := range filters {
			counting.List(ctx, f)
		}
		out := map[string]int64{}
		for name, f := range filters {
			before := hook.n.Load()
			jobs, next, err := counting.List(ctx, f)
			if err != nil || len(jobs) < 3 || next != "" {
				t.Fatalf("%s filter: %d jobs, next %q, %v", name, len(jobs), next, err)
			}
			out[name] = hook.n.Load() - before
		}
		return out
	}
	rare()
	submit("acme/filler", 1000)
	small := count()
	submit("acme/filler", 99000)
	rare()
	big := count()
	for name := range small {
		if big[name] != small[name] || big[name] > 2 {
			t.Errorf("%s filter: %d round trips with 1,000 filler jobs, %d with 100,000", name, small[name], big[name])
		}
	}
	t.Logf("round trips per filtered page: %v", big)
}
