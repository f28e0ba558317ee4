package server_test

import (
	"context"
	"encoding/json"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
	"github.com/raibid-labs/raibid-ci/internal/server"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

type statusRecorder struct {
	mu  sync.Mutex
	got []string
	ch  chan struct{}
}

func (s *statusRecorder) PostStatus(_ context.Context, repo, sha string, st gitea.CommitStatus) error {
	s.mu.Lock()
	s.got = append(s.got, repo+"@"+sha+" "+st.State+" "+st.Context+" "+st.TargetURL)
	s.mu.Unlock()
	s.ch <- struct{}{}
	return nil
}

// The server posts "pending" for every queued push, without making the
// webhook wait for the forge.
func TestQueuedPushPostsPendingStatus(t *testing.T) {
	r := testutil.StartRedis(t)
	rdb := r.Client()
	jb := testutil.NewJobs(rdb, 0)
	rec := &statusRecorder{ch: make(chan struct{}, 4)}
	srv := server.New(server.Options{Store: jb.Store, Queue: jb.Queue, Jobs: jb.Lifecycle,
		WebhookSecret: secret, Status: rec, PublicURL: "http://ci.local/", ReaperInterval: -1})
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	defer func() { cancel(); <-done }()
	e := &env{t: t, url: "http://" + l.Addr().String()}
	code, out := e.webhook(hook{body: fixture(t, "push.json")})
	if code != 202 {
		t.Fatalf("webhook %d", code)
	}
	select {
	case <-rec.ch:
	case <-time.After(5 * time.Second):
		t.Fatal("no pending status posted")
	}
	want := "acme/widget@bffeb74224043ba2feb48d137756c8a9331c449a pending raibid-ci/push http://ci.local/ui/jobs/" + out["job_id"].(string)
	if rec.got[0] != want {
		t.Fatalf("status %q, want %q", rec.got[0], want)
	}
	e.webhook(hook{body: fixture(t, "push-delete.json")})
	select {
	case <-rec.ch:
		t.Fatal("status posted for an ignored branch deletion")
	case <-time.After(200 * time.Millisecond):
	}
}

// Every way a job is queued — POST /jobs, a retry from the API — posts
// "pending" too: the lifecycle's submit hook, not each handler, posts it.
func TestManualAndRetriedJobsPostPendingStatus(t *testing.T) {
	rec := &statusRecorder{ch: make(chan struct{}, 4)}
	e := startWith(t, func(o *server.Options) { o.Status = rec; o.PublicURL = "http://ci.local/" })
	wait := func(what string) string {
		t.Helper()
		select {
		case <-rec.ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("no pending status posted for %s", what)
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return rec.got[len(rec.got)-1]
	}
	const sha = "0123456789abcdef0123456789abcdef01234567"
	resp, body := e.do("POST", "/jobs", `{"repo":"acme/widget","branch":"main","commit":"`+sha+`"}`, token)
	if resp.StatusCode != 201 {
		t.Fatalf("POST /jobs %d %s", resp.StatusCode, body)
	}
	var j struct{ ID string }
	json.Unmarshal(body, &j)
	if got := wait("POST /jobs"); got != "acme/widget@"+sha+" pending raibid-ci/manual http://ci.local/ui/jobs/"+j.ID {
		t.Fatalf("status %q", got)
	}
	if _, err := e.jobs.Cancel(context.Background(), j.ID); err != nil {
		t.Fatal(err)
	}
	resp, body = e.do("POST", "/jobs/"+j.ID+"/retry", "", token)
	if resp.StatusCode != 201 {
		t.Fatalf("retry %d %s", resp.StatusCode, body)
	}
	json.Unmarshal(body, &j)
	if got := wait("a retry"); got != "acme/widget@"+sha+" pending raibid-ci/manual http://ci.local/ui/jobs/"+j.ID {
		t.Fatalf("status %q", got)
	}
}
