package agent_test

import (
	"context"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/agent"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

func TestPoolScalesUpAndDown(t *testing.T) {
	r := newRig(t, 3*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	pool := agent.NewPool(ctx, func(name string) (*agent.Agent, error) { return r.agent(name, nil), nil }, nil)
	names := func() []string {
		agents, err := r.Store.Agents(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var n []string
		for _, a := range agents {
			n = append(n, a.Name)
		}
		sort.Strings(n)
		return n
	}
	waitNames := func(want ...string) {
		t.Helper()
		if !testutil.Eventually(t, 5*time.Second, func() bool { return slices.Equal(names(), want) }) {
			t.Fatalf("agents %v, want %v", names(), want)
		}
	}
	if err := pool.SetMaxAgents(ctx, 3); err != nil {
		t.Fatal(err)
	}
	waitNames("local-1", "local-2", "local-3")
	if n, _ := pool.MaxAgents(ctx); n != 3 {
		t.Fatalf("max %d", n)
	}
	pool.SetMaxAgents(ctx, 1)
	waitNames("local-1")
	pool.SetMaxAgents(ctx, 2)
	waitNames("local-1", "local-2")
	if err := pool.SetMaxAgents(ctx, -1); err == nil {
		t.Fatal("negative size accepted")
	}
	cancel()
	done := make(chan struct{})
	go func() { pool.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("pool did not stop")
	}
	waitNames()
}
