package statuses_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
	"github.com/raibid-labs/raibid-ci/internal/statuses"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

const sha = "bffeb74224043ba2feb48d137756c8a9331c449a"

// forge records what reached it; fail makes the next posts fail, hold
// blocks posts of one state until released.
type forge struct {
	mu      sync.Mutex
	got     []string
	fail    int
	reject  bool
	hold    string
	holding chan struct{}
	release chan struct{}
}

func (f *forge) PostStatus(ctx context.Context, repo, sha string, st gitea.CommitStatus) error {
	f.mu.Lock()
	if f.fail > 0 {
		f.fail--
		f.mu.Unlock()
		return errors.New("gitea answered 502 Bad Gateway")
	}
	if f.reject {
		f.mu.Unlock()
		return fmt.Errorf("gitea answered 404: %w", gitea.ErrRejected)
	}
	hold := f.hold == st.State
	f.mu.Unlock()
	if hold {
		close(f.holding)
		<-f.release
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, st.Context+"="+st.State)
	return nil
}

func (f *forge) posted() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

func drainAll(t *testing.T, o *statuses.Outbox) {
	t.Helper()
	for {
		n, err := o.Drain(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

func status(state string) gitea.CommitStatus {
	return gitea.CommitStatus{State: state, Context: "raibid-ci/push", Description: state}
}

// A status stored while Gitea is down is posted once it is back, from
// another process than the one that stored it (a restart).
func TestStatusOutlivesAnOutageAndARestart(t *testing.T) {
	r := testutil.StartRedis(t)
	ctx := context.Background()
	writer := statuses.New(r.Client(), nil, statuses.Options{})
	if err := writer.PostStatus(ctx, "acme/widget", sha, status(gitea.StateSuccess)); err != nil {
		t.Fatal(err)
	}
	f := &forge{fail: 3}
	poster := statuses.New(r.Client(), f, statuses.Options{Backoff: time.Millisecond})
	// Each failure puts the status off (1 ms, doubling); it goes out once
	// the outage is over.
	testutil.Eventually(t, 5*time.Second, func() bool {
		if _, err := poster.Drain(ctx); err != nil {
			t.Fatal(err)
		}
		return len(f.posted()) > 0
	})
	if got := f.posted(); len(got) != 1 || got[0] != "raibid-ci/push=success" {
		t.Fatalf("posted %v", got)
	}
	if n, _ := poster.Waiting(ctx); n != 0 {
		t.Fatalf("%d statuses still waiting", n)
	}
}

// Only the newest status of a context counts, and it is posted last: a
// verdict stored while the pending is on its way to Gitea is not taken by
// another poster meanwhile, and goes out after the pending.
func TestNewestStatusWinsAndIsPostedLast(t *testing.T) {
	r := testutil.StartRedis(t)
	ctx := context.Background()
	f := &forge{hold: gitea.StatePending, holding: make(chan struct{}), release: make(chan struct{})}
	o := statuses.New(r.Client(), f, statuses.Options{})
	if err := o.PostStatus(ctx, "acme/widget", sha, status(gitea.StatePending)); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); o.Drain(ctx) }()
	<-f.holding // the pending is on its way to Gitea
	if err := o.PostStatus(ctx, "acme/widget", sha, status(gitea.StateSuccess)); err != nil {
		t.Fatal(err)
	}
	other := statuses.New(r.Client(), f, statuses.Options{})
	if n, _ := other.Drain(ctx); n != 0 {
		t.Fatalf("a second poster took the verdict while the pending was in flight (%d)", n)
	}
	close(f.release)
	<-done
	drainAll(t, o)
	if got := f.posted(); len(got) != 2 || got[0] != "raibid-ci/push=pending" || got[1] != "raibid-ci/push=success" {
		t.Fatalf("posted %v, want pending then success", got)
	}

}

// A status Gitea refuses for good (an unknown repository) is dropped, not
// retried forever.
func TestRefusedStatusIsDropped(t *testing.T) {
	r := testutil.StartRedis(t)
	ctx := context.Background()
	f := &forge{reject: true}
	o := statuses.New(r.Client(), f, statuses.Options{})
	if err := o.PostStatus(ctx, "acme/gone", sha, status(gitea.StateSuccess)); err != nil {
		t.Fatal(err)
	}
	drainAll(t, o)
	if n, _ := o.Waiting(ctx); n != 0 {
		t.Fatalf("%d statuses waiting after a refusal", n)
	}
}

// A status decided before another of its context but stored after it (the
// server's pending, stored in the background after the webhook's answer,
// arriving after a quick job's verdict) never replaces it.
func TestAStatusDecidedEarlierNeverReplacesALaterOne(t *testing.T) {
	r := testutil.StartRedis(t)
	ctx := context.Background()
	f := &forge{}
	o := statuses.New(r.Client(), f, statuses.Options{})
	queued := time.Now()
	if err := o.PostStatus(ctx, "acme/widget", sha, status(gitea.StateSuccess)); err != nil {
		t.Fatal(err)
	}
	if err := o.PostStatusDecided(ctx, "acme/widget", sha, status(gitea.StatePending), queued); err != nil {
		t.Fatal(err)
	}
	drainAll(t, o)
	if got := f.posted(); len(got) != 1 || got[0] != "raibid-ci/push=success" {
		t.Fatalf("posted %v, want only the verdict", got)
	}
}
