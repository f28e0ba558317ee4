package store_test

import (
	"context"
	"fmt"
	"reflect"
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

// newSteppedStore is newStore with a clock that moves 2 ms at every
// reading: jobs made one after the other get distinct creation
// milliseconds without the test sleeping.
func newSteppedStore(t *testing.T) *testutil.Jobs {
	t.Helper()
	r := testutil.StartRedis(t)
	return testutil.NewJobsWith(r.Client(), store.Options{Now: testutil.StepClock(time.Now(), 2*time.Millisecond)},
		queue.Options{}, jobs.Options{MaxDeliveries: 3})
}

var push = testutil.Push

func TestListFiltersAndPaginatesNewestFirst(t *testing.T) {
	s := newSteppedStore(t)
	ctx := context.Background()
	var ids []string
	for i := range 7 {
		branch := "main"
		if i%2 == 1 {
			branch = "dev"
		}
		id, _, err := s.Submit(ctx, push(fmt.Sprintf("acme/r%d", i%3), branch), "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	var seen []string
	cursor := ""
	for page := 0; page < 10; page++ {
		jobs, next, err := s.List(ctx, store.Filter{Limit: 3, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			seen = append(seen, j.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(seen) != 7 {
		t.Fatalf("paged through %d jobs, want 7: %v", len(seen), seen)
	}
	for i := range seen {
		if seen[i] != ids[len(ids)-1-i] {
			t.Fatalf("order %v, want newest first of %v", seen, ids)
		}
	}
	dev, _, _ := s.List(ctx, store.Filter{Branch: "dev"})
	if len(dev) != 3 {
		t.Fatalf("dev jobs %d, want 3", len(dev))
	}
	r0, _, _ := s.List(ctx, store.Filter{Repo: "acme/r0", Branch: "main"})
	if len(r0) != 2 { // i = 0 and 6
		t.Fatalf("acme/r0 main jobs %d, want 2", len(r0))
	}
	s.Transition(ctx, ids[2], jobs.Change{From: []ci.Status{ci.StatusPending}, To: ci.StatusFailed})
	failed, _, _ := s.List(ctx, store.Filter{Status: ci.StatusFailed})
	if len(failed) != 1 || failed[0].ID != ids[2] {
		t.Fatalf("failed = %v", failed)
	}
}

func TestListDropsExpiredJobs(t *testing.T) {
	s, _, r := newStore(t)
	ctx := context.Background()
	a, _, _ := s.Submit(ctx, push("acme/a", "main"), "")
	b, _, _ := s.Submit(ctx, push("acme/b", "main"), "")
	r.Client().Del(ctx, "job:"+a) // as the 24 h TTL would
	jobs, _, err := s.List(ctx, store.Filter{})
	if err != nil || len(jobs) != 1 || jobs[0].ID != b {
		t.Fatalf("list = %v %v", jobs, err)
	}
	if n, _ := s.IndexSize(ctx, "jobs"); n != 1 {
		t.Fatalf("index still holds %d ids", n)
	}
}

func TestLogsReadResumeAndBlock(t *testing.T) {
	s, _, r := newStore(t)
	ctx := context.Background()
	j, _, err := s.Submit(ctx, push("acme/logs", "main"), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AppendLog(ctx, j, ci.LogLine{Step: "build", Stream: "stdout", Text: "one"}, ci.LogLine{Step: "build", Stream: "stderr", Text: "two"}); err != nil {
		t.Fatal(err)
	}
	all, err := s.ReadLogs(ctx, j, "", 0, 0)
	if err != nil || len(all) != 2 || all[0].Text != "one" || all[1].Stream != "stderr" || !store.ValidLogID(all[0].ID) {
		t.Fatalf("logs = %+v %v", all, err)
	}
	rest, _ := s.ReadLogs(ctx, j, all[0].ID, 0, 0)
	if len(rest) != 1 || rest[0].Text != "two" {
		t.Fatalf("resume = %+v", rest)
	}
	got := make(chan []ci.LogLine, 1)
	go func() {
		l, _ := s.ReadLogs(ctx, j, all[1].ID, 0, 5*time.Second)
		got <- l
	}()
	testutil.WaitBlocked(t, r.Client(), 1) // the read waits in XREAD BLOCK
	s.AppendLog(ctx, j, ci.LogLine{Step: "test", Stream: "stdout", Text: "three"})
	select {
	case l := <-got:
		if len(l) != 1 || l[0].Text != "three" {
			t.Fatalf("blocked read = %+v", l)
		}
	case <-time.After(4 * time.Second):
		t.Fatal("blocked log read did not wake")
	}
	for _, bad := range []string{"", "abc", "1-", "1-2-3", "-1-2", "1-2 "} {
		if store.ValidLogID(bad) {
			t.Errorf("ValidLogID(%q) = true", bad)
		}
	}
}

func TestAgentsExpireWithoutHeartbeat(t *testing.T) {
	s, _, r := newStore(t)
	ctx := context.Background()
	s.AgentHeartbeat(ctx, store.Agent{Name: "a1", Status: "busy", CurrentJob: "j1", StartedAt: time.Now()}, time.Hour)
	s.AgentHeartbeat(ctx, store.Agent{Name: "a2", Status: "idle", StartedAt: time.Now()}, 100*time.Millisecond)
	agents, err := s.Agents(ctx)
	if err != nil || len(agents) != 2 {
		t.Fatalf("agents = %+v %v", agents, err)
	}
	// The record expires by Redis's clock.
	testutil.Eventually(t, 5*time.Second, func() bool { n, _ := r.Client().Exists(ctx, "agent:a2").Result(); return n == 0 })
	agents, _ = s.Agents(ctx)
	if len(agents) != 1 || agents[0].Name != "a1" || agents[0].CurrentJob != "j1" {
		t.Fatalf("agents after TTL = %+v", agents)
	}
}

func TestEventsReachSubscribers(t *testing.T) {
	s, _, _ := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := s.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id, _, _ := s.Submit(context.Background(), push("acme/a", "main"), "")
	select {
	case ev := <-events:
		if ev.JobID != id || ev.Status != ci.StatusPending {
			t.Fatalf("event = %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
}

// XREVRANGE with an exclusive end pages a log backwards from its end.
func TestLogsPagedFromTheEnd(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	j, _, err := s.Submit(ctx, push("acme/logs", "main"), "")
	if err != nil {
		t.Fatal(err)
	}
	var lines []ci.LogLine
	for i := range 25 {
		lines = append(lines, ci.LogLine{Step: "s", Stream: "stdout", Text: fmt.Sprintf("line %02d", i)})
	}
	if err := s.AppendLog(ctx, j, lines...); err != nil {
		t.Fatal(err)
	}
	if n, err := s.LogLength(ctx, j); err != nil || n != 25 {
		t.Fatalf("length = %d %v", n, err)
	}
	last, err := s.ReadLogsBefore(ctx, j, "", 10)
	if err != nil || len(last) != 10 || last[0].Text != "line 15" || last[9].Text != "line 24" {
		t.Fatalf("last page = %+v %v", last, err)
	}
	prev, _ := s.ReadLogsBefore(ctx, j, last[0].ID, 10)
	if len(prev) != 10 || prev[0].Text != "line 05" || prev[9].Text != "line 14" {
		t.Fatalf("previous page = %+v", prev)
	}
	first, _ := s.ReadLogsBefore(ctx, j, prev[0].ID, 10)
	if len(first) != 5 || first[0].Text != "line 00" {
		t.Fatalf("first page = %+v", first)
	}
}

// The hash leaves out what its key or defaults say, and reads back the same
// job whether a field was left out or written.
func TestJobHashOmitsWhatItCanDerive(t *testing.T) {
	id := ci.NewID(time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC))
	base := ci.Job{ID: id, Repo: "acme/w", Branch: "main", Commit: "0123456789abcdef0123456789abcdef01234567",
		Status: ci.StatusPending, Trigger: ci.TriggerPush, Event: ci.EventPush, Attempt: 1, CreatedAt: ci.IDTime(id), Steps: []ci.Step{}}
	h := store.JobFields(&base)
	for _, k := range []string{"id", "created_at", "event", "attempt"} {
		if _, ok := h[k]; ok {
			t.Errorf("hash holds %s = %q", k, h[k])
		}
	}
	if got := store.JobFromHash(id, h); !reflect.DeepEqual(*got, base) {
		t.Fatalf("read back %+v, want %+v", *got, base)
	}
	other := base
	other.Attempt, other.Event, other.Trigger, other.Tag, other.Branch = 3, ci.EventTag, ci.TriggerPush, "v1", ""
	other.CreatedAt = base.CreatedAt.Add(1500 * time.Microsecond)
	h = store.JobFields(&other)
	if h["attempt"] != "3" || h["event"] != ci.EventTag || h["created_at"] == "" {
		t.Fatalf("hash %v lacks what differs from the defaults", h)
	}
	if got := store.JobFromHash(id, h); !reflect.DeepEqual(*got, other) {
		t.Fatalf("read back %+v, want %+v", *got, other)
	}
}

// Each event lists its own jobs: events other than push through their
// index, push through the main one.
func TestListFiltersByEvent(t *testing.T) {
	s := newSteppedStore(t)
	ctx := context.Background()
	want := map[string][]string{}
	add := func(event string, j *ci.Job) {
		id, _, err := s.Submit(ctx, j, "")
		if err != nil {
			t.Fatal(err)
		}
		want[event] = append([]string{id}, want[event]...) // newest first
	}
	for i := range 3 {
		add(ci.EventPush, push("acme/e", "main"))
		tag := push("acme/e", "")
		tag.Event, tag.Tag = ci.EventTag, fmt.Sprintf("v1.%d", i)
		add(ci.EventTag, tag)
		pr := push("acme/e", "feature")
		pr.Event, pr.PullRequest = ci.EventPullRequest, &ci.PullRequest{Number: 7, BaseBranch: "main", HeadBranch: "feature"}
		add(ci.EventPullRequest, pr)
		manual := push("acme/e", "main")
		manual.Trigger = ci.TriggerManual // its event, manual, is left out of the hash
		add(ci.EventManual, manual)
	}
	for _, event := range []string{ci.EventPush, ci.EventTag, ci.EventPullRequest, ci.EventManual, ci.EventCron} {
		jobs, _, err := s.List(ctx, store.Filter{Event: event})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, j := range jobs {
			got = append(got, j.ID)
		}
		if !reflect.DeepEqual(got, want[event]) {
			t.Errorf("event %s: %v, want %v", event, got, want[event])
		}
	}
	for _, event := range []string{ci.EventTag, ci.EventManual} {
		if n, _ := s.IndexSize(ctx, s.Keys().Event(event)); n != 3 {
			t.Errorf("index of %s holds %d jobs, want 3", event, n)
		}
	}
	if n, _ := s.IndexSize(ctx, s.Keys().Event(ci.EventPush)); n != 0 {
		t.Errorf("pushes are indexed by event too (%d): every job pays for it", n)
	}
}
