package store_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raibid-labs/raibid-ci/internal/ci"
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
	st := store.New(r.Client(), store.Options{})
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
			id, _, _ := st.Submit(ctx, push("acme/rare", "release"), "")
			st.Transition(ctx, id, store.Change{From: []ci.Status{ci.StatusPending}, To: ci.StatusRunning})
			st.Transition(ctx, id, store.Change{From: []ci.Status{ci.StatusRunning}, To: ci.StatusFailed})
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

// Expire removes a finished job on schedule — its hash, its log and every
// index entry — so nothing dead stays in an index.
func TestExpireRemovesJobsAndTheirIndexEntries(t *testing.T) {
	r := testutil.StartRedis(t)
	ctx := context.Background()
	st := store.New(r.Client(), store.Options{FinishedTTL: time.Second, LogTTL: time.Second})
	id, _, _ := st.Submit(ctx, push("acme/old", "main"), "")
	keep, _, _ := st.Submit(ctx, push("acme/old", "main"), "")
	st.AppendLog(ctx, id, ci.LogLine{Text: "x"})
	st.Transition(ctx, id, store.Change{From: []ci.Status{ci.StatusPending}, To: ci.StatusCancelled})
	time.Sleep(1100 * time.Millisecond)
	if n, err := st.Expire(ctx); err != nil || n != 1 {
		t.Fatalf("expired %d, %v", n, err)
	}
	keys, _ := r.Client().Keys(ctx, "*").Result()
	for _, k := range keys {
		typ, _ := r.Client().Type(ctx, k).Result()
		var has bool
		switch typ {
		case "zset":
			members, _ := r.Client().ZRange(ctx, k, 0, -1).Result()
			for _, m := range members {
				has = has || m == id || m == id[len(id)-8:]+":"+id
			}
		case "hash", "stream":
			has = k == "job:"+id || k == "job:"+id+":log"
		}
		if has {
			t.Errorf("%s still holds the expired job", k)
		}
	}
	if _, err := st.Get(ctx, keep); err != nil {
		t.Fatalf("the pending job went too: %v", err)
	}
	if jobs, _, _ := st.List(ctx, store.Filter{Repo: "acme/old"}); len(jobs) != 1 || jobs[0].ID != keep {
		t.Fatalf("list after expiry: %v", jobs)
	}
}
