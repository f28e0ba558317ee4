//go:build forge

// The forge suite (make test-forge): raibid against a real Gitea 1.27.3 —
// webhooks Gitea signs and delivers, clones of a private repository with
// the documented token scopes, commit statuses read back from Gitea's own
// API, and statuses that outlive Gitea going away and raibid restarting.
package forge_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/api"
	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/client"
	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
	"github.com/raibid-labs/raibid-ci/test/forge"
)

var (
	gt     *forge.Gitea
	raibid string
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	work, err := os.MkdirTemp("", "raibid-forge-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(work)
	if raibid, err = testutil.BuildRaibid(work); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir := filepath.Join(work, "gitea")
	if err := os.Mkdir(dir, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	t0 := time.Now()
	gt, err = forge.Start(context.Background(), dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gitea:", err)
		return 1
	}
	defer gt.Stop()
	fmt.Printf("gitea %s ready in %.1f s at %s\n", forge.Version, time.Since(t0).Seconds(), gt.URL)
	return m.Run()
}

// up is a `raibid up` talking to the suite's Gitea.
type up struct {
	t       testing.TB
	url     string
	secret  string
	dataDir string
	addr    string
	cmd     *exec.Cmd
	log     *os.File
}

func startRaibid(t testing.TB, dataDir, addr string, extra ...string) *up {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(dataDir+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(raibid, append([]string{"up", "--data-dir", dataDir, "--addr", addr, "--agents", "2",
		"--gitea-url", gt.URL, "--public-url", "http://" + addr, "--log-level", "info"}, extra...)...)
	cmd.Env = append(os.Environ(), "RAIBID_GITEA_TOKEN="+gt.Token)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	u := &up{t: t, url: "http://" + addr, dataDir: dataDir, addr: addr, cmd: cmd, log: logf}
	t.Cleanup(u.stop)
	if !testutil.Eventually(t, 60*time.Second, func() bool {
		b, err := os.ReadFile(filepath.Join(dataDir, "webhook-secret"))
		if err != nil || len(b) == 0 {
			return false
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		c.Close()
		u.secret = strings.TrimSpace(string(b))
		return true
	}) {
		t.Fatalf("raibid up did not start:\n%s", u.logs())
	}
	return u
}

// jobsOf is raibid's jobs of repo, newest first (its API, with up's token).
func (u *up) jobsOf(repo string) []ci.Job {
	u.t.Helper()
	token, err := os.ReadFile(filepath.Join(u.dataDir, "api-token"))
	if err != nil {
		u.t.Fatal(err)
	}
	page, err := client.New(u.url, strings.TrimSpace(string(token))).ListJobs(context.Background(), api.JobFilter{Repo: repo})
	if err != nil {
		u.t.Fatal(err)
	}
	return page.Jobs
}

func (u *up) stop() {
	if u.cmd == nil {
		return
	}
	_ = syscall.Kill(-u.cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { u.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-u.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	u.log.Close()
	u.cmd = nil
}

func (u *up) logs() string {
	b, _ := os.ReadFile(u.dataDir + ".log")
	return string(b)
}

// repo creates a private repository with raibid's webhook (push, create,
// pull request events) and returns a clone to commit in.
func repo(t testing.TB, u *up, name string) (full, work string) {
	t.Helper()
	full, work = newRepo(t, name, true)
	hook := map[string]any{"type": "gitea", "active": true, "events": []string{"push", "create", "pull_request", "pull_request_sync"},
		"config": map[string]string{"url": u.url + "/webhook/gitea", "content_type": "json", "secret": u.secret}}
	if err := gt.API(context.Background(), "POST", "/repos/"+full+"/hooks", hook, nil, true); err != nil {
		t.Fatal(err)
	}
	return full, work
}

// newRepo creates the admin's repository name, and a clone to commit in.
func newRepo(t testing.TB, name string, private bool) (full, work string) {
	t.Helper()
	if err := gt.API(context.Background(), "POST", "/user/repos", map[string]any{"name": name, "private": private}, nil, true); err != nil {
		t.Fatal(err)
	}
	full, work = gt.User+"/"+name, t.TempDir()
	git(t, work, "init", "-q", "-b", "main")
	git(t, work, "remote", "add", "origin", gt.PushURL(full))
	return full, work
}

func git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=Ann", "-c", "user.email=ann@forge.test"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// commitAndPush writes files, commits and pushes main; returns the commit.
func commitAndPush(t testing.TB, work string, files map[string]string) string {
	t.Helper()
	return commitAndPushBranch(t, work, "main", files)
}

// statuses is Gitea's combined view of a commit's statuses: the newest
// state per context.
func statuses(t testing.TB, full, sha string) map[string]string {
	t.Helper()
	var out []struct {
		Context     string `json:"context"`
		Status      string `json:"status"`
		Description string `json:"description"`
		ID          int64  `json:"id"`
	}
	if err := gt.API(context.Background(), "GET", "/repos/"+full+"/commits/"+sha+"/statuses?limit=50", nil, &out); err != nil {
		t.Fatal(err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	got := map[string]string{}
	for _, s := range out {
		got[s.Context] = s.Status + ": " + s.Description
	}
	return got
}

// waitStatuses waits until Gitea's statuses of sha satisfy ok.
func waitStatuses(t testing.TB, u *up, full, sha string, within time.Duration, ok func(map[string]string) bool) map[string]string {
	t.Helper()
	var got map[string]string
	if !testutil.Eventually(t, within, func() bool { got = statuses(t, full, sha); return ok(got) }) {
		t.Fatalf("statuses of %s in Gitea: %v\nraibid's log:\n%s", sha[:12], got, tail(u.logs(), 60))
	}
	return got
}

func tail(s string, n int) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func final(st string) bool {
	return strings.HasPrefix(st, "success") || strings.HasPrefix(st, "failure") || strings.HasPrefix(st, "error")
}

// A push to a private repository: Gitea signs and delivers the webhook,
// an agent clones with raibid's token, the agent plans the 2-way matrix,
// and every status — each combination's and the aggregate — ends in
// Gitea's own API as the verdict, none left pending.
func TestPushBuildsAMatrixAndStatusesReachGitea(t *testing.T) {
	dataDir := t.TempDir()
	u := startRaibid(t, filepath.Join(dataDir, "up"), freeAddr(t))
	full, work := repo(t, u, "matrix")
	yml := "matrix:\n  variant: [plain, fails]\nsteps:\n  - name: test\n    run: echo variant=$RAIBID_MATRIX_VARIANT; test $RAIBID_MATRIX_VARIANT = plain\n"
	sha := commitAndPush(t, work, map[string]string{".raibid.yml": yml, "README": "x\n"})
	got := waitStatuses(t, u, full, sha, 90*time.Second, func(s map[string]string) bool {
		return final(s["raibid-ci/push/variant=plain"]) && final(s["raibid-ci/push/variant=fails"]) && final(s["raibid-ci/push"])
	})
	if !strings.HasPrefix(got["raibid-ci/push/variant=plain"], "success") || !strings.HasPrefix(got["raibid-ci/push/variant=fails"], "failure") ||
		got["raibid-ci/push"] != "failure: 1 of 2 matrix jobs did not pass" {
		t.Fatalf("statuses %v", got)
	}
}

// Gitea goes away for two minutes while a job runs, and raibid restarts
// while it is away: the job's verdict waits in the status outbox (Redis)
// and reaches Gitea once it is back, posted by the new raibid.
func TestStatusOutlivesGiteaDownAndARaibidRestart(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "up")
	addr := freeAddr(t)
	u := startRaibid(t, dataDir, addr)
	full, work := repo(t, u, "outage")
	sha := commitAndPush(t, work, map[string]string{".raibid.yml": "steps:\n  - name: slow\n    run: sleep 4; echo done\n"})
	// Gitea goes once the step runs (the clone is done: a clone from a
	// stopped Gitea is another story, retried as a system failure).
	if !testutil.Eventually(t, 60*time.Second, func() bool {
		js := u.jobsOf(full)
		return len(js) == 1 && len(js[0].Steps) == 1 && js[0].Steps[0].Status == ci.StatusRunning
	}) {
		t.Fatalf("the job's step did not start: %+v", u.jobsOf(full))
	}
	gt.Down()
	down := time.Now()
	// The job ends while Gitea is away: its status cannot be posted.
	if !testutil.Eventually(t, 60*time.Second, func() bool {
		js := u.jobsOf(full)
		return len(js) == 1 && js[0].Status.Final()
	}) {
		t.Fatalf("the job did not end while Gitea was down: %+v", u.jobsOf(full))
	}
	u.stop()
	u = startRaibid(t, dataDir, addr)
	// Two minutes away in all: the outbox's retries reach their longest
	// wait (a minute) before Gitea is back.
	time.Sleep(time.Until(down.Add(2 * time.Minute)))
	if err := gt.Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := waitStatuses(t, u, full, sha, 90*time.Second, func(s map[string]string) bool { return final(s["raibid-ci/push"]) })
	if !strings.HasPrefix(got["raibid-ci/push"], "success: passed") {
		t.Fatalf("statuses %v", got)
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// An annotated tag and a pull request from a branch, as Gitea sends them:
// the tag's job builds the commit the tag object points at and reports on
// it under the tag's context; the pull request's job reports on its head
// commit under the pull request's context, apart from the branch's push.
func TestAnnotatedTagAndPullRequestReportOnTheirCommits(t *testing.T) {
	u := startRaibid(t, filepath.Join(t.TempDir(), "up"), freeAddr(t))
	full, work := repo(t, u, "events")
	yml := "steps:\n  - name: show\n    run: echo event=$RAIBID_EVENT commit=$RAIBID_COMMIT\n"
	base := commitAndPush(t, work, map[string]string{".raibid.yml": yml})
	waitStatuses(t, u, full, base, 60*time.Second, func(s map[string]string) bool { return final(s["raibid-ci/push"]) })

	git(t, work, "tag", "-a", "v1.0.0", "-m", "release")
	obj := git(t, work, "rev-parse", "v1.0.0")
	if obj == base {
		t.Fatal("the tag is not annotated")
	}
	git(t, work, "push", "-q", "origin", "v1.0.0")
	got := waitStatuses(t, u, full, base, 60*time.Second, func(s map[string]string) bool { return final(s["raibid-ci/tag"]) })
	if !strings.HasPrefix(got["raibid-ci/tag"], "success") {
		t.Fatalf("tag status on its commit: %v", got)
	}
	// The server's pending went to the tag object (the event names it):
	// it ends with the verdict, never left pending.
	got = waitStatuses(t, u, full, obj, 30*time.Second, func(s map[string]string) bool { return final(s["raibid-ci/tag"]) })
	if !strings.HasPrefix(got["raibid-ci/tag"], "success") {
		t.Fatalf("tag status on the tag object: %v", got)
	}

	git(t, work, "checkout", "-q", "-b", "feature")
	head := commitAndPushBranch(t, work, "feature", map[string]string{"feature.txt": "x\n"})
	if err := gt.API(context.Background(), "POST", "/repos/"+full+"/pulls",
		map[string]string{"head": "feature", "base": "main", "title": "A feature"}, nil, true); err != nil {
		t.Fatal(err)
	}
	got = waitStatuses(t, u, full, head, 60*time.Second, func(s map[string]string) bool {
		return final(s["raibid-ci/pr"]) && final(s["raibid-ci/push"])
	})
	if !strings.HasPrefix(got["raibid-ci/pr"], "success") || !strings.HasPrefix(got["raibid-ci/push"], "success") {
		t.Fatalf("pull request head statuses: %v", got)
	}

	// New commits on the pull request (Gitea's "synchronized") build again.
	next := commitAndPushBranch(t, work, "feature", map[string]string{"feature.txt": "y\n"})
	got = waitStatuses(t, u, full, next, 60*time.Second, func(s map[string]string) bool { return final(s["raibid-ci/pr"]) })
	if !strings.HasPrefix(got["raibid-ci/pr"], "success") {
		t.Fatalf("synchronized pull request: %v", got)
	}

	// A lightweight tag arrives twice (its push and Gitea's create event):
	// one build.
	git(t, work, "tag", "v1.0.1")
	git(t, work, "push", "-q", "origin", "v1.0.1")
	waitStatuses(t, u, full, next, 60*time.Second, func(s map[string]string) bool { return final(s["raibid-ci/tag"]) })
	tagJobs := 0
	for _, j := range u.jobsOf(full) {
		if j.Event == ci.EventTag && j.Tag == "v1.0.1" {
			tagJobs++
			if j.Commit != next {
				t.Errorf("tag job builds %s, want %s", j.Commit, next)
			}
		}
	}
	if tagJobs != 1 {
		t.Fatalf("%d jobs for one lightweight tag", tagJobs)
	}
}

// commitAndPushBranch is commitAndPush to another branch.
func commitAndPushBranch(t testing.TB, work, branch string, files map[string]string) string {
	t.Helper()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(work, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git(t, work, "add", "-A")
	git(t, work, "commit", "-q", "-m", "on "+branch)
	sha := git(t, work, "rev-parse", "HEAD")
	git(t, work, "push", "-q", "origin", "HEAD:"+branch)
	return sha
}

// The client contract against the real Gitea (the fake runs it in every
// make test: contract_fake_test.go).
func TestClientContractWithTheRealGitea(t *testing.T) {
	// Right after a repository's first push Gitea answers 500 for its
	// branch for a moment; raibid's client asks again (a manual job or a
	// schedule on a new repository).
	fresh, work := newRepo(t, "fresh", false)
	head := commitAndPush(t, work, map[string]string{"README": "fresh\n"})
	if sha, err := gitea.NewClient(gt.URL, gt.Token, nil).BranchHead(context.Background(), fresh, "main"); err != nil || sha != head {
		t.Fatalf("BranchHead right after the first push = %q, %v", sha, err)
	}
	forge.ClientContract(t, forge.Target{URL: gt.URL, Token: gt.Token, Owner: gt.User,
		Seed: func(t *testing.T, name string) string {
			_, work := newRepo(t, name, false)
			head := commitAndPush(t, work, map[string]string{"README": name + "\n"})
			// Gitea takes a moment to process a first push: until then the
			// repository reads empty, and its branch API answers 500.
			if !testutil.Eventually(t, 30*time.Second, func() bool {
				var r struct{ Empty bool }
				return gt.API(context.Background(), "GET", "/repos/"+gt.User+"/"+name, nil, &r) == nil && !r.Empty
			}) {
				t.Fatalf("gitea never processed the first push to %s", name)
			}
			return head
		}})
}

// A matrix that publishes, a pull request from a fork, and a pull request
// closed while its job runs, against the real Gitea:
//   - each combination uploads its own file into one package version (no
//     409 from Gitea's generic registry);
//   - the fork's pull request builds and reports on the fork's head commit
//     but publishes nothing;
//   - closing a pull request cancels its running job, whose status ends.
func TestPublishForksAndClosedPullRequests(t *testing.T) {
	ctx := context.Background()
	u := startRaibid(t, filepath.Join(t.TempDir(), "up"), freeAddr(t))
	full, work := repo(t, u, "shared")
	// Public: another user forks it.
	if err := gt.API(ctx, "PATCH", "/repos/"+full, map[string]any{"private": false}, nil, true); err != nil {
		t.Fatal(err)
	}
	yml := "matrix:\n  arch: [x86_64, aarch64]\nsteps:\n  - name: build\n    run: mkdir -p out && echo $RAIBID_MATRIX_ARCH > out/app.txt\n" +
		"    artifacts: [out/app.txt]\n    publish: gitea\n"
	base := commitAndPush(t, work, map[string]string{".raibid.yml": yml})
	got := waitStatuses(t, u, full, base, 90*time.Second, func(s map[string]string) bool { return final(s["raibid-ci/push"]) })
	if got["raibid-ci/push"] != "success: all 2 matrix jobs passed" {
		t.Fatalf("publishing matrix: %v", got)
	}
	files := packageFiles(t, "shared", base)
	if !slices.Contains(files, "app-x86_64.txt") || !slices.Contains(files, "app-aarch64.txt") {
		t.Fatalf("package shared/%s holds %v", base, files)
	}

	// A fork's pull request.
	if err := gt.API(ctx, "POST", "/admin/users", map[string]any{"username": "mallory", "email": "mallory@forge.test",
		"password": "forge-suite-pw-2", "must_change_password": false}, nil, true); err != nil {
		t.Fatal(err)
	}
	mallory := forge.As(gt, "mallory", "forge-suite-pw-2")
	if err := mallory.API(ctx, "POST", "/repos/"+full+"/forks", map[string]any{}, nil, true); err != nil {
		t.Fatal(err)
	}
	forkWork := t.TempDir()
	git(t, forkWork, "clone", "-q", mallory.PushURL("mallory/shared"), ".")
	git(t, forkWork, "checkout", "-q", "-b", "feature")
	forkHead := commitAndPushBranch(t, forkWork, "feature", map[string]string{"fork.txt": "from a fork\n"})
	if err := mallory.API(ctx, "POST", "/repos/"+full+"/pulls", map[string]string{"head": "mallory:feature", "base": "main", "title": "from a fork"}, nil, true); err != nil {
		t.Fatal(err)
	}
	got = waitStatuses(t, u, full, forkHead, 90*time.Second, func(s map[string]string) bool { return final(s["raibid-ci/pr"]) })
	if got["raibid-ci/pr"] != "success: all 2 matrix jobs passed" {
		t.Fatalf("fork pull request: %v", got)
	}
	if files := packageFiles(t, "shared", forkHead); len(files) != 0 {
		t.Fatalf("a fork's pull request published %v", files)
	}

	// A pull request closed while its job runs.
	git(t, work, "checkout", "-q", "-b", "slow")
	slowHead := commitAndPushBranch(t, work, "slow", map[string]string{".raibid.yml": "steps:\n  - name: slow\n    run: sleep 60\n"})
	var pr struct{ Number int }
	if err := gt.API(ctx, "POST", "/repos/"+full+"/pulls", map[string]string{"head": "slow", "base": "main", "title": "slow"}, &pr, true); err != nil {
		t.Fatal(err)
	}
	if !testutil.Eventually(t, 60*time.Second, func() bool {
		for _, j := range u.jobsOf(full) {
			if j.Event == ci.EventPullRequest && j.Commit == slowHead && j.Status == ci.StatusRunning {
				return true
			}
		}
		return false
	}) {
		t.Fatal("the slow pull request's job did not start")
	}
	if err := gt.API(ctx, "PATCH", fmt.Sprintf("/repos/%s/pulls/%d", full, pr.Number), map[string]string{"state": "closed"}, nil, true); err != nil {
		t.Fatal(err)
	}
	got = waitStatuses(t, u, full, slowHead, 60*time.Second, func(s map[string]string) bool { return final(s["raibid-ci/pr"]) })
	if !strings.HasPrefix(got["raibid-ci/pr"], "error: cancelled") {
		t.Fatalf("closed pull request: %v", got)
	}
}

// packageFiles is the files of the generic package name at version in
// Gitea's registry (none when there is no such version).
func packageFiles(t *testing.T, name, version string) []string {
	t.Helper()
	var files []struct{ Name string }
	err := gt.API(context.Background(), "GET", "/packages/"+gt.User+"/generic/"+name+"/"+version+"/files", nil, &files, true)
	if forge.IsCode(err, 404) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		out = append(out, f.Name)
	}
	return out
}

// BenchmarkForgeStatuses: 20 pushes of a one-`echo` pipeline, one at a
// time, through the real Gitea to `raibid up` (2 agents). Prints push →
// Gitea shows `pending` and push → Gitea shows the final status, p50 and
// p90, and Gitea's own part of it: push → raibid's server has the webhook
// (the job's created_at; one machine, one clock).
func BenchmarkForgeStatuses(b *testing.B) {
	u := startRaibid(b, filepath.Join(b.TempDir(), "up"), freeAddr(b))
	full, work := repo(b, u, fmt.Sprintf("bench-%d", time.Now().UnixNano()))
	b.ResetTimer()
	for range b.N {
		var toPending, toFinal, toWebhook []time.Duration
		for i := range 20 {
			for name, body := range map[string]string{".raibid.yml": "steps:\n  - {name: ok, run: echo ok}\n", "n": fmt.Sprint(i)} {
				if err := os.WriteFile(filepath.Join(work, name), []byte(body), 0o644); err != nil {
					b.Fatal(err)
				}
			}
			git(b, work, "add", "-A")
			git(b, work, "commit", "-q", "-m", "bench")
			sha := git(b, work, "rev-parse", "HEAD")
			t0 := time.Now()
			git(b, work, "push", "-q", "origin", "HEAD:main")
			// Gitea's API is the clock here: polled every 5 ms, the time of
			// the first status seen and of the final one.
			var pending time.Duration
			st := ""
			if !testutil.EventuallyEvery(b, time.Minute, 5*time.Millisecond, func() bool {
				st = statuses(b, full, sha)["raibid-ci/push"]
				if pending == 0 && st != "" {
					pending = time.Since(t0)
				}
				return final(st)
			}) {
				b.Fatalf("push %d: status %q after a minute", i, st)
			}
			toFinal = append(toFinal, time.Since(t0))
			toPending = append(toPending, pending)
			for _, j := range u.jobsOf(full) {
				if j.Commit == sha {
					toWebhook = append(toWebhook, j.CreatedAt.Sub(t0))
				}
			}
		}
		b.ReportMetric(pct(toPending, 0.5), "pending-p50-ms")
		b.ReportMetric(pct(toPending, 0.9), "pending-p90-ms")
		b.ReportMetric(pct(toFinal, 0.5), "final-p50-ms")
		b.ReportMetric(pct(toFinal, 0.9), "final-p90-ms")
		b.ReportMetric(pct(toWebhook, 0.5), "gitea-delivery-p50-ms")
		b.ReportMetric(pct(toWebhook, 0.9), "gitea-delivery-p90-ms")
	}
}

func pct(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[int(float64(len(s)-1)*p)].Microseconds()) / 1000
}
