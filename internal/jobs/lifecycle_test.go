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
	"github.com/raibid-labs/raibid-ci/internal/store"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// newStore is one real redis-server with the store, the queue and the job
// lifecycle on it.
func newStore(t *testing.T) (*testutil.Jobs, *queue.Queue, *testutil.Redis) {
	t.Helper()
	r := testutil.StartRedis(t)
	jb := testutil.NewJobs(r.Client(), 0)
	return jb, jb.Queue, r
}

var push = testutil.Push

func TestSubmitWritesJobIndexAndQueueEntryAtomically(t *testing.T) {
	s, q, _ := newStore(t)
	ctx := context.Background()
	id, created, err := s.Submit(ctx, push("acme/widget", "main"), "delivery-1")
	if err != nil || !created || id == "" {
		t.Fatalf("submit = %q %v %v", id, created, err)
	}
	j, err := s.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != ci.StatusPending || j.Attempt != 1 || j.Repo != "acme/widget" || j.Author != "ann" {
		t.Fatalf("job = %+v", j)
	}
	d, err := q.Claim(ctx, "agent", 10*time.Millisecond)
	// The entry names the job and nothing else: the claim reads the hash.
	if err != nil || d == nil || d.JobID() != id || len(d.Fields) != 1 {
		t.Fatalf("queue entry = %+v, %v", d, err)
	}
	if j.CreatedAt.IsZero() || !j.CreatedAt.Equal(ci.IDTime(id)) || j.Event != ci.EventPush {
		t.Fatalf("created %v (id's %v), event %q", j.CreatedAt, ci.IDTime(id), j.Event)
	}
}

func TestSubmitDedupesDelivery(t *testing.T) {
	s, q, _ := newStore(t)
	ctx := context.Background()
	first, _, err := s.Submit(ctx, push("acme/widget", "main"), "same")
	if err != nil {
		t.Fatal(err)
	}
	again, created, err := s.Submit(ctx, push("acme/widget", "main"), "same")
	if err != nil || created || again != first {
		t.Fatalf("repeat delivery = %q created=%v err=%v, want %q not created", again, created, err, first)
	}
	st, _ := q.Stats(ctx)
	if st.Length != 1 {
		t.Fatalf("stream length %d, want 1", st.Length)
	}
	jobs, _, _ := s.List(ctx, store.Filter{})
	if len(jobs) != 1 {
		t.Fatalf("%d jobs, want 1", len(jobs))
	}
}

func TestTransitionIsCompareAndSet(t *testing.T) {
	s, _, r := newStore(t)
	ctx := context.Background()
	id, _, _ := s.Submit(ctx, push("acme/widget", "main"), "")
	j, err := s.Transition(ctx, id, jobs.Change{From: []ci.Status{ci.StatusPending}, To: ci.StatusRunning, Agent: "a1"})
	if err != nil || j.Status != ci.StatusRunning || j.Agent != "a1" || j.StartedAt == nil {
		t.Fatalf("start = %+v %v", j, err)
	}
	if _, err := s.Cancel(ctx, id); err != nil {
		t.Fatal(err)
	}
	// The agent's verdict arrives after the cancel: it must not overwrite it.
	_, err = s.Transition(ctx, id, jobs.Change{From: []ci.Status{ci.StatusRunning}, To: ci.StatusSuccess})
	if !errors.Is(err, ci.ErrConflict) {
		t.Fatalf("finishing a cancelled job: %v, want ErrConflict", err)
	}
	j, _ = s.Get(ctx, id)
	if j.Status != ci.StatusCancelled || j.FinishedAt == nil {
		t.Fatalf("job = %+v", j)
	}
	// The summary stays 30 days (commit statuses link to it), the log a day.
	s.AppendLog(ctx, id, ci.LogLine{Text: "an agent's last words, after the end"})
	due, err := r.Client().ZScore(ctx, "jobs:expiry", id).Result()
	if left := time.Until(time.UnixMilli(int64(due))); err != nil || left < 29*24*time.Hour || left > 30*24*time.Hour {
		t.Fatalf("finished job expires in %v (%v), want 30 days", left, err)
	}
	if ttl := r.Client().TTL(ctx, "job:"+id).Val(); ttl < 30*24*time.Hour || ttl > 31*24*time.Hour {
		t.Fatalf("finished job's safety TTL = %v, want 31 days", ttl)
	}
	if ttl := r.Client().TTL(ctx, "job:"+id+":log").Val(); ttl < 23*time.Hour || ttl > 24*time.Hour {
		t.Fatalf("finished log TTL = %v, want 24h", ttl)
	}
	if _, err := s.Transition(ctx, "nope", jobs.Change{From: []ci.Status{ci.StatusPending}, To: ci.StatusRunning}); !errors.Is(err, ci.ErrNotFound) {
		t.Fatalf("missing job: %v", err)
	}
}

func TestRetryLinksAndIncrementsAttempt(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	id, _, _ := s.Submit(ctx, push("acme/widget", "main"), "")
	if _, err := s.Retry(ctx, id); !errors.Is(err, ci.ErrConflict) {
		t.Fatalf("retry of a pending job: %v, want ErrConflict", err)
	}
	s.Transition(ctx, id, jobs.Change{From: []ci.Status{ci.StatusPending}, To: ci.StatusFailed})
	r, err := s.Retry(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if r.ID == id || r.RetryOf != id || r.Attempt != 2 || r.Status != ci.StatusPending || r.Commit != push("", "").Commit {
		t.Fatalf("retry = %+v", r)
	}
}

// Expire removes a finished job on schedule — its hash, its log and every
// index entry — so nothing dead stays in an index.
func TestExpireRemovesJobsAndTheirIndexEntries(t *testing.T) {
	r := testutil.StartRedis(t)
	ctx := context.Background()
	clock := testutil.NewClock(time.Now())
	st := testutil.NewJobsWith(r.Client(), store.Options{FinishedTTL: time.Second, LogTTL: time.Second, Now: clock.Now}, queue.Options{}, jobs.Options{})
	// A push, a manual run (its event left out of the hash) and a pull
	// request: each in its own event's index, or none.
	manual := push("acme/old", "main")
	manual.Trigger = ci.TriggerManual
	pr := push("acme/old", "feature")
	pr.Event, pr.PullRequest = ci.EventPullRequest, &ci.PullRequest{Number: 3, BaseBranch: "main", HeadBranch: "feature"}
	var gone []string
	for _, j := range []*ci.Job{push("acme/old", "main"), manual, pr} {
		id, _, err := st.Submit(ctx, j, "")
		if err != nil {
			t.Fatal(err)
		}
		gone = append(gone, id)
		st.AppendLog(ctx, id, ci.LogLine{Text: "x"})
		st.Transition(ctx, id, jobs.Change{From: []ci.Status{ci.StatusPending}, To: ci.StatusCancelled})
	}
	keep, _, _ := st.Submit(ctx, push("acme/old", "main"), "")
	clock.Advance(1100 * time.Millisecond) // past the retention of 1 s
	if n, err := st.Expire(ctx); err != nil || n != 3 {
		t.Fatalf("expired %d, %v", n, err)
	}
	keys, _ := r.Client().Keys(ctx, "*").Result()
	for _, id := range gone {
		for _, k := range keys {
			typ, _ := r.Client().Type(ctx, k).Result()
			var has bool
			switch typ {
			case "zset":
				members, _ := r.Client().ZRange(ctx, k, 0, -1).Result()
				for _, m := range members {
					has = has || m == id || m == store.ShortMember(id)
				}
			case "hash", "stream":
				has = k == "job:"+id || k == "job:"+id+":log"
			}
			if has {
				t.Errorf("%s still holds the expired job %s", k, id)
			}
		}
	}
	for _, k := range keys {
		if strings.HasPrefix(k, "jobs:event:") {
			t.Errorf("%s is left after its jobs expired", k)
		}
	}
	if _, err := st.Get(ctx, keep); err != nil {
		t.Fatalf("the pending job went too: %v", err)
	}
	if jobs, _, _ := st.List(ctx, store.Filter{Repo: "acme/old"}); len(jobs) != 1 || jobs[0].ID != keep {
		t.Fatalf("list after expiry: %v", jobs)
	}
}
