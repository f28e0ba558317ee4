package jobs_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/store"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// Jobs indexed the way servers did before indexes were paged (one sorted
// set per index, "tail:id" short ids) are listed, filtered and resolved
// after UpgradeIndexes, and the old sets are gone.
func TestUpgradeMovesUnpagedIndexesIntoPages(t *testing.T) {
	r := testutil.StartRedis(t)
	rdb := r.Client()
	ctx := context.Background()
	jb := testutil.NewJobs(rdb, 0)
	var ids []string
	for i := range 1200 {
		id := ci.NewID(time.UnixMilli(1_790_000_000_000 + int64(i)))
		ids = append(ids, id)
		status := []string{"pending", "success", "failed"}[i%3]
		repo, branch := fmt.Sprintf("acme/r%d", i%4), fmt.Sprintf("b%d", i%5)
		rdb.HSet(ctx, "job:"+id, "id", id, "repo", repo, "branch", branch, "status", status,
			"created_at", store.FormatTime(ci.IDTime(id)), "attempt", "1", "entry_id", "1-0", "event", "push")
		if i%10 == 0 {
			rdb.HSet(ctx, "job:"+id, "event", ci.EventCron)
		}
		rdb.ZAdd(ctx, "jobs", zMember(id))
		rdb.ZAdd(ctx, "jobs:short", zMember(id[12:]+":"+id))
		rdb.ZAdd(ctx, "jobs:status:"+status, zMember(id))
		rdb.ZAdd(ctx, "jobs:repo:"+repo, zMember(id))
		rdb.ZAdd(ctx, "jobs:branch:"+branch, zMember(id))
	}
	gone := ci.NewID(time.UnixMilli(1_780_000_000_000)) // its hash expired
	rdb.ZAdd(ctx, "jobs", zMember(gone))
	rdb.ZAdd(ctx, "jobs:short", zMember(gone[12:]+":"+gone))

	n, err := jb.UpgradeIndexes(ctx)
	if err != nil || n != 1201 {
		t.Fatalf("upgrade moved %d, %v; want 1201", n, err)
	}
	if n, err := jb.UpgradeIndexes(ctx); err != nil || n != 0 {
		t.Fatalf("second upgrade moved %d, %v", n, err)
	}
	if left, _ := rdb.Exists(ctx, "jobs", "jobs:short", "jobs:status:pending", "jobs:repo:acme/r1", "jobs:branch:b2").Result(); left != 0 {
		t.Fatalf("%d old index sets left", left)
	}
	count := func(f store.Filter) int {
		total := 0
		for {
			page, next, err := jb.List(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			total += len(page)
			if next == "" {
				return total
			}
			f.Cursor = next
		}
	}
	if got := count(store.Filter{Limit: 500}); got != 1200 {
		t.Fatalf("list: %d jobs, want 1200", got)
	}
	if got := count(store.Filter{Status: ci.StatusFailed, Repo: "acme/r1"}); got != 100 {
		t.Fatalf("failed in acme/r1: %d, want 100", got)
	}
	if got := count(store.Filter{Branch: "b3"}); got != 240 {
		t.Fatalf("branch b3: %d, want 240", got)
	}
	if got := count(store.Filter{Event: ci.EventCron}); got != 120 {
		t.Fatalf("cron jobs: %d, want 120", got)
	}
	if id, err := jb.Resolve(ctx, ids[700][12:]); err != nil || id != ids[700] {
		t.Fatalf("resolve %s: %q %v", ids[700][12:], id, err)
	}
}

func zMember(m string) redis.Z { return redis.Z{Member: m} }
