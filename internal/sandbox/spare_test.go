package sandbox_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/sandbox"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// waitSpare waits until the sandbox has a spare set up.
func waitSpare(t *testing.T, sb *sandbox.Sandbox) {
	t.Helper()
	if !testutil.Eventually(t, 10*time.Second, sb.HasSpare) {
		t.Fatal("no spare was set up after a step")
	}
}

// waitLauncher waits until the spare's launcher waits for its step.
func waitLauncher(t *testing.T, sb *sandbox.Sandbox) {
	t.Helper()
	if !testutil.Eventually(t, 10*time.Second, sb.SpareWaiting) {
		t.Fatal("the spare's launcher never got ready")
	}
}

// A spare serves one step: the next step of the same job starts in it, and
// finds nothing of the step before — not its /tmp, not its processes.
func TestSpareServesTheNextStepFresh(t *testing.T) {
	sb := newSandbox(t, sandbox.Options{})
	j := sandbox.Job{Dir: t.TempDir()}
	out, err := run(t, sb, j, `echo planted > /tmp/left; (sleep 7781 </dev/null >/dev/null 2>&1 &); echo first $$`)
	if err != nil || !strings.Contains(out, "first") {
		t.Fatalf("%v\n%s", err, out)
	}
	// A step starts in the spare only once its launcher waits (else in a
	// sandbox of its own): wait for that, so the spare serves it.
	waitLauncher(t, sb)
	out, err = run(t, sb, j, `cat /tmp/left 2>/dev/null || echo "tmp fresh"; ls /proc | grep -c '^[0-9]'; echo second $$`)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if sb.SparesUsed() != 1 {
		t.Fatalf("the second step did not start in the spare (%d used)", sb.SparesUsed())
	}
	if !strings.Contains(out, "tmp fresh") || strings.Contains(out, "planted") {
		t.Fatalf("the spare showed the step before's /tmp:\n%s", out)
	}
	// Killed with its PID namespace; gone once the kernel has reaped it.
	testutil.Eventually(t, 3*time.Second, func() bool { return pgrep("sleep 7781") == 0 })
	if strings.Contains(out, "7781") || pgrep("sleep 7781") > 0 {
		t.Fatalf("the step before's process lives on:\n%s", out)
	}
}

// A step gets exactly its environment and its three standard descriptors:
// nothing of the launcher's.
func TestSpareStepGetsOnlyItsEnvAndOutput(t *testing.T) {
	sb := newSandbox(t, sandbox.Options{})
	j := sandbox.Job{Dir: t.TempDir()}
	if _, err := run(t, sb, j, "true"); err != nil {
		t.Fatal(err)
	}
	waitLauncher(t, sb)
	out, err := start(t, sb, j, []string{"PATH=/usr/bin:/bin", "STEP_VAR=a b=c"}, "/usr/bin/env")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := strings.TrimSpace(out); got != "PATH=/usr/bin:/bin\nSTEP_VAR=a b=c" {
		t.Fatalf("the step's environment is\n%s", got)
	}
	waitLauncher(t, sb)
	out, err = start(t, sb, j, []string{"PATH=/usr/bin:/bin"}, "/bin/ls", "/proc/self/fd")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// 0, 1, 2 and the directory ls reads.
	if got := strings.Fields(out); len(got) != 4 {
		t.Fatalf("the step inherited descriptors: %v", got)
	}
	if sb.SparesUsed() != 2 {
		t.Fatalf("%d steps of 2 started in a spare", sb.SparesUsed())
	}
}

// A spare set up for one workspace never serves another, nor the same
// path made again: the step sees its own directory.
func TestSpareNeverServesAnotherWorkspace(t *testing.T) {
	sb := newSandbox(t, sandbox.Options{})
	a, b := t.TempDir(), t.TempDir()
	for _, d := range []string{a, b} {
		if _, err := sb.Own(d); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := run(t, sb, sandbox.Job{Dir: a}, "true"); err != nil {
		t.Fatal(err)
	}
	waitSpare(t, sb)
	if out, err := run(t, sb, sandbox.Job{Dir: b}, "echo b > mine"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(b, "mine")); err != nil {
		t.Fatalf("the step for b did not write in b: %v", err)
	}
	if _, err := os.Stat(filepath.Join(a, "mine")); err == nil {
		t.Fatal("the step for b wrote in a")
	}
	// b's spare; then b is removed and made again at the same path.
	waitSpare(t, sb)
	if err := os.RemoveAll(b); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(b, 0o755); err != nil {
		t.Fatal(err)
	}
	sb.Own(b)
	out, err := run(t, sb, sandbox.Job{Dir: b}, "echo again > mine && ls")
	if err != nil || !strings.Contains(out, "mine") {
		t.Fatalf("%v\n%s", err, out)
	}
	if got, _ := os.ReadFile(filepath.Join(b, "mine")); string(got) != "again\n" {
		t.Fatalf("the step wrote into the old directory, not the new: %q", got)
	}
	if sb.SparesUsed() != 0 {
		t.Fatalf("a spare served another workspace (%d used)", sb.SparesUsed())
	}
}

// Close leaves no sandbox behind.
func TestCloseKillsTheSpare(t *testing.T) {
	sb, err := sandbox.New(sandbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := run(t, sb, sandbox.Job{Dir: dir}, "true"); err != nil {
		t.Fatal(err)
	}
	waitLauncher(t, sb)
	pid := sb.SparePid()
	sb.Close()
	// Close reaps what it kills: the spare's bwrap is gone, not a zombie.
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("the spare (pid %d) outlived Close: %v", pid, err)
	}
	if out, err := run(t, sb, sandbox.Job{Dir: dir}, "echo after"); err != nil || !strings.Contains(out, "after") {
		t.Fatalf("a closed sandbox still runs steps, unprepared: %v %s", err, out)
	}
	if sb.HasSpare() {
		t.Fatal("a spare was set up after Close")
	}
}

// A directory mounted inside the workspace (a cache dir shown as target/)
// that a reset removed takes its mount with it: a spare set up before
// never serves the next step, which finds its target/ as it should.
func TestSpareNeverServesAfterAMountPointWentAway(t *testing.T) {
	sb := newSandbox(t, sandbox.Options{})
	ws, cache := t.TempDir(), t.TempDir()
	for _, d := range []string{ws, cache} {
		if _, err := sb.Own(d); err != nil {
			t.Fatal(err)
		}
	}
	j := sandbox.Job{Dir: ws, Shown: map[string]string{filepath.Join(ws, "target"): cache}}
	if out, err := run(t, sb, j, "echo one > target/built"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	waitLauncher(t, sb)
	// The reset of a kept worktree (git clean) removes the mount point.
	if err := os.Remove(filepath.Join(ws, "target")); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, sb, j, "cat target/built && echo two > target/built2")
	if err != nil || !strings.Contains(out, "one") {
		t.Fatalf("the step did not see the cache dir as target/ (%v):\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(cache, "built2")); err != nil {
		t.Fatalf("the step's target/ was not the cache dir: %v", err)
	}
	if sb.SparesUsed() != 0 {
		t.Fatal("a spare whose mount point went away served the step")
	}
	// Untouched, the next spare serves.
	waitLauncher(t, sb)
	if out, err := run(t, sb, j, "cat target/built2"); err != nil || !strings.Contains(out, "two") {
		t.Fatalf("%v\n%s", err, out)
	}
	if sb.SparesUsed() != 1 {
		t.Fatalf("the spare of an untouched workspace did not serve (%d used)", sb.SparesUsed())
	}
}
