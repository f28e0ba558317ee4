package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A cache server that cannot start is an error the job reports (and builds
// without the wrapper), retried once; the agent's own RAIBID_* settings do
// not reach it.
func TestSccacheServerFailureIsReportedNotFatal(t *testing.T) {
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	fake := filepath.Join(dir, "sccache")
	os.WriteFile(fake, []byte("#!/bin/sh\necho \"$@ token=${RAIBID_GITEA_TOKEN:-none} port=$SCCACHE_SERVER_PORT\" >> "+calls+
		"\necho 'sccache: error: Timed out waiting for server startup' >&2\nexit 2\n"), 0o755)
	t.Setenv("RAIBID_GITEA_TOKEN", "agent-secret")
	err := sccacheServer(t.Context(), fake, []string{"SCCACHE_SERVER_PORT=20001"})
	if err == nil || !strings.Contains(err.Error(), "Timed out waiting for server startup") {
		t.Fatalf("err = %v", err)
	}
	b, _ := os.ReadFile(calls)
	if got := strings.Count(string(b), "--show-stats token=none port=20001"); got != 2 {
		t.Fatalf("calls:\n%s\nwant 2 attempts without the agent's token", b)
	}

	os.WriteFile(fake, []byte("#!/bin/sh\nexit 0\n"), 0o755)
	if err := sccacheServer(t.Context(), fake, nil); err != nil {
		t.Fatalf("a running server: %v", err)
	}
}
