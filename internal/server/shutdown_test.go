package server_test

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/server"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// Shutdown ends open SSE streams at once and lets ordinary requests finish,
// so SIGTERM never waits the full drain timeout because of a dashboard.
func TestShutdownEndsStreamsAndDrains(t *testing.T) {
	r := testutil.StartRedis(t)
	rdb := r.Client()
	jb := testutil.NewJobs(rdb, 0)
	srv := server.New(server.Options{Store: jb.Store, Queue: jb.Queue, Jobs: jb.Lifecycle, ReaperInterval: -1})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	resp, err := http.Get("http://" + l.Addr().String() + "/events")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("events: %v %v", resp, err)
	}
	defer resp.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(server.ShutdownTimeout - time.Second):
		t.Fatal("shutdown waited on an SSE stream")
	}
	if _, err := http.Get("http://" + l.Addr().String() + "/healthz"); err == nil {
		t.Fatal("still accepting after shutdown")
	}
}
