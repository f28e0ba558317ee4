package server_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
	"github.com/raibid-labs/raibid-ci/internal/queue"
	"github.com/raibid-labs/raibid-ci/internal/server"
	"github.com/raibid-labs/raibid-ci/internal/store"
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
	rec := &statusRecorder{ch: make(chan struct{}, 4)}
	srv := server.New(server.Options{Store: store.New(rdb, store.Options{}), Queue: queue.New(rdb, queue.Options{}),
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
	want := "acme/widget@bffeb74224043ba2feb48d137756c8a9331c449a pending raibid-ci http://ci.local/ui/jobs/" + out["job_id"].(string)
	if rec.got[0] != want {
		t.Fatalf("status %q, want %q", rec.got[0], want)
	}
	e.webhook(hook{body: fixture(t, "push-tag.json")})
	select {
	case <-rec.ch:
		t.Fatal("status posted for an ignored tag push")
	case <-time.After(200 * time.Millisecond):
	}
}
