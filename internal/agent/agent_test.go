package agent_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/agent"
	"github.com/raibid-labs/raibid-ci/internal/cache"
	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
	"github.com/raibid-labs/raibid-ci/internal/sandbox"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

type rig struct {
	t     *testing.T
	redis *testutil.Redis
	*testutil.Jobs
}

func newRig(t *testing.T, lease time.Duration) *rig {
	t.Helper()
	testutil.RequireTool(t, "git")
	r := testutil.StartRedis(t)
	rdb := r.Client()
	return &rig{t: t, redis: r, Jobs: testutil.NewJobs(rdb, lease)}
}

func (r *rig) agent(name string, mod func(*agent.Options)) *agent.Agent {
	o := agent.Options{Name: name, Jobs: r.Lifecycle, Store: r.Store, WorkDir: r.t.TempDir(),
		Repos: agent.Repos{AllowLocal: true}, ClaimBlock: 200 * time.Millisecond, Wait: 2 * time.Second}
	if mod != nil {
		mod(&o)
	}
	return agent.New(o)
}

func (r *rig) submit(cloneURL, commit string) string {
	r.t.Helper()
	id, _, err := r.Submit(context.Background(), &ci.Job{Repo: "acme/tiny", CloneURL: cloneURL,
		Branch: "main", Commit: commit, Trigger: ci.TriggerManual}, "")
	if err != nil {
		r.t.Fatal(err)
	}
	return id
}

func (r *rig) job(id string) *ci.Job {
	r.t.Helper()
	j, err := r.Store.Get(context.Background(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	return j
}

var sgrCodes = regexp.MustCompile("\x1b\\[[0-9;]*m")

func (r *rig) logs(id string) string {
	r.t.Helper()
	lines, err := r.Store.ReadLogs(context.Background(), id, "", 100000, 0)
	if err != nil {
		r.t.Fatal(err)
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.Text + "\n")
	}
	// The default Rust pipeline colours cargo's output; tests read the text.
	return sgrCodes.ReplaceAllString(b.String(), "")
}

// runOnce runs an agent in --once mode to completion.
func (r *rig) runOnce(a *agent.Agent) {
	r.t.Helper()
	if err := a.Run(context.Background()); err != nil {
		r.t.Fatal(err)
	}
}

func stepStatuses(j *ci.Job) string {
	var s []string
	for _, st := range j.Steps {
		s = append(s, st.Name+"="+string(st.Status))
	}
	return strings.Join(s, " ")
}

func TestDefaultRustPipelineSucceeds(t *testing.T) {
	testutil.RequireTool(t, "cargo")
	r := newRig(t, 30*time.Second)
	dir, sha := testutil.GitRepo(t, testutil.RustCrate(false))
	id := r.submit(dir, sha)
	r.runOnce(r.agent("a1", func(o *agent.Options) { o.Once = true }))
	j := r.job(id)
	if j.Status != ci.StatusSuccess {
		t.Fatalf("status %s (%s); steps %s\n%s", j.Status, j.Error, stepStatuses(j), r.logs(id))
	}
	if got := stepStatuses(j); got != "check=success build=success test=success clippy=success audit=skipped image=skipped" {
		t.Fatalf("steps %s", got)
	}
	for _, s := range j.Steps[:4] {
		if s.StartedAt == nil || s.FinishedAt == nil || s.ExitCode == nil || *s.ExitCode != 0 || s.DurationMS <= 0 {
			t.Fatalf("step %+v lacks times or exit code", s)
		}
	}
	if j.Agent != "a1" || j.Attempt != 1 || j.StartedAt == nil || j.FinishedAt == nil {
		t.Fatalf("job %+v", j)
	}
	if logs := r.logs(id); !strings.Contains(logs, "test result: ok") {
		t.Fatalf("logs lack cargo's test result:\n%s", logs)
	}
	if st, _ := r.Queue.Stats(context.Background()); st.Pending != 0 || st.Lag != 0 {
		t.Fatalf("entry not acked: %+v", st)
	}
}

func TestFailingTestFailsJobAndNamesTheTest(t *testing.T) {
	testutil.RequireTool(t, "cargo")
	r := newRig(t, 30*time.Second)
	dir, sha := testutil.GitRepo(t, testutil.RustCrate(true))
	id := r.submit(dir, sha)
	r.runOnce(r.agent("a1", func(o *agent.Options) { o.Once = true }))
	j := r.job(id)
	if j.Status != ci.StatusFailed || !strings.Contains(j.Error, "step test failed") {
		t.Fatalf("status %s %q", j.Status, j.Error)
	}
	if got := stepStatuses(j); got != "check=success build=success test=failed clippy=skipped audit=skipped image=skipped" {
		t.Fatalf("steps %s", got)
	}
	if logs := r.logs(id); !strings.Contains(logs, "it_adds_wrong") || !strings.Contains(logs, "FAILED") {
		t.Fatalf("logs lack the failing test:\n%s", logs)
	}
}

func TestBadPipelineFileEndsInErrorNamingLineAndField(t *testing.T) {
	r := newRig(t, 30*time.Second)
	dir, sha := testutil.GitRepo(t, map[string]string{".raibid.yml": "steps:\n  - name: build\n    run: make\n    retries: 3\n"})
	id := r.submit(dir, sha)
	r.runOnce(r.agent("a1", func(o *agent.Options) { o.Once = true }))
	j := r.job(id)
	if j.Status != ci.StatusError || !strings.Contains(j.Error, ".raibid.yml:4: steps[0].retries") {
		t.Fatalf("status %s %q", j.Status, j.Error)
	}
	dir2, sha2 := testutil.GitRepo(t, map[string]string{"README": "nothing to build\n"})
	id2 := r.submit(dir2, sha2)
	r.runOnce(r.agent("a1", func(o *agent.Options) { o.Once = true }))
	if j := r.job(id2); j.Status != ci.StatusError || !strings.Contains(j.Error, "add a .raibid.yml") {
		t.Fatalf("no pipeline: %s %q", j.Status, j.Error)
	}
}

func countProcs(t *testing.T, marker string) int {
	out, _ := exec.Command("pgrep", "-f", marker).Output()
	return len(strings.Fields(string(out)))
}

func TestCancelRunningJobStopsItWithinTwoSeconds(t *testing.T) {
	r := newRig(t, 30*time.Second)
	marker := fmt.Sprintf("raibid-agent-cancel-%d", os.Getpid())
	dir, sha := testutil.GitRepo(t, map[string]string{".raibid.yml": fmt.Sprintf("steps:\n  - name: wait\n    run: exec -a %s sleep 60\n", marker)})
	id := r.submit(dir, sha)
	done := make(chan struct{})
	go func() { r.runOnce(r.agent("a1", func(o *agent.Options) { o.Once = true })); close(done) }()
	testutil.Eventually(t, 10*time.Second, func() bool { return countProcs(t, marker) != 0 })
	if countProcs(t, marker) == 0 {
		t.Fatalf("step never started: %s", r.logs(id))
	}
	began := time.Now()
	if _, err := r.Cancel(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return countProcs(t, marker) == 0 })
	if took := time.Since(began); took > 2*time.Second {
		t.Fatalf("sleep still running %s after cancel", took)
	}
	<-done
	j := r.job(id)
	if j.Status != ci.StatusCancelled || j.Steps[0].Status != ci.StatusCancelled {
		t.Fatalf("job %s steps %s", j.Status, stepStatuses(j))
	}
	if st, _ := r.Queue.Stats(context.Background()); st.Pending != 0 {
		t.Fatalf("cancelled job's entry not acked: %+v", st)
	}
}

func TestCancelledQueuedJobIsSkippedAndAcked(t *testing.T) {
	r := newRig(t, 30*time.Second)
	dir, sha := testutil.GitRepo(t, map[string]string{".raibid.yml": "steps:\n  - {name: x, run: 'echo ran'}\n"})
	id := r.submit(dir, sha)
	r.Cancel(context.Background(), id)
	r.runOnce(r.agent("a1", func(o *agent.Options) { o.Once = true }))
	if j := r.job(id); j.Status != ci.StatusCancelled || j.StartedAt != nil || len(j.Steps) != 0 {
		t.Fatalf("cancelled job ran: %+v", j)
	}
	if st, _ := r.Queue.Stats(context.Background()); st.Pending != 0 || st.Lag != 0 {
		t.Fatalf("skipped entry not acked: %+v", st)
	}
}

func TestCloneThatAlwaysFailsBecomesDeadLetter(t *testing.T) {
	r := newRig(t, 30*time.Second)
	// A directory that is not a repository: every fetch fails.
	id := r.submit(t.TempDir(), "bffeb74224043ba2feb48d137756c8a9331c449a")
	a := r.agent("a1", nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	testutil.Eventually(t, 20*time.Second, func() bool { return r.job(id).Status == ci.StatusError })
	cancel()
	<-done
	j := r.job(id)
	if j.Status != ci.StatusError || !strings.Contains(j.Error, "dead letter") || !strings.Contains(j.Error, "clone failed") {
		t.Fatalf("job %s %q", j.Status, j.Error)
	}
	st, _ := r.Queue.Stats(context.Background())
	if st.Dead != 1 || st.Pending != 0 || st.Lag != 0 {
		t.Fatalf("stats %+v", st)
	}
	letters, _ := r.Queue.DeadLetters(context.Background(), 5)
	if len(letters) != 1 || letters[0].Fields["job_id"] != id || letters[0].Fields["deliveries"] != "3" {
		t.Fatalf("dead letters %+v", letters)
	}
}

func TestCloneURLOutsideForgeIsRefused(t *testing.T) {
	r := newRig(t, 30*time.Second)
	id := r.submit("https://evil.example.com/acme/tiny.git", "bffeb74224043ba2feb48d137756c8a9331c449a")
	r.runOnce(r.agent("a1", func(o *agent.Options) {
		o.Once = true
		o.Repos = agent.Repos{ForgeURL: "http://gitea.local:3000", Token: "tok-never-shown"}
	}))
	j := r.job(id)
	if j.Status != ci.StatusError || !strings.Contains(j.Error, "evil.example.com is not the configured forge gitea.local:3000") {
		t.Fatalf("job %s %q", j.Status, j.Error)
	}
	if strings.Contains(r.logs(id), "tok-never-shown") {
		t.Fatal("token in logs")
	}
}

func TestOnceTakesOneJobOrExitsAfterWait(t *testing.T) {
	r := newRig(t, 30*time.Second)
	began := time.Now()
	readyFile := t.TempDir() + "/claimed"
	r.runOnce(r.agent("a1", func(o *agent.Options) { o.Once = true; o.Wait = 500 * time.Millisecond; o.ReadyFile = readyFile }))
	if took := time.Since(began); took < 500*time.Millisecond || took > 5*time.Second {
		t.Fatalf("empty queue: returned after %s, want about the wait", took)
	}
	if _, err := os.Stat(readyFile); err == nil {
		t.Fatal("ready file touched without a job")
	}
	dir, sha := testutil.GitRepo(t, map[string]string{".raibid.yml": "steps:\n  - {name: x, run: 'true'}\n"})
	first, second := r.submit(dir, sha), r.submit(dir, sha)
	r.runOnce(r.agent("a1", func(o *agent.Options) { o.Once = true; o.ReadyFile = readyFile }))
	if r.job(first).Status != ci.StatusSuccess || r.job(second).Status != ci.StatusPending {
		t.Fatalf("once ran %s and %s", r.job(first).Status, r.job(second).Status)
	}
	if b, err := os.ReadFile(readyFile); err != nil || strings.TrimSpace(string(b)) != first {
		t.Fatalf("ready file %q %v", b, err)
	}
}

// Stopping an agent hands its running job back at once: a new entry, the
// job pending again, its processes gone; the next agent runs it without the
// hand-back using up a delivery.
func TestShutdownHandsRunningJobBack(t *testing.T) {
	r := newRig(t, 30*time.Second)
	marker := fmt.Sprintf("raibid-agent-shutdown-%d", os.Getpid())
	dir, sha := testutil.GitRepo(t, map[string]string{".raibid.yml": fmt.Sprintf("steps:\n  - name: wait\n    run: exec -a %s sleep 2\n", marker)})
	id := r.submit(dir, sha)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.agent("a1", nil).Run(ctx); close(done) }()
	testutil.Eventually(t, 10*time.Second, func() bool { return countProcs(t, marker) != 0 })
	cancel()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("agent did not stop")
	}
	if n := countProcs(t, marker); n != 0 {
		t.Fatalf("%d step processes outlived the agent", n)
	}
	j := r.job(id)
	st, _ := r.Queue.Stats(context.Background())
	if j.Status != ci.StatusPending || j.Agent != "" || st.Lag != 1 || st.Pending != 0 {
		t.Fatalf("job %s agent %q stats %+v", j.Status, j.Agent, st)
	}
	r.runOnce(r.agent("a2", func(o *agent.Options) { o.Once = true }))
	if j := r.job(id); j.Status != ci.StatusSuccess || j.Agent != "a2" || j.Attempt != 1 {
		t.Fatalf("after hand-back: %s agent %s attempt %d", j.Status, j.Agent, j.Attempt)
	}
}

// recordingStatus is a StatusPoster that remembers what it was told.
type recordingStatus struct {
	mu     sync.Mutex
	states []string
	descs  []string // context: state: description
}

func (s *recordingStatus) PostStatus(_ context.Context, repo, sha string, st gitea.CommitStatus) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.states = append(s.states, repo+"@"+sha[:7]+"="+st.State+":"+st.TargetURL)
	s.descs = append(s.descs, st.Context+": "+st.State+": "+st.Description)
	return nil
}

// Commit statuses reach a server shaped like Gitea's API with the verdict.
func TestCommitStatusPostedToGitea(t *testing.T) {
	r := newRig(t, 30*time.Second)
	var mu sync.Mutex
	var got []string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if req.Header.Get("Authorization") != "token forge-token" {
			w.WriteHeader(401)
			return
		}
		got = append(got, req.Method+" "+req.URL.Path)
		w.WriteHeader(201)
	}))
	defer api.Close()
	dir, sha := testutil.GitRepo(t, map[string]string{".raibid.yml": "steps:\n  - {name: x, run: 'false'}\n"})
	rec := &recordingStatus{}
	id := r.submit(dir, sha)
	r.runOnce(r.agent("a1", func(o *agent.Options) {
		o.Once = true
		o.Status = rec
		o.PublicURL = "http://ci.local"
	}))
	if len(rec.states) != 1 || rec.states[0] != "acme/tiny@"+sha[:7]+"=failure:http://ci.local/ui/jobs/"+id {
		t.Fatalf("statuses %v", rec.states)
	}
	// The same through the real client against the Gitea-shaped server.
	client := gitea.NewClient(api.URL, "forge-token", nil)
	id2 := r.submit(dir, sha)
	r.runOnce(r.agent("a1", func(o *agent.Options) { o.Once = true; o.Status = client }))
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != "POST /api/v1/repos/acme/tiny/statuses/"+sha {
		t.Fatalf("requests %v (job %s)", got, r.job(id2).Status)
	}
}

// Jobs of one repository share one mirror: the branch head is resolved when
// no commit is given, and an older commit is checked out exactly.
func TestCloneByBranchAndByCommitShareOneMirror(t *testing.T) {
	r := newRig(t, 30*time.Second)
	yml := map[string]string{".raibid.yml": "steps:\n  - {name: show, run: 'cat version.txt; git rev-parse HEAD'}\n"}
	yml["version.txt"] = "v1\n"
	dir, first := testutil.GitRepo(t, yml)
	second := testutil.Commit(t, dir, map[string]string{"version.txt": "v2\n"}, "bump")
	work := t.TempDir()
	run := func(commit string) string {
		id, _, err := r.Submit(context.Background(), &ci.Job{Repo: "acme/v", CloneURL: dir, Branch: "main", Commit: commit}, "")
		if err != nil {
			t.Fatal(err)
		}
		r.runOnce(r.agent("a1", func(o *agent.Options) { o.Once = true; o.WorkDir = work }))
		if j := r.job(id); j.Status != ci.StatusSuccess {
			t.Fatalf("job %s %q\n%s", j.Status, j.Error, r.logs(id))
		}
		return r.logs(id)
	}
	if logs := run(""); !strings.Contains(logs, "v2\n"+second) {
		t.Fatalf("branch head not checked out:\n%s", logs)
	}
	if logs := run(first); !strings.Contains(logs, "v1\n"+first) {
		t.Fatalf("old commit not checked out:\n%s", logs)
	}
	mirrors, _ := filepath.Glob(filepath.Join(work, ".mirrors", "*.git"))
	leftovers, _ := filepath.Glob(filepath.Join(work, ".mirrors", "*.git", "worktrees", "*"))
	if len(mirrors) != 1 || len(leftovers) != 0 {
		t.Fatalf("mirrors %v, leftover worktrees %v", mirrors, leftovers)
	}
}

// With a build cache, the second job of a repository reuses the first's
// cargo target directory: its release build compiles nothing.
func TestSecondRustJobReusesCachedTargetDir(t *testing.T) {
	testutil.RequireTool(t, "cargo")
	testutil.RequireTool(t, "sccache")
	r := newRig(t, 30*time.Second)
	dir, sha := testutil.GitRepo(t, testutil.RustCrate(false))
	c := &cache.Cache{Root: t.TempDir()}
	work := t.TempDir()
	var jobs []*ci.Job
	run := func() string {
		id := r.submit(dir, sha)
		r.runOnce(r.agent("a1", func(o *agent.Options) { o.Once = true; o.Cache = c; o.WorkDir = work }))
		j := r.job(id)
		if j.Status != ci.StatusSuccess {
			t.Fatalf("job %s %q\n%s", j.Status, j.Error, r.logs(id))
		}
		jobs = append(jobs, j)
		return r.logs(id)
	}
	first, second := run(), run()
	if jobs[0].CacheArtifacts == 0 || jobs[0].CacheFresh == jobs[0].CacheArtifacts ||
		jobs[1].CacheArtifacts == 0 || jobs[1].CacheFresh != jobs[1].CacheArtifacts {
		t.Fatalf("hit rates: first %d/%d, second %d/%d", jobs[0].CacheFresh, jobs[0].CacheArtifacts, jobs[1].CacheFresh, jobs[1].CacheArtifacts)
	}
	if stored, _ := filepath.Glob(filepath.Join(c.Root, "sccache", "*")); !strings.Contains(first, "sccache: ") || len(stored) == 0 {
		t.Fatalf("sccache not used (%v):\n%s", stored, first)
	}
	if !strings.Contains(first, "cargo home (kept for acme/tiny): "+filepath.Join(c.Root, "cargo-homes")) {
		t.Fatalf("no cargo home of the repository's own:\n%s", first)
	}
	if !strings.Contains(first, "Compiling tiny") || !strings.Contains(first, "cargo target dir (kept between jobs") {
		t.Fatalf("first job did not build:\n%s", first)
	}
	if strings.Contains(second, "Compiling tiny") {
		t.Fatalf("second job compiled again:\n%s", second)
	}
	// A one-line change rebuilds the crate, and only it.
	sha = testutil.Commit(t, dir, map[string]string{"src/lib.rs": "/// Adds.\npub fn add(a: u64, b: u64) -> u64 {\n    b + a\n}\n"}, "swap")
	third := run()
	if j := jobs[2]; !strings.Contains(third, "Compiling tiny") || j.CacheFresh >= j.CacheArtifacts {
		t.Fatalf("after a change: %d/%d fresh\n%s", j.CacheFresh, j.CacheArtifacts, third)
	}
	entries, _ := c.Entries() // the target dir and the cargo home
	if len(entries) != 2 || entries[0].Size == 0 {
		t.Fatalf("cache entries %+v", entries)
	}
}

// Two jobs of one repository at once get two workspace slots and share the
// target directory under cargo's own lock: both succeed.
func TestTwoJobsOfOneRepoAtOnce(t *testing.T) {
	testutil.RequireTool(t, "cargo")
	r := newRig(t, 30*time.Second)
	files := testutil.RustCrate(false)
	// The sleep makes the two jobs overlap, so each needs its own slot.
	files[".raibid.yml"] = "steps:\n  - {name: wait, run: 'sleep 1'}\n  - {name: build, run: 'cargo build --release'}\n  - {name: test, run: 'cargo test'}\n"
	dir, sha := testutil.GitRepo(t, files)
	c := &cache.Cache{Root: t.TempDir()}
	work := t.TempDir()
	ids := []string{r.submit(dir, sha), r.submit(dir, sha)}
	var wg sync.WaitGroup
	for _, name := range []string{"a1", "a2"} {
		a := r.agent(name, func(o *agent.Options) { o.Once = true; o.Cache = c; o.WorkDir = work })
		wg.Go(func() { a.Run(context.Background()) })
	}
	wg.Wait()
	for _, id := range ids {
		if j := r.job(id); j.Status != ci.StatusSuccess {
			t.Fatalf("job %s %s %q\n%s", id, j.Status, j.Error, r.logs(id))
		}
	}
	// The slots' worktrees are kept for the next job of the repository.
	if slots, _ := filepath.Glob(filepath.Join(work, "*-[0-9]")); len(slots) != 2 {
		t.Fatalf("slots %v, want two", slots)
	}
}

// A kept slot whose mirror has gone (pruned, or the repository moved) is
// made anew instead of failing every job of the repository.
func TestKeptSlotWithLostMirrorIsRebuilt(t *testing.T) {
	r := newRig(t, 30*time.Second)
	dir, sha := testutil.GitRepo(t, map[string]string{".raibid.yml": "steps:\n  - {name: x, run: 'true'}\n", "Cargo.toml": ""})
	c := &cache.Cache{Root: t.TempDir()}
	work := t.TempDir()
	run := func() *ci.Job {
		id := r.submit(dir, sha)
		r.runOnce(r.agent("a1", func(o *agent.Options) { o.Once = true; o.Cache = c; o.WorkDir = work }))
		return r.job(id)
	}
	if j := run(); j.Status != ci.StatusSuccess {
		t.Fatalf("first: %s %q", j.Status, j.Error)
	}
	if err := os.RemoveAll(filepath.Join(work, ".mirrors")); err != nil {
		t.Fatal(err)
	}
	if j := run(); j.Status != ci.StatusSuccess {
		t.Fatalf("after losing the mirror: %s %q", j.Status, j.Error)
	}
}

// storedLog is the job's stored log with continuation pieces joined, as
// `GET /jobs/{id}/logs` gives it.
func (r *rig) storedLog(id string) []string {
	r.t.Helper()
	var out []string
	after := ""
	for {
		lines, err := r.Store.ReadLogs(context.Background(), id, after, 5000, 0)
		if err != nil {
			r.t.Fatal(err)
		}
		if len(lines) == 0 {
			return out
		}
		for _, l := range lines {
			if l.Cont && len(out) > 0 {
				out[len(out)-1] += l.Text
			} else {
				out = append(out, l.Text)
			}
		}
		after = lines[len(lines)-1].ID
	}
}

// A step's output, stored: the lines after the step's command line, without
// the job's closing summary (its phases).
func stepOutput(log []string, step string) []string {
	for i, l := range log {
		if strings.HasPrefix(l, "$ ") && strings.Contains(l, step) {
			out := log[i+1:]
			if n := len(out); n > 0 && strings.HasPrefix(out[n-1], "overhead ") {
				out = out[:n-1]
			}
			return out
		}
	}
	return nil
}

// 3,000 numbered lines of 64 KiB (196 MB, three times the 64 MiB cap): the
// head in order, one marker, the last MiB in order, the last line and the
// verdict present, no line twice.
func TestHugeLinesKeepHeadMarkerAndTail(t *testing.T) {
	r := newRig(t, 30*time.Second)
	dir, sha := testutil.GitRepo(t, map[string]string{".raibid.yml": "steps:\n  - name: big\n    run: |\n" +
		"      awk 'BEGIN { s = \"x\"; while (length(s) < 65529) s = s s; s = substr(s, 1, 65529); for (i = 1; i <= 3000; i++) printf \"%06d %s\\n\", i, s }'\n" +
		"      echo the-end\n"})
	id := r.submit(dir, sha)
	r.runOnce(r.agent("a1", func(o *agent.Options) { o.Once = true }))
	j := r.job(id)
	if j.Status != ci.StatusSuccess {
		t.Fatalf("job %s %q", j.Status, j.Error)
	}
	out := stepOutput(r.storedLog(id), "awk")
	next, marker := 1, false
	for _, l := range out {
		if strings.HasPrefix(l, "log truncated at 64.0 MiB") {
			if marker {
				t.Fatal("two markers")
			}
			marker = true
			continue
		}
		if l == "the-end" {
			break
		}
		var n int
		fmt.Sscanf(l, "%d", &n)
		if len(l) != 65536 {
			t.Fatalf("line %d stored as %d bytes, want 65536", n, len(l))
		}
		if marker && n > next {
			next = n // the gap the marker announced
		}
		if n != next {
			t.Fatalf("line %d where %d was due (duplicate or out of order)", n, next)
		}
		next++
	}
	if !marker || next != 3001 || out[len(out)-1] != "the-end" {
		t.Fatalf("marker %v, last numbered line %d, last line %.20q", marker, next-1, out[len(out)-1])
	}
}

// 2,000,000 short numbered lines: every one stored, once, in order.
func TestTwoMillionShortLinesAllStored(t *testing.T) {
	// The unit lane (go test -short) stores a tenth of them: the same
	// batching, in a tenth of the time; make test stores them all.
	lines := 2000000
	if testing.Short() {
		lines = 200000
	}
	r := newRig(t, 30*time.Second)
	cmd := fmt.Sprintf("seq 1 %d", lines)
	dir, sha := testutil.GitRepo(t, map[string]string{".raibid.yml": "steps:\n  - {name: many, run: '" + cmd + "'}\n"})
	id := r.submit(dir, sha)
	r.runOnce(r.agent("a1", func(o *agent.Options) { o.Once = true }))
	if j := r.job(id); j.Status != ci.StatusSuccess {
		t.Fatalf("job %s %q", j.Status, j.Error)
	}
	out := stepOutput(r.storedLog(id), cmd)
	if len(out) < lines {
		t.Fatalf("%d lines stored after the command, want %d", len(out), lines)
	}
	for i := range lines {
		if out[i] != strconv.Itoa(i+1) {
			t.Fatalf("line %d is %q", i+1, out[i])
		}
	}
}

type fakeSecrets map[string]string

func (f fakeSecrets) ForRepo(_ context.Context, _ string, names []string) (map[string]string, error) {
	out := map[string]string{}
	for _, n := range names {
		out[n] = f[n]
	}
	return out, nil
}

// Steps see the event their job is for; a pull request from a fork runs
// without the pipeline's secrets (its author controls the pipeline), one
// from the repository itself with them.
func TestStepsSeeTheEventAndForksGetNoSecrets(t *testing.T) {
	r := newRig(t, 30*time.Second)
	dir, sha := testutil.GitRepo(t, map[string]string{".raibid.yml": "steps:\n  - name: show\n    run: echo \"event=$RAIBID_EVENT pr=$RAIBID_PR base=$RAIBID_BASE_BRANCH head=$RAIBID_HEAD_BRANCH tag=$RAIBID_TAG token=[$TOKEN]\"\n    secrets: [{name: deploy_token, env: TOKEN}]\n"})
	for _, fromFork := range []bool{true, false} {
		id, _, err := r.Submit(context.Background(), &ci.Job{Repo: "acme/tiny", CloneURL: dir, Branch: "feature", Commit: sha,
			Event: ci.EventPullRequest, PullRequest: &ci.PullRequest{Number: 13, BaseBranch: "main", HeadBranch: "feature", FromFork: fromFork}}, "")
		if err != nil {
			t.Fatal(err)
		}
		r.runOnce(r.agent("a1", func(o *agent.Options) {
			o.Once = true
			o.PipelineSecrets = fakeSecrets{"deploy_token": "s3cr3t-v4lue"}
		}))
		j, logs := r.job(id), r.logs(id)
		if j.Status != ci.StatusSuccess {
			t.Fatalf("fork=%v: %s %q\n%s", fromFork, j.Status, j.Error, logs)
		}
		if !strings.Contains(logs, "event=pull_request pr=13 base=main head=feature tag=") {
			t.Fatalf("fork=%v: the step did not see the event:\n%s", fromFork, logs)
		}
		if fromFork && (!strings.Contains(logs, "token=[]") || !strings.Contains(logs, "secrets withheld")) {
			t.Fatalf("a fork's pull request saw the secret:\n%s", logs)
		}
		if !fromFork && !strings.Contains(logs, "token=[****]") {
			t.Fatalf("the repository's own pull request did not get the secret (masked):\n%s", logs)
		}
	}
}

// Path conditions with no file list from the webhook use git's diff between
// the push's before and after commits; a pipeline whose when does not match
// ends without running a step.
func TestPathConditionsUseGitsDiff(t *testing.T) {
	r := newRig(t, 30*time.Second)
	yml := "steps:\n  - name: code\n    run: echo code-step\n    when: {path: \"src/**\"}\n  - name: docs\n    run: echo docs-step\n    when: {path: \"docs/**\"}\n"
	dir, before := testutil.GitRepo(t, map[string]string{".raibid.yml": yml, "src/a.go": "package a\n", "docs/x.md": "x\n"})
	after := testutil.Commit(t, dir, map[string]string{"docs/x.md": "y\n"}, "docs only")
	id, _, err := r.Submit(context.Background(), &ci.Job{Repo: "acme/paths", CloneURL: dir, Branch: "main", Commit: after, Before: before}, "")
	if err != nil {
		t.Fatal(err)
	}
	r.runOnce(r.agent("a1", func(o *agent.Options) { o.Once = true }))
	j, logs := r.job(id), r.logs(id)
	if j.Status != ci.StatusSuccess || stepStatuses(j) != "code=skipped docs=success" || !strings.Contains(logs, "skipped: none of the 1 file changed matches when.path") {
		t.Fatalf("%s %s\n%s", j.Status, stepStatuses(j), logs)
	}

	dir2, sha2 := testutil.GitRepo(t, map[string]string{".raibid.yml": "when: {event: tag}\nsteps:\n  - {name: release, run: echo releasing}\n"})
	id2, _, _ := r.Submit(context.Background(), &ci.Job{Repo: "acme/tagonly", CloneURL: dir2, Branch: "main", Commit: sha2, Event: ci.EventPush}, "")
	rec := &recordingStatus{}
	r.runOnce(r.agent("a1", func(o *agent.Options) { o.Once = true; o.Status = rec }))
	j2, logs2 := r.job(id2), r.logs(id2)
	if j2.Status != ci.StatusSuccess || stepStatuses(j2) != "release=skipped" || !strings.Contains(logs2, "pipeline skipped: event push is not tag") || strings.Contains(logs2, "releasing") {
		t.Fatalf("%s %s\n%s", j2.Status, stepStatuses(j2), logs2)
	}
	// The server queued it without reading the pipeline (its pending
	// status is out): the commit's status says it was skipped, and why.
	if len(rec.descs) != 1 || !strings.HasPrefix(rec.descs[0], "raibid-ci/push: success: skipped: event push is not tag") {
		t.Fatalf("statuses %q", rec.descs)
	}
}

// BenchmarkStepGraph: a job of 8 independent `sleep 0.5` steps on one agent
// with a step concurrency of 8, sandbox off; the ideal wall time is 0.5 s
// (sequential: 4 s). Prints the steps' span from the first start to the
// last finish.
func BenchmarkStepGraph(b *testing.B) {
	r := &rig{redis: testutil.StartRedis(b)}
	r.Jobs = testutil.NewJobs(r.redis.Client(), 30*time.Second)
	var yml strings.Builder
	yml.WriteString("steps:\n  - {name: start, run: \"true\"}\n")
	for i := range 8 {
		fmt.Fprintf(&yml, "  - {name: nap%d, run: sleep 0.5, depends_on: [start]}\n", i)
	}
	dir, sha := testutil.GitRepo(b, map[string]string{".raibid.yml": yml.String()})
	var spans []time.Duration
	for b.Loop() {
		id, _, err := r.Submit(context.Background(), &ci.Job{Repo: "bench/graph", CloneURL: dir, Branch: "main", Commit: sha}, "")
		if err != nil {
			b.Fatal(err)
		}
		a := agent.New(agent.Options{Name: "bench", Jobs: r.Lifecycle, Store: r.Store, WorkDir: b.TempDir(),
			Repos: agent.Repos{AllowLocal: true}, Once: true, Wait: 5 * time.Second, StepConcurrency: 8})
		if err := a.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
		j, _ := r.Store.Get(context.Background(), id)
		first, last := time.Time{}, time.Time{}
		for _, s := range j.Steps[1:] {
			if first.IsZero() || s.StartedAt.Before(first) {
				first = *s.StartedAt
			}
			if s.FinishedAt.After(last) {
				last = *s.FinishedAt
			}
		}
		spans = append(spans, last.Sub(first))
	}
	var total time.Duration
	for _, s := range spans {
		total += s
	}
	b.ReportMetric((total / time.Duration(len(spans))).Seconds(), "wall-s")
	b.ReportMetric(0.5, "limit-s")
}

// An annotated tag's event names the tag object: the job builds, shows and
// reports the commit it points at (RAIBID_COMMIT, the job's commit, its
// status).
func TestAnnotatedTagBuildsItsCommit(t *testing.T) {
	r := newRig(t, 30*time.Second)
	dir, sha := testutil.GitRepo(t, map[string]string{".raibid.yml": "steps:\n  - {name: show, run: 'echo commit=$RAIBID_COMMIT'}\n"})
	git := func(args ...string) string {
		out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("-c", "user.name=t", "-c", "user.email=t@x", "tag", "-a", "v1.0.0", "-m", "release")
	tagObject := git("rev-parse", "v1.0.0")
	if tagObject == sha {
		t.Fatal("the tag is not annotated")
	}
	id, _, err := r.Submit(context.Background(), &ci.Job{Repo: "acme/tiny", CloneURL: dir, Tag: "v1.0.0", Commit: tagObject,
		Event: ci.EventTag, Trigger: ci.TriggerPush}, "")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordingStatus{}
	r.runOnce(r.agent("a1", func(o *agent.Options) { o.Once = true; o.Status = rec }))
	j := r.job(id)
	if j.Status != ci.StatusSuccess || j.Commit != sha || !strings.Contains(r.logs(id), "commit="+sha) {
		t.Fatalf("job %s commit %s (want %s)\n%s", j.Status, j.Commit, sha, r.logs(id))
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	// On the commit, and on the tag object too: the server's pending
	// status went there (it cannot peel without the checkout), and must end.
	if len(rec.states) != 2 || !strings.HasPrefix(rec.states[0], "acme/tiny@"+sha[:7]+"=success") ||
		!strings.HasPrefix(rec.states[1], "acme/tiny@"+tagObject[:7]+"=success") || j.TagObject != tagObject {
		t.Fatalf("status posted as %v, want on %s and %s (tag object recorded: %q)", rec.states, sha, tagObject, j.TagObject)
	}
}

// In a pod the executor made for its job, a pipeline with image services
// the job did not name (the server queued it without reading the pipeline)
// is handed back with its sidecars, so the executor launches a pod that has
// them; no step runs in the pod without them.
func TestShapedPodHandsOverAJobThatNeedsSidecars(t *testing.T) {
	r := newRig(t, 30*time.Second)
	dir, sha := testutil.GitRepo(t, map[string]string{".raibid.yml": "services:\n  - {name: db, image: \"postgres:17.2\", run: postgres, port: 5432}\nsteps:\n  - {name: test, run: echo ran-here}\n"})
	id := r.submit(dir, sha)
	r.runOnce(r.agent("pod", func(o *agent.Options) { o.Once = true; o.ShapedPod = true }))
	j, logs := r.job(id), r.logs(id)
	want := []ci.Sidecar{{Name: "db", Image: "postgres:17.2", Port: 5432}}
	if j.Status != ci.StatusPending || !reflect.DeepEqual(j.Sidecars, want) || strings.Contains(logs, "ran-here") ||
		!strings.Contains(logs, "handed over: the pipeline needs a pod with the pipeline's services") {
		t.Fatalf("%s sidecars %+v\n%s", j.Status, j.Sidecars, logs)
	}
	if st, _ := r.Queue.Stats(context.Background()); st.Lag != 1 || st.Pending != 0 {
		t.Fatalf("queue %+v, want the job queued again", st)
	}
}

// A job records where the agent's time went: each phase, and the overhead
// (all but the steps), in its phases and in its log's last line.
func TestJobRecordsItsPhases(t *testing.T) {
	r := newRig(t, 30*time.Second)
	dir, sha := testutil.GitRepo(t, map[string]string{".raibid.yml": "steps:\n  - {name: nap, run: sleep 0.2}\n"})
	id := r.submit(dir, sha)
	r.runOnce(r.agent("a1", func(o *agent.Options) { o.Once = true }))
	j, logs := r.job(id), r.logs(id)
	for _, k := range []string{"workspace", "clone", "plan", "prepare", "steps", "overhead"} {
		if _, ok := j.Phases[k]; !ok {
			t.Fatalf("phases %v lack %s", j.Phases, k)
		}
	}
	sum := j.Phases["workspace"] + j.Phases["clone"] + j.Phases["plan"] + j.Phases["prepare"]
	if j.Phases["steps"] < 200 || math.Abs(j.Phases["overhead"]-sum) > 0.05 || !strings.Contains(logs, "overhead ") {
		t.Fatalf("phases %v\n%s", j.Phases, logs)
	}
}

// With the sandbox, the agent checks out as root and hands the tree to the
// build user. Two jobs of one commit must still leave an unchanged file's
// modification time alone (cargo decides freshness by it), while a file a
// build changed — even one it gave back its old size and time — is put back.
func TestKeptWorktreeKeepsTimesUnderTheSandbox(t *testing.T) {
	sb := testSandbox(t)
	r := newRig(t, 30*time.Second)
	dir, sha := testutil.GitRepo(t, map[string]string{
		".raibid.yml": "steps:\n  - {name: tamper, run: 'if [ -n \"$TAMPER\" ]; then t=$(stat -c %Y src.txt); printf evil > src.txt; touch -d @$t src.txt; fi'}\n",
		"src.txt":     "good",
		"other.txt":   "left alone",
	})
	work := t.TempDir()
	runJob := r.sandboxedRunner(sb, dir, sha, work)
	run := func(env ...string) string {
		runJob(env...)
		slots, _ := filepath.Glob(filepath.Join(work, "*-0"))
		if len(slots) != 1 {
			t.Fatalf("slots %v", slots)
		}
		return slots[0]
	}
	slot := run()
	mtime := func(name string) time.Time {
		st, err := os.Stat(filepath.Join(slot, name))
		if err != nil {
			t.Fatal(err)
		}
		return st.ModTime()
	}
	before := mtime("other.txt") // a rewrite would give other nanoseconds
	run("TAMPER=1")
	if after := mtime("other.txt"); !after.Equal(before) {
		t.Fatalf("an unchanged file was rewritten: %v then %v", before, after)
	}
	if got, _ := os.ReadFile(filepath.Join(slot, "src.txt")); string(got) != "evil" {
		t.Fatalf("the tampering step did not run: %q", got)
	}
	run()
	if got, _ := os.ReadFile(filepath.Join(slot, "src.txt")); string(got) != "good" {
		t.Fatalf("a file the last build changed was kept: %q", got)
	}
}

// sandboxedRunner runs commit of the repository at dir, as one job each
// call, on a sandboxed agent with a build cache and work dir that the
// calls share (so the workspace slot is kept); env adds step variables.
// It returns the job's log, failing the test unless the job succeeded.
func (r *rig) sandboxedRunner(sb *sandbox.Sandbox, dir, sha, work string) func(env ...string) string {
	c := &cache.Cache{Root: r.t.TempDir()}
	return func(env ...string) string {
		r.t.Helper()
		id := r.submit(dir, sha)
		r.runOnce(r.agent("a1", func(o *agent.Options) {
			o.Once, o.Cache, o.WorkDir, o.Sandbox, o.Env = true, c, work, sb, env
		}))
		if j := r.job(id); j.Status != ci.StatusSuccess {
			r.t.Fatalf("job %s %q\n%s", j.Status, j.Error, r.logs(id))
		}
		return r.logs(id)
	}
}

// testSandbox is a bwrap sandbox for steps. .ci/run installs bubblewrap:
// a machine that cannot sandbox fails the test rather than skip it.
func testSandbox(t *testing.T) *sandbox.Sandbox {
	t.Helper()
	testutil.RequireTool(t, "bwrap")
	sb, err := sandbox.New(sandbox.Options{})
	if err != nil {
		t.Fatalf("sandbox: %v (scripts/deps installs bubblewrap)", err)
	}
	return sb
}

// A kept worktree that no build changed since the agent last made it
// clean is not cleaned again (one git process fewer per job; none for the
// same commit) — and a worktree a build did change, by any file, is.
func TestPristineWorktreeSkipsTheReset(t *testing.T) {
	sb := testSandbox(t)
	r := newRig(t, 30*time.Second)
	dir, sha := testutil.GitRepo(t, map[string]string{
		".raibid.yml": "steps:\n  - {name: s, run: 'if [ -n \"$LEAVE\" ]; then echo junk > $LEAVE; fi; ls'}\n",
		"src.txt":     "good",
	})
	run := r.sandboxedRunner(sb, dir, sha, t.TempDir())
	run()
	if logs := run(); !strings.Contains(logs, "workspace unchanged since the last job: not reset") {
		t.Fatalf("a pristine worktree was reset again:\n%s", logs)
	}
	run("LEAVE=left.txt") // a build leaves a file behind
	logs := run()
	if strings.Contains(logs, "workspace unchanged") || strings.Contains(logs, "left.txt") {
		t.Fatalf("a worktree a build changed was taken as clean:\n%s", logs)
	}
}
