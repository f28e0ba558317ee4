package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

func TestUpBuildsRustCratesFromSignedPushes(t *testing.T) {
	testutil.RequireTool(t, "cargo")
	testutil.RequireTool(t, "redis-server")
	up := startUp(t, "--agents", "2")
	okDir, okSHA := testutil.GitRepo(t, testutil.RustCrate(false))
	badDir, badSHA := testutil.GitRepo(t, testutil.RustCrate(true))
	ymlDir, ymlSHA := testutil.GitRepo(t, map[string]string{".raibid.yml": "steps:\n  - name: build\n    run: make\n    timout: 5m\n"})

	okID := push(t, up.url, up.secret, pushPayload("acme/tiny", okDir, "main", okSHA))
	badID := push(t, up.url, up.secret, pushPayload("acme/tiny-bad", badDir, "main", badSHA))
	ymlID := push(t, up.url, up.secret, pushPayload("acme/yml", ymlDir, "main", ymlSHA))

	j := waitJob(t, up.url, up.token, okID, 3*time.Minute, nil)
	if j.Status != ci.StatusSuccess || j.CacheArtifacts == 0 {
		t.Fatalf("passing crate: %s %q, %d cargo artifacts", j.Status, j.Error, j.CacheArtifacts)
	}
	want := map[string]ci.Status{"check": "success", "build": "success", "test": "success", "clippy": "success", "audit": "skipped", "image": "skipped"}
	for _, s := range j.Steps {
		if want[s.Name] != s.Status {
			t.Errorf("step %s = %s, want %s", s.Name, s.Status, want[s.Name])
		}
		if s.Status == ci.StatusSuccess && (s.DurationMS <= 0 || s.StartedAt == nil || s.FinishedAt == nil) {
			t.Errorf("step %s lacks duration: %+v", s.Name, s)
		}
	}
	if len(j.Steps) != len(want) {
		t.Fatalf("steps %+v", j.Steps)
	}
	// The default Rust pipeline colours cargo's output (CARGO_TERM_COLOR=always).
	logs := apiGet(t, up.url, up.token, "/jobs/"+okID+"/logs", nil)
	if !strings.Contains(logs, "\x1b[") {
		t.Error("the default Rust pipeline's log has no colours")
	}
	if logs := regexp.MustCompile("\x1b\\[[0-9;]*m").ReplaceAllString(logs, ""); !strings.Contains(logs, "test result: ok") {
		t.Fatalf("logs lack the test result:\n%s", logs)
	}

	j = waitJob(t, up.url, up.token, badID, 3*time.Minute, nil)
	if j.Status != ci.StatusFailed {
		t.Fatalf("failing crate: %s %q", j.Status, j.Error)
	}
	if logs := apiGet(t, up.url, up.token, "/jobs/"+badID+"/logs", nil); !strings.Contains(logs, "it_adds_wrong") {
		t.Fatalf("logs lack the failing test's name:\n%s", logs)
	}

	j = waitJob(t, up.url, up.token, ymlID, time.Minute, nil)
	if j.Status != ci.StatusError || !strings.Contains(j.Error, ".raibid.yml:4: steps[0].timout") {
		t.Fatalf("bad pipeline file: %s %q", j.Status, j.Error)
	}
}

func pgrepCount(pattern string) int {
	out, _ := exec.Command("pgrep", "-f", pattern).Output()
	return len(strings.Fields(string(out)))
}

func TestCancelRunningJobThroughAPI(t *testing.T) {
	up := startUp(t, "--agents", "1")
	marker := fmt.Sprintf("raibid-e2e-cancel-%d", os.Getpid())
	dir, sha := testutil.GitRepo(t, map[string]string{".raibid.yml": fmt.Sprintf("steps:\n  - name: wait\n    run: exec -a %s sleep 60\n", marker)})
	id := push(t, up.url, up.secret, pushPayload("acme/sleepy", dir, "main", sha))
	waitJob(t, up.url, up.token, id, 30*time.Second, func(j *ci.Job) bool {
		return j.Status == ci.StatusRunning && pgrepCount(marker) > 0
	})
	began := time.Now()
	if code := apiPost(t, up.url, up.token, "/jobs/"+id+"/cancel"); code != 200 {
		t.Fatalf("cancel: %d", code)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return pgrepCount(marker) == 0 })
	if took := time.Since(began); took > 2*time.Second {
		t.Fatalf("sleep still running %s after the cancel", took)
	}
	j := getJob(t, up.url, up.token, id)
	if j.Status != ci.StatusCancelled {
		t.Fatalf("status %s", j.Status)
	}
}

// An agent killed with SIGKILL mid-job loses its lease; another agent (or
// the server's reaper) takes the job over and it ends once, at attempt 2.
func TestKilledAgentsJobCompletesElsewhere(t *testing.T) {
	r := testutil.StartRedis(t)
	env := []string{"RAIBID_REDIS_URL=" + r.URL(), "RAIBID_LEASE=2s", "RAIBID_API_TOKEN=tok", "RAIBID_WEBHOOK_SECRET=sec"}
	addr := freeAddr(t)
	srv := startProc(t, env, "server", "--addr", addr)
	srv.waitFor("listening", 10*time.Second)
	base := "http://" + addr
	a1 := startProc(t, env, "agent", "--name", "doomed", "--allow-local-clone")
	dir, sha := testutil.GitRepo(t, map[string]string{".raibid.yml": "steps:\n  - name: work\n    run: sleep 3 && echo finished\n"})
	id := push(t, base, "sec", pushPayload("acme/crashy", dir, "main", sha))
	waitJob(t, base, "tok", id, 30*time.Second, func(j *ci.Job) bool { return j.Status == ci.StatusRunning && j.Agent == "doomed" })
	a1.signal(syscall.SIGKILL)
	a1.waitExit(5 * time.Second)
	startProc(t, env, "agent", "--name", "survivor", "--allow-local-clone")
	j := waitJob(t, base, "tok", id, 60*time.Second, nil)
	if j.Status != ci.StatusSuccess || j.Agent != "survivor" || j.Attempt != 2 {
		t.Fatalf("job %s agent %s attempt %d error %q", j.Status, j.Agent, j.Attempt, j.Error)
	}
	logs := apiGet(t, base, "tok", "/jobs/"+id+"/logs", nil)
	finished := 0
	for _, line := range strings.Split(logs, "\n") {
		if line == "finished" {
			finished++
		}
	}
	if finished != 1 || !strings.Contains(logs, "attempt 2 on agent survivor") {
		t.Fatalf("the job finished %d times:\n%s", finished, logs)
	}
	var q struct{ Length, Lag, Pending, Dead int }
	apiGet(t, base, "tok", "/queue", &q)
	if q.Lag != 0 || q.Pending != 0 || q.Dead != 0 {
		t.Fatalf("queue %+v", q)
	}
}

func TestOnceWithEmptyQueueExitsZeroAfterWait(t *testing.T) {
	r := testutil.StartRedis(t)
	began := time.Now()
	p := startProc(t, []string{"RAIBID_REDIS_URL=" + r.URL()}, "agent", "--once", "--wait", "1s", "--ready-file", t.TempDir()+"/claimed")
	if code := p.waitExit(15 * time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.output())
	}
	if took := time.Since(began); took < time.Second {
		t.Fatalf("exited after %s, before the wait", took)
	}
}

// SIGTERM stops `raibid up` in order and leaves no redis-server behind.
func TestUpStopsCleanlyOnSIGTERM(t *testing.T) {
	testutil.RequireTool(t, "redis-server")
	up := startUp(t)
	if pgrepCount(up.dataDir) == 0 {
		t.Fatal("no supervised redis-server with the data dir")
	}
	up.signal(syscall.SIGTERM)
	if code := up.waitExit(15 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return pgrepCount(up.dataDir) == 0 })
	if n := pgrepCount(up.dataDir); n != 0 {
		t.Fatalf("%d processes of this raibid up survived", n)
	}
}

func TestExitCodesAndOneLineErrors(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"bogus"}, 2, "unknown command"},
		{[]string{"server", "--nope"}, 2, "unknown flag"},
		{[]string{"version", "extra"}, 2, "version: too many arguments (usage: raibid version"},
		{[]string{"server", "--redis-url", "redis://127.0.0.1:1/0", "--addr", "127.0.0.1:0"}, 1, "does not answer"},
		{[]string{"server", "--redis-url", "mysql://x"}, 2, "--redis-url"},
		{[]string{"version"}, 0, "raibid "},
	}
	for _, c := range cases {
		cmd := exec.Command(binary, c.args...)
		out, _ := cmd.CombinedOutput()
		if cmd.ProcessState.ExitCode() != c.code || !strings.Contains(string(out), c.want) {
			t.Errorf("raibid %v: exit %d %q, want %d %q", c.args, cmd.ProcessState.ExitCode(), out, c.code, c.want)
		}
		if c.code != 0 && strings.Count(strings.TrimSpace(string(out)), "\n") > 0 {
			t.Errorf("raibid %v: error is not one line: %q", c.args, out)
		}
	}
	// An agent that cannot sandbox its steps refuses to start unless told
	// --sandbox=off. (No bwrap on PATH stands in for a kernel that refuses.)
	r := testutil.StartRedis(t)
	for _, c := range []struct {
		extra []string
		code  int
		want  string
	}{
		{nil, 1, "--sandbox=off"},
		{[]string{"--sandbox", "maybe"}, 2, "--sandbox"},
		{[]string{"--sandbox", "off", "--once", "--wait", "10ms"}, 0, "unsandboxed"},
	} {
		cmd := exec.Command(binary, append([]string{"agent", "--redis-url", r.URL()}, c.extra...)...)
		cmd.Env = append(os.Environ(), "PATH="+t.TempDir())
		out, _ := cmd.CombinedOutput()
		if cmd.ProcessState.ExitCode() != c.code || !strings.Contains(string(out), c.want) {
			t.Errorf("agent %v without bwrap: exit %d %q, want %d %q", c.extra, cmd.ProcessState.ExitCode(), out, c.code, c.want)
		}
	}
	t.Setenv("RAIBID_LEASE", "nonsense")
	cmd := exec.Command(binary, "server")
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), "RAIBID_LEASE") {
		t.Errorf("bad env: %d %q", cmd.ProcessState.ExitCode(), out)
	}
}

// With the build cache, cargo builds into a target dir kept outside the
// workspace; steps and artifacts still see it as target/, as in any cargo
// checkout.
func TestCachedTargetDirIsTheWorkspacesTarget(t *testing.T) {
	testutil.RequireTool(t, "cargo")
	up := startUp(t, "--agents", "1")
	files := testutil.RustCrate(false)
	files["src/main.rs"] = "fn main() {\n    println!(\"{}\", tiny::add(2, 3));\n}\n"
	files[".raibid.yml"] = "steps:\n  - name: build\n    run: cargo build --release && ls target/release/tiny\n" +
		"    artifacts:\n      - target/release/tiny\n      - {name: deps, path: \"target/release/*.d\"}\n"
	dir, sha := testutil.GitRepo(t, files)
	id := push(t, up.url, up.secret, pushPayload("acme/tiny", dir, "main", sha))
	j := waitJob(t, up.url, up.token, id, 3*time.Minute, nil)
	logs := apiGet(t, up.url, up.token, "/jobs/"+id+"/logs", nil)
	if j.Status != ci.StatusSuccess {
		t.Fatalf("job %s %q\n%s", j.Status, j.Error, logs)
	}
	if !strings.Contains(logs, "seen as target/") || strings.Contains(logs, "nothing matches") {
		t.Fatalf("the cached target dir is not the workspace's target/:\n%s", logs)
	}
	var arts struct {
		Artifacts []struct {
			Name string `json:"name"`
			Size int64  `json:"size"`
		} `json:"artifacts"`
	}
	apiGet(t, up.url, up.token, "/jobs/"+id+"/artifacts", &arts)
	names := map[string]int64{}
	for _, a := range arts.Artifacts {
		names[a.Name] = a.Size
	}
	if names["tiny"] < 1000 || names["deps.tar.gz"] == 0 {
		t.Fatalf("artifacts %+v, want the binary and deps.tar.gz", arts)
	}
}
