package sandbox_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/sandbox"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

func newSandbox(t *testing.T, o sandbox.Options) *sandbox.Sandbox {
	t.Helper()
	sb, err := sandbox.New(o)
	if err != nil {
		t.Fatalf("sandbox: %v (scripts/deps installs bubblewrap)", err)
	}
	t.Cleanup(sb.Close)
	return sb
}

// run runs script in the sandbox with ws as its workspace and returns its
// combined output.
func run(t *testing.T, sb *sandbox.Sandbox, j sandbox.Job, script string) (string, error) {
	t.Helper()
	if _, err := sb.Own(j.Dir); err != nil {
		t.Fatal(err)
	}
	return start(t, sb, j, []string{"PATH=/usr/bin:/bin"}, "/bin/bash", "-c", script)
}

// start runs argv with env in a sandbox for j, as the agent starts a step,
// and returns its output (stdout and stderr as they come) once it exits.
func start(t *testing.T, sb *sandbox.Sandbox, j sandbox.Job, env []string, argv ...string) (string, error) {
	t.Helper()
	p, err := sb.Start(argv, env, j)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var out strings.Builder
	var readers sync.WaitGroup
	for _, f := range []*os.File{p.Stdout, p.Stderr} {
		readers.Go(func() {
			defer f.Close()
			buf := make([]byte, 4096)
			for {
				n, err := f.Read(buf)
				mu.Lock()
				out.Write(buf[:n])
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	readers.Wait()
	err = p.Wait()
	return out.String(), err
}

func pgrep(pattern string) int {
	out, _ := exec.Command("pgrep", "-f", pattern).Output()
	return len(strings.Fields(string(out)))
}

func TestStepSeesOnlyItsOwnProcesses(t *testing.T) {
	sb := newSandbox(t, sandbox.Options{})
	out, err := run(t, sb, sandbox.Job{Dir: t.TempDir()}, `
		for p in /proc/[0-9]*; do echo "pid ${p#/proc/}"; done
		kill -9 1 2>/dev/null && echo "killed init"
		echo "self $$"`)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// The host has this test process and the agent's others; the step's
	// own namespace holds only its init, its shell and what the shell runs.
	pids := 0
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "pid" {
			pids++
			if n, _ := strconv.Atoi(f[1]); n == os.Getpid() {
				t.Fatalf("step sees the test process (pid %d):\n%s", n, out)
			}
		}
	}
	if pids == 0 || pids > 5 {
		t.Fatalf("step sees %d processes, want its own few:\n%s", pids, out)
	}
	if strings.Contains(out, "killed init") {
		t.Fatalf("step signalled its sandbox's init:\n%s", out)
	}
}

func TestDaemonsDieWithTheStep(t *testing.T) {
	sb := newSandbox(t, sandbox.Options{})
	out, err := run(t, sb, sandbox.Job{Dir: t.TempDir()}, `
		setsid sleep 7791 </dev/null >/dev/null 2>&1 &
		( ( sleep 7792 </dev/null >/dev/null 2>&1 & ) & )
		nohup sleep 7793 </dev/null >/dev/null 2>&1 &
		sleep 0.3; echo started`)
	if err != nil || !strings.Contains(out, "started") {
		t.Fatalf("%v\n%s", err, out)
	}
	testutil.Eventually(t, 3*time.Second, func() bool { return pgrep("sleep 779[123]") == 0 })
	if n := pgrep("sleep 779[123]"); n > 0 {
		t.Fatalf("%d processes the step started outlived it", n)
	}
}

func TestHiddenPathsAndReadOnlySystem(t *testing.T) {
	data := t.TempDir()
	os.WriteFile(filepath.Join(data, "api-token"), []byte("tok-of-the-agent\n"), 0o600)
	secretFile := filepath.Join(t.TempDir(), "gitea-token")
	os.WriteFile(secretFile, []byte("forge-token-value\n"), 0o644)
	tools := filepath.Join(data, "tools", "bin")
	os.MkdirAll(tools, 0o755)
	os.WriteFile(filepath.Join(tools, "hello"), []byte("#!/bin/sh\necho hello-tool\n"), 0o755)
	cache := filepath.Join(t.TempDir(), "cache")
	os.MkdirAll(cache, 0o755)
	ws := filepath.Join(data, "work", "slot-0")
	os.MkdirAll(ws, 0o755)
	sb := newSandbox(t, sandbox.Options{Hidden: []string{data, secretFile}, ReadOnly: []string{tools}})
	if _, err := sb.Own(cache); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, sb, sandbox.Job{Dir: ws, Writable: []string{cache}}, `
		cat `+data+`/api-token 2>/dev/null; echo "data: $(ls -A `+data+` | tr '\n' ' ')"
		echo "secret file: [$(cat `+secretFile+`)]"
		`+tools+`/hello
		echo built > out.txt && echo "ws writable"
		echo c > `+cache+`/c && echo "cache writable"
		touch /usr/pwned 2>/dev/null || echo "usr read-only"
		touch /tmp/x && echo "tmp private"
		id -u`)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, bad := range []string{"tok-of-the-agent", "forge-token-value", "api-token"} {
		if strings.Contains(out, bad) {
			t.Fatalf("step read %q:\n%s", bad, out)
		}
	}
	for _, want := range []string{"hello-tool", "ws writable", "cache writable", "usr read-only", "tmp private", "secret file: []"} {
		if !strings.Contains(out, want) {
			t.Fatalf("want %q in:\n%s", want, out)
		}
	}
	if _, err := os.Stat("/tmp/x"); err == nil && !strings.Contains(out, "tmp private") {
		t.Fatal("step wrote the host's /tmp")
	}
	if b, _ := os.ReadFile(filepath.Join(ws, "out.txt")); string(b) != "built\n" {
		t.Fatalf("workspace write not kept: %q", b)
	}
	if os.Geteuid() == 0 && !strings.HasSuffix(strings.TrimSpace(out), strconv.Itoa(sandbox.NobodyID)) {
		t.Fatalf("agent is root but the step ran as:\n%s", out)
	}
}

// TestWorkspaceGitFileStaysReadOnly: the workspace's .git file points into
// the agent's mirror; a step that could rewrite it could make the agent's
// next git command in the slot run its hooks.
func TestWorkspaceGitFileStaysReadOnly(t *testing.T) {
	ws := t.TempDir()
	os.WriteFile(filepath.Join(ws, ".git"), []byte("gitdir: /somewhere\n"), 0o644)
	sb := newSandbox(t, sandbox.Options{})
	out, _ := run(t, sb, sandbox.Job{Dir: ws, ReadOnly: []string{filepath.Join(ws, ".git")}}, `
		echo "gitdir: /evil" > .git 2>/dev/null; rm -f .git 2>/dev/null; mv .git x 2>/dev/null; echo done`)
	if b, _ := os.ReadFile(filepath.Join(ws, ".git")); string(b) != "gitdir: /somewhere\n" {
		t.Fatalf(".git changed to %q\n%s", b, out)
	}
}
