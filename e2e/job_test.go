package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// raibidJob runs `raibid job ...` against up, finding server and token in
// the data dir as a user on the same machine would.
func raibidJob(t *testing.T, up *upInstance, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"job", "--data-dir", up.dataDir}, args...)...)
	out, _ := cmd.CombinedOutput()
	return string(out), cmd.ProcessState.ExitCode()
}

func TestJobCommandAgainstRealServer(t *testing.T) {
	up := startUp(t, "--agents", "1")
	okDir, okSHA := testutil.GitRepo(t, map[string]string{".raibid.yml": "steps:\n  - {name: hi, run: 'echo hello-from-job'}\n"})
	failDir, _ := testutil.GitRepo(t, map[string]string{".raibid.yml": "steps:\n  - {name: no, run: 'echo about-to-fail; exit 7'}\n"})
	sleepDir, _ := testutil.GitRepo(t, map[string]string{".raibid.yml": "steps:\n  - {name: nap, run: 'sleep 30'}\n"})

	// run --wait follows the log; exit 0 on success, 1 on failure.
	out, code := raibidJob(t, up, "run", "--repo", "acme/ok", "--branch", "main", "--commit", okSHA, "--clone-url", okDir, "--wait")
	if code != 0 || !strings.Contains(out, "hello-from-job") {
		t.Fatalf("run --wait: exit %d\n%s", code, out)
	}
	out, code = raibidJob(t, up, "run", "--repo", "acme/fail", "--branch", "main", "--clone-url", failDir, "--wait")
	if code != 1 || !strings.Contains(out, "about-to-fail") || !strings.Contains(out, "ended failed") {
		t.Fatalf("run --wait of a failing job: exit %d\n%s", code, out)
	}

	// list: a table, and JSON.
	out, code = raibidJob(t, up, "list")
	if code != 0 || !strings.Contains(out, "STATUS") || !strings.Contains(out, "acme/ok") || !strings.Contains(out, "failed") {
		t.Fatalf("list: %d\n%s", code, out)
	}
	out, code = raibidJob(t, up, "list", "--status", "failed", "-o", "json")
	var page struct{ Jobs []ci.Job }
	if code != 0 || json.Unmarshal([]byte(out), &page) != nil || len(page.Jobs) != 1 || page.Jobs[0].Repo != "acme/fail" {
		t.Fatalf("list json: %d\n%s", code, out)
	}
	failedID := page.Jobs[0].ID

	out, code = raibidJob(t, up, "show", failedID)
	if code != 0 || !strings.Contains(out, "step no failed with exit code 7") || !strings.Contains(out, "STEP") {
		t.Fatalf("show: %d\n%s", code, out)
	}
	out, code = raibidJob(t, up, "show", failedID, "-o", "json")
	var j ci.Job
	if code != 0 || json.Unmarshal([]byte(out), &j) != nil || *j.Steps[0].ExitCode != 7 {
		t.Fatalf("show json: %d\n%s", code, out)
	}
	if out, code = raibidJob(t, up, "logs", failedID); code != 0 || !strings.Contains(out, "about-to-fail") {
		t.Fatalf("logs: %d\n%s", code, out)
	}
	if out, code = raibidJob(t, up, "logs", "-f", failedID); code != 1 || !strings.Contains(out, "about-to-fail") {
		t.Fatalf("logs -f of a failed job: %d\n%s", code, out)
	}

	// retry makes a new linked job; cancel stops a running one.
	out, code = raibidJob(t, up, "retry", failedID, "-o", "json")
	var re ci.Job
	if code != 0 || json.Unmarshal([]byte(out), &re) != nil || re.RetryOf != failedID || re.Attempt != 2 {
		t.Fatalf("retry: %d\n%s", code, out)
	}
	waitJob(t, up.url, up.token, re.ID, 30*time.Second, nil)
	out, code = raibidJob(t, up, "run", "--repo", "acme/sleep", "--branch", "main", "--clone-url", sleepDir)
	sleepID := strings.TrimSpace(out)
	if code != 0 || len(sleepID) != 20 {
		t.Fatalf("run: %d %q", code, out)
	}
	waitJob(t, up.url, up.token, sleepID, 30*time.Second, func(j *ci.Job) bool { return j.Status == ci.StatusRunning })
	if out, code = raibidJob(t, up, "cancel", sleepID); code != 0 || !strings.Contains(out, "cancelled") {
		t.Fatalf("cancel: %d\n%s", code, out)
	}

	// Errors: one line, exit 1 for a server refusal, 2 for usage.
	if out, code = raibidJob(t, up, "show", "00000000000000000000"); code != 1 || !strings.Contains(out, "job not found") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Fatalf("show missing: %d %q", code, out)
	}
	if out, code = raibidJob(t, up, "cancel", okSHA[:20]); code != 1 {
		t.Fatalf("cancel missing: %d %q", code, out)
	}
	if out, code = raibidJob(t, up, "run", "--repo", "acme/x"); code != 2 {
		t.Fatalf("run without branch: %d %q", code, out)
	}
	if out, code = raibidJob(t, up, "list", "-o", "yaml"); code != 2 {
		t.Fatalf("bad output: %d %q", code, out)
	}
}

// `raibid job logs --step`, -f, ?from=N, and a line longer than the agent's
// buffer coming back whole.
func TestJobLogsByStepFromLineAndLongLinesWhole(t *testing.T) {
	up := startUp(t, "--agents", "1")
	long := strings.Repeat("L", 100<<10)
	yml := "steps:\n  - {name: one, run: 'echo in-one'}\n  - name: two\n    run: |\n      echo in-two\n      printf '%s\\n' \"$(head -c 102400 /dev/zero | tr '\\0' L)\"\n"
	dir, sha := testutil.GitRepo(t, map[string]string{".raibid.yml": yml})
	id := push(t, up.url, up.secret, pushPayload("acme/steps", dir, "main", sha))
	waitJob(t, up.url, up.token, id, 30*time.Second, nil)
	for _, args := range [][]string{{"logs", id, "--step", "two"}, {"logs", id, "--step", "two", "-f"}} {
		out, code := raibidJob(t, up, args...)
		if code != 0 || strings.Contains(out, "in-one") || !strings.Contains(out, "in-two") {
			t.Fatalf("job %v: %d\n%.300s", args, code, out)
		}
		if !strings.Contains(out, "\n"+long+"\n") {
			t.Fatalf("job %v: the 100 KiB line is not whole", args)
		}
	}
	// Short ids, and the shell completion that offers them.
	if out, code := raibidJob(t, up, "show", id[len(id)-8:]); code != 0 || !strings.Contains(out, id) {
		t.Fatalf("job show by short id: %d\n%s", code, out)
	}
	comp, _ := exec.Command(binary, "__complete", "job", "show", "--data-dir", up.dataDir, "").Output()
	if !strings.Contains(string(comp), id[len(id)-8:]+"\tacme/steps main success") {
		t.Fatalf("completion of job ids:\n%s", comp)
	}
	all := apiGet(t, up.url, up.token, "/jobs/"+id+"/logs", nil)
	lines := strings.Split(all, "\n")
	from := apiGet(t, up.url, up.token, "/jobs/"+id+"/logs?from=3", nil)
	if !strings.HasPrefix(from, lines[2]+"\n") || len(from) >= len(all) {
		t.Fatalf("from=3 starts with %.40q, want line 3 %.40q", from, lines[2])
	}
}

// `raibid run [DIR]`: the current commit of a checkout, built on the running
// raibid up, its log followed, the exit status the job's.
func TestRunBuildsTheCheckoutsCommit(t *testing.T) {
	up := startUp(t, "--agents", "1")
	run := func(dir string, args ...string) (string, int) {
		cmd := exec.Command(binary, append([]string{"run", "--data-dir", up.dataDir, dir}, args...)...)
		out, _ := cmd.CombinedOutput()
		return string(out), cmd.ProcessState.ExitCode()
	}
	dir, sha := testutil.GitRepo(t, map[string]string{".raibid.yml": "steps:\n  - {name: hi, run: 'echo built $RAIBID_COMMIT on $RAIBID_BRANCH'}\n"})
	os.WriteFile(filepath.Join(dir, ".raibid.yml"), []byte("steps:\n  - {name: hi, run: 'exit 9'}\n"), 0o644) // not committed
	out, code := run(dir)
	if code != 0 || !strings.Contains(out, "built "+sha+" on main") || !strings.Contains(out, "uncommitted changes") {
		t.Fatalf("raibid run: exit %d\n%s", code, out)
	}
	// The job carries the commit's author and message, as a push's does.
	var list struct{ Jobs []ci.Job }
	apiGet(t, up.url, up.token, "/jobs?limit=1", &list)
	if len(list.Jobs) != 1 || list.Jobs[0].Author == "" || list.Jobs[0].Message == "" {
		t.Fatalf("the run's job has no author or message: %+v", list.Jobs)
	}
	failing, _ := testutil.GitRepo(t, map[string]string{".raibid.yml": "steps:\n  - {name: no, run: 'echo failing-step; exit 4'}\n"})
	if out, code := run(failing); code != 1 || !strings.Contains(out, "failing-step") {
		t.Fatalf("raibid run of a failing pipeline: exit %d\n%s", code, out)
	}
	if out, code := run(t.TempDir()); code != 2 || !strings.Contains(out, "not a git checkout") {
		t.Fatalf("raibid run outside a checkout: exit %d\n%s", code, out)
	}
}

// `raibid run` of a matrix follows the whole group: a line per member as it
// ends, the failed members' logs, and the worst verdict as its exit status.
func TestRunOfAMatrixFollowsTheGroup(t *testing.T) {
	up := startUp(t, "--agents", "2")
	dir, _ := testutil.GitRepo(t, map[string]string{".raibid.yml": "matrix:\n  n: [a, b, c]\nsteps:\n" +
		"  - {name: t, run: 'if [ $RAIBID_MATRIX_N = b ]; then printf \"\\033]0;pwned-title\\007\"; echo member-b-broke; exit 3; fi; echo member-$RAIBID_MATRIX_N-ok'}\n"})
	cmd := exec.Command(binary, "run", "--data-dir", up.dataDir, dir)
	out, _ := cmd.CombinedOutput()
	got := string(out)
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("exit %d, want 1 (member b failed):\n%s", code, got)
	}
	for _, want := range []string{"matrix n=a: success", "matrix n=b: failed", "matrix n=c: success", "member-b-broke\n", "2 of 3 passed"} {
		if n := strings.Count(got, want); n != 1 {
			t.Fatalf("%q appears %d times:\n%s", want, n, got)
		}
	}
	if strings.Contains(got, "\nmember-c-ok") {
		t.Fatalf("a passing member's log was printed:\n%s", got)
	}
	if strings.Contains(got, "\x1b]0;pwned-title") {
		t.Fatalf("a failed member's log drove the terminal:\n%q", got)
	}
	// The short group id printed is the one the other commands take.
	m := regexp.MustCompile(`matrix group ([0-9a-f]{8}):`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("no group id printed:\n%s", got)
	}
	listed, code := raibidJob(t, up, "list", "--group", m[1])
	if code != 0 || strings.Count(listed, "n=") != 3 {
		t.Fatalf("job list --group %s: exit %d\n%s", m[1], code, listed)
	}
	if out, code := raibidJob(t, up, "retry", "--group", m[1]); code != 0 || !strings.Contains(out, `"n": "b"`) {
		t.Fatalf("job retry --group %s: exit %d\n%s", m[1], code, out)
	}
}

// `raibid run --event` runs a checkout as a tag or a pull request, so a
// pipeline's when: can be tried before pushing.
func TestRunAsAnEvent(t *testing.T) {
	up := startUp(t, "--agents", "1")
	dir, _ := testutil.GitRepo(t, map[string]string{".raibid.yml": "steps:\n" +
		"  - {name: release, run: 'echo releasing $RAIBID_TAG', when: {event: tag, tag: \"v*\"}}\n" +
		"  - {name: review, run: 'echo reviewing for $RAIBID_BRANCH', when: {event: pull_request, branch: main}}\n"})
	run := func(args ...string) string {
		cmd := exec.Command(binary, append([]string{"run", "--data-dir", up.dataDir, dir}, args...)...)
		out, _ := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("raibid run %v: exit %d\n%s", args, code, out)
		}
		return string(out)
	}
	if out := run("--event", "tag", "--tag", "v1.2.3"); !strings.Contains(out, "\nreleasing v1.2.3\n") || strings.Contains(out, "\nreviewing") {
		t.Fatalf("as a tag:\n%s", out)
	}
	if out := run("--event", "pull_request"); !strings.Contains(out, "\nreviewing for ") || strings.Contains(out, "\nreleasing") {
		t.Fatalf("as a pull request:\n%s", out)
	}
	cmd := exec.Command(binary, "run", "--data-dir", up.dataDir, dir, "--event", "tag")
	out, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(string(out), "--event tag needs --tag") {
		t.Fatalf("--event tag without a tag: exit %d\n%s", code, out)
	}
	cmd = exec.Command(binary, "run", "--data-dir", up.dataDir, dir, "--event", "deploy")
	out, _ = cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code == 0 || !strings.Contains(string(out), `event "deploy" is not push, tag, pull_request, cron or manual`) {
		t.Fatalf("--event deploy: exit %d\n%s", code, out)
	}
}

// `raibid job logs` of steps that ran at once marks which step the lines
// that follow belong to, wherever their lines mixed.
func TestJobLogsOfParallelStepsSayWhoseLinesTheyAre(t *testing.T) {
	up := startUp(t, "--agents", "1", "--step-concurrency", "2")
	dir, sha := testutil.GitRepo(t, map[string]string{".raibid.yml": "steps:\n  - {name: prep, run: 'echo prep-1'}\n" +
		"  - {name: left, run: 'echo left-1; sleep 0.4; echo left-2; sleep 0.4; echo left-3', depends_on: [prep]}\n" +
		"  - {name: right, run: 'sleep 0.2; echo right-1; sleep 0.4; echo right-2', depends_on: [prep]}\n"})
	id := push(t, up.url, up.secret, pushPayload("acme/par", dir, "main", sha))
	if j := waitJob(t, up.url, up.token, id, time.Minute, nil); j.Status != ci.StatusSuccess {
		t.Fatalf("job %s %q", j.Status, j.Error)
	}
	for _, args := range [][]string{{"logs", id}, {"logs", "-f", id}} {
		out, code := raibidJob(t, up, args...)
		if code != 0 {
			t.Fatalf("job %v: exit %d\n%s", args, code, out)
		}
		// Every output line is under the step it came from: the last mark,
		// or the step's own "$ command" line when it began.
		owner := ""
		for _, line := range strings.Split(out, "\n") {
			switch {
			case strings.HasPrefix(line, "── ") && strings.HasSuffix(line, " ──"):
				owner = strings.Trim(line, "─ ")
			case strings.HasPrefix(line, "$ echo left"):
				owner = "left"
			case strings.HasPrefix(line, "$ sleep 0.2; echo right"):
				owner = "right"
			case strings.HasPrefix(line, "left-") && owner != "left", strings.HasPrefix(line, "right-") && owner != "right":
				t.Fatalf("job %v: %q printed under %q:\n%s", args, line, owner, out)
			}
		}
		if strings.Count(out, "── left ──")+strings.Count(out, "── right ──") < 2 {
			t.Fatalf("job %v: the steps' lines did not mix, or no marks:\n%s", args, out)
		}
	}
}

// `raibid job dead-letters` lists the jobs delivered too often and
// --requeue runs one's job again (GET /dead-letters, POST
// /dead-letters/{id}/requeue).
func TestDeadLettersAreReadableAndRequeued(t *testing.T) {
	up := startUp(t, "--agents", "1", "--max-deliveries", "2")
	dir, _ := testutil.GitRepo(t, map[string]string{"README": "x"})
	// A commit the repository does not have: every clone fails, the job is
	// retried, then dead-lettered.
	id := push(t, up.url, up.secret, pushPayload("acme/gone", dir, "main", strings.Repeat("ab", 20)))
	waitJob(t, up.url, up.token, id, time.Minute, func(j *ci.Job) bool { return j.Status == ci.StatusError })
	out, code := raibidJob(t, up, "dead-letters")
	if code != 0 || !strings.Contains(out, "LETTER") || !strings.Contains(out, id[len(id)-8:]) || !strings.Contains(out, "acme/gone") {
		t.Fatalf("job dead-letters: exit %d\n%s", code, out)
	}
	var list struct {
		DeadLetters []struct {
			ID, JobID  string
			Deliveries int
		} `json:"dead_letters"`
	}
	apiGet(t, up.url, up.token, "/dead-letters", &list)
	if len(list.DeadLetters) != 1 || list.DeadLetters[0].Deliveries != 2 {
		t.Fatalf("GET /dead-letters: %+v", list)
	}
	out, code = raibidJob(t, up, "dead-letters", "--requeue", list.DeadLetters[0].ID)
	if code != 0 || !strings.Contains(out, "requeued as job ") {
		t.Fatalf("--requeue: exit %d\n%s", code, out)
	}
	if out, _ := raibidJob(t, up, "dead-letters", "--requeue", list.DeadLetters[0].ID); !strings.Contains(out, "dead letter not found") {
		t.Fatalf("a letter requeued twice:\n%s", out)
	}
}
