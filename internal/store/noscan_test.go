package store_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/store"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// No request handler, dashboard read or queue path walks the keyspace: SCAN
// and KEYS cost O(keys in Redis), which grows with history. This reads the
// code that serves requests (everything but tests) for go-redis's keyspace
// walks and their raw command names.
func TestNoKeyspaceWalkOutsideTests(t *testing.T) {
	walk := regexp.MustCompile(`\.(Scan|Keys|ScanType)\(ctx|"(?i:scan|keys)"`)
	root := filepath.Join("..", "..")
	filepath.WalkDir(filepath.Join(root, "internal"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") || strings.Contains(p, "testutil") {
			return nil
		}
		b, _ := os.ReadFile(p)
		for i, line := range strings.Split(string(b), "\n") {
			if walk.MatchString(line) {
				t.Errorf("%s:%d walks the keyspace: %s", p, i+1, strings.TrimSpace(line))
			}
		}
		return nil
	})
}

// The agents index drops agents whose record expired, without a SCAN.
func TestAgentsIndexDropsExpired(t *testing.T) {
	s, _, r := newStore(t)
	ctx := context.Background()
	s.AgentHeartbeat(ctx, store.Agent{Name: "short", Status: "idle"}, 100*time.Millisecond)
	s.AgentHeartbeat(ctx, store.Agent{Name: "long", Status: "busy"}, time.Minute)
	s.AgentHeartbeat(ctx, store.Agent{Name: "gone", Status: "idle"}, time.Minute)
	s.RemoveAgent(ctx, "gone")
	// The record expires by Redis's clock.
	testutil.Eventually(t, 5*time.Second, func() bool { n, _ := r.Client().Exists(ctx, "agent:short").Result(); return n == 0 })
	as, err := s.Agents(ctx)
	if err != nil || len(as) != 1 || as[0].Name != "long" {
		t.Fatalf("agents %+v %v", as, err)
	}
	if n, _ := r.Client().ZCard(ctx, "agents").Result(); n != 1 {
		t.Fatalf("index holds %d members, want 1", n)
	}
}
