package server_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/store"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// A redis-server with appendonly yes and appendfsync always is killed with
// SIGKILL in the middle of 500 signed webhooks and restarted. Senders behave
// like Gitea: a delivery that did not get 202 is delivered again with the same
// X-Gitea-Delivery. Every delivery that got 202 must have its job hash and
// exactly one stream entry, and no job may be queued twice.
func TestDurabilityAcrossRedisKill9(t *testing.T) {
	e := start(t, "--appendonly", "yes", "--appendfsync", "always")
	push := fixture(t, "push.json")
	const total, senders = 500, 8

	var accepted sync.Map // delivery id → job id
	var count, failed atomic.Int64
	killAt := make(chan struct{})
	var killOnce sync.Once
	next := make(chan int)
	go func() {
		for i := range total {
			next <- i
		}
		close(next)
	}()
	var wg sync.WaitGroup
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				delivery := fmt.Sprintf("delivery-%04d", i)
				// Redelivered every 20 ms until accepted, as Gitea would
				// (less patiently).
				testutil.EventuallyEvery(t, 60*time.Second, 20*time.Millisecond, func() bool {
					code, out := e.webhookNoFatal(hook{body: push, delivery: delivery})
					if code != 202 {
						failed.Add(1)
						return false
					}
					if prev, loaded := accepted.LoadOrStore(delivery, out["job_id"]); loaded && prev != out["job_id"] {
						t.Errorf("delivery %s answered job %v, then %v", delivery, prev, out["job_id"])
					}
					if count.Add(1) == total/3 {
						killOnce.Do(func() { close(killAt) })
					}
					return true
				})
			}
		}()
	}
	<-killAt
	e.redis.Kill()
	// Down until webhooks answer 503: longer than go-redis's retries.
	if !testutil.Eventually(t, 30*time.Second, func() bool { return failed.Load() > 0 }) {
		t.Fatal("no delivery failed: Redis was not killed mid-stream")
	}
	e.redis.Restart()
	wg.Wait()

	t.Logf("%d failed attempts while Redis was down, all delivered again", failed.Load())
	ctx := context.Background()
	rdb := e.redis.Client()
	entries, err := rdb.XRange(ctx, "ci-jobs", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	perJob := map[string]int{}
	for _, m := range entries {
		perJob[m.Values["job_id"].(string)]++
	}
	n := 0
	accepted.Range(func(delivery, jobID any) bool {
		n++
		id := jobID.(string)
		if perJob[id] != 1 {
			t.Errorf("%s: job %s has %d stream entries, want 1", delivery, id, perJob[id])
		}
		if exists, _ := rdb.Exists(ctx, "job:"+id).Result(); exists != 1 {
			t.Errorf("%s: job %s hash missing after the crash", delivery, id)
		}
		return true
	})
	if n != total {
		t.Fatalf("%d of %d deliveries got 202", n, total)
	}
	if len(entries) != total || len(perJob) != total {
		t.Fatalf("%d stream entries for %d jobs, want %d each", len(entries), len(perJob), total)
	}
	if idx, _ := store.New(rdb, store.Options{}).IndexSize(ctx, "jobs"); idx != int64(total) {
		t.Fatalf("index holds %d jobs, want %d", idx, total)
	}
	if info, err := rdb.Info(ctx, "persistence").Result(); err != nil || !strings.Contains(info, "aof_enabled:1") {
		t.Fatalf("restarted Redis is not using AOF: %v", err)
	}
}
