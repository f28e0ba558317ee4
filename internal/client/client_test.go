package client_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/api"
	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/client"
	"github.com/raibid-labs/raibid-ci/internal/jobs"
	"github.com/raibid-labs/raibid-ci/internal/schedule"
	"github.com/raibid-labs/raibid-ci/internal/server"
	"github.com/raibid-labs/raibid-ci/internal/store"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

type rig struct {
	store *store.Store
	jobs  *jobs.Lifecycle
	url   string
}

// newRig serves the real API on a real redis-server; wrap may intercept.
func newRig(t *testing.T, wrap func(http.Handler) http.Handler) *rig {
	t.Helper()
	r := testutil.StartRedis(t)
	rdb := r.Client()
	jb := testutil.NewJobs(rdb, 0)
	st := jb.Store
	srv := server.New(server.Options{Store: st, Queue: jb.Queue, Jobs: jb.Lifecycle, APIToken: "tok", ReaperInterval: -1,
		Features: []server.Feature{server.Schedules(schedule.NewStore(rdb, ""))}})
	h := srv.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return &rig{store: st, jobs: jb.Lifecycle, url: ts.URL}
}

func TestJobsRoundTrip(t *testing.T) {
	r := newRig(t, nil)
	c := client.New(r.url, "tok")
	ctx := context.Background()
	j, err := c.CreateJob(ctx, api.NewJob{Repo: "acme/w", Branch: "main", CloneURL: "/src/w"})
	if err != nil || j.Status != ci.StatusPending {
		t.Fatalf("create %+v %v", j, err)
	}
	got, err := c.GetJob(ctx, j.ID)
	if err != nil || got.Repo != "acme/w" {
		t.Fatalf("get %+v %v", got, err)
	}
	page, err := c.ListJobs(ctx, api.JobFilter{Status: ci.StatusPending})
	if err != nil || len(page.Jobs) != 1 {
		t.Fatalf("list %+v %v", page, err)
	}
	if _, err := c.CancelJob(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	re, err := c.RetryJob(ctx, j.ID)
	if err != nil || re.RetryOf != j.ID {
		t.Fatalf("retry %+v %v", re, err)
	}
	q, err := c.Queue(ctx)
	if err != nil || q.Length != 2 {
		t.Fatalf("queue %+v %v", q, err)
	}
	if _, err := c.GetJob(ctx, "00000000000000000000"); !client.IsNotFound(err) {
		t.Fatalf("missing job: %v", err)
	}
	_, err = client.New(r.url, "wrong").ListJobs(ctx, api.JobFilter{})
	if err == nil || !strings.Contains(err.Error(), "bearer token") || !strings.Contains(err.Error(), "401") {
		t.Fatalf("bad token: %v", err)
	}
}

// A log stream cut by the network resumes where it stopped: no line lost,
// none repeated.
func TestFollowLogsResumesAfterDroppedConnection(t *testing.T) {
	var streams atomic.Int32
	r := newRig(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if strings.HasSuffix(req.URL.Path, "/logs/stream") && streams.Add(1) == 1 {
				next.ServeHTTP(&cutAfterFirstLog{ResponseWriter: w}, req)
				return
			}
			next.ServeHTTP(w, req)
		})
	})
	ctx := context.Background()
	id, _, _ := r.jobs.Submit(ctx, &ci.Job{Repo: "a/b", CloneURL: "/x", Branch: "main"}, "")
	r.jobs.Transition(ctx, id, jobs.Change{From: []ci.Status{ci.StatusPending}, To: ci.StatusRunning})
	for i := 1; i <= 3; i++ {
		r.store.AppendLog(ctx, id, ci.LogLine{Step: "s", Stream: "stdout", Text: "line " + string(rune('0'+i))})
	}
	// Once the follower has the first three (over two connections), the
	// job writes its last line and ends.
	finish := func() {
		r.store.AppendLog(ctx, id, ci.LogLine{Step: "s", Stream: "stdout", Text: "line 4"})
		r.jobs.Transition(ctx, id, jobs.Change{From: []ci.Status{ci.StatusRunning}, To: ci.StatusFailed})
	}
	var mu sync.Mutex
	var got []string
	status, err := client.New(r.url, "tok").FollowLogs(ctx, id, func(l ci.LogLine) {
		mu.Lock()
		got = append(got, l.Text)
		if len(got) == 3 {
			go finish()
		}
		mu.Unlock()
	})
	if err != nil || status != ci.StatusFailed {
		t.Fatalf("follow: %s %v", status, err)
	}
	if strings.Join(got, ",") != "line 1,line 2,line 3,line 4" || streams.Load() < 2 {
		t.Fatalf("lines %v over %d connections", got, streams.Load())
	}
}

// cutAfterFirstLog aborts the connection once one log event was written.
type cutAfterFirstLog struct {
	http.ResponseWriter
	sent bool
}

func (c *cutAfterFirstLog) Write(b []byte) (int, error) {
	if c.sent {
		panic(http.ErrAbortHandler)
	}
	n, err := c.ResponseWriter.Write(b)
	if strings.Contains(string(b), "event: log") {
		c.sent = true
	}
	return n, err
}

func (c *cutAfterFirstLog) Flush() { c.ResponseWriter.(http.Flusher).Flush() }

func TestFollowEventsReportsConnection(t *testing.T) {
	r := newRig(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan client.Event, 16)
	states := make(chan client.ConnState, 4)
	go client.New(r.url, "tok").FollowEvents(ctx, func(ev client.Event) { events <- ev }, func(s client.ConnState) { states <- s })
	select {
	case s := <-states:
		if !s.Connected {
			t.Fatalf("state %+v", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("never connected")
	}
	id, _, _ := r.jobs.Submit(context.Background(), &ci.Job{Repo: "a/b", CloneURL: "/x", Branch: "main"}, "")
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.Name == "job" && strings.Contains(string(ev.Data), id) {
				return
			}
		case <-deadline:
			t.Fatal("no job event")
		}
	}
}

// A 401 names the server and where the token came from; an unreachable
// server is named too.
func TestErrorsNameServerAndTokenSource(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error":"missing or wrong bearer token"}`))
	}))
	defer srv.Close()
	c := client.New(srv.URL, "wrong")
	c.TokenSource = "/tmp/raibid/api-token"
	_, err := c.GetJob(context.Background(), "01a2")
	if err == nil || !strings.Contains(err.Error(), srv.URL) || !strings.Contains(err.Error(), "/tmp/raibid/api-token") {
		t.Fatalf("401: %v", err)
	}
	srv.Close()
	_, err = c.GetJob(context.Background(), "01a2")
	if err == nil || !strings.Contains(err.Error(), "is raibid running at "+srv.URL) {
		t.Fatalf("unreachable: %v", err)
	}
}

// Schedules through the API: add (a bad cron is a 400 naming it), list, remove.
func TestSchedulesAPI(t *testing.T) {
	r := newRig(t, nil)
	c := client.New(r.url, "tok")
	ctx := context.Background()
	if _, err := c.AddSchedule(ctx, api.NewSchedule{Repo: "acme/widget", Branch: "main", Cron: "0 25 * * *"}); err == nil || !strings.Contains(err.Error(), "0 25 * * *") {
		t.Fatalf("bad cron: %v", err)
	}
	s, err := c.AddSchedule(ctx, api.NewSchedule{Repo: "acme/widget", Branch: "main", Cron: "@daily"})
	if err != nil || s.ID == "" || s.Cron != "@daily" {
		t.Fatalf("add = %+v, %v", s, err)
	}
	list, err := c.Schedules(ctx)
	if err != nil || len(list) != 1 || list[0].ID != s.ID || !list[0].LastFired.IsZero() {
		t.Fatalf("list = %+v, %v", list, err)
	}
	if err := c.RemoveSchedule(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveSchedule(ctx, s.ID); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("second remove: %v", err)
	}
}
