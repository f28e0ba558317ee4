package runner_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/pipeline"
	"github.com/raibid-labs/raibid-ci/internal/runner"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// lines is a Sink that keeps every line it is given.
type lines struct {
	mu  sync.Mutex
	all [][3]string // step, stream, text
}

func (l *lines) Line(step, stream, text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, [3]string{step, stream, text})
}

// text is the lines as "step|stream|text".
func (l *lines) text() string {
	return l.join(func(x [3]string) string { return x[0] + "|" + x[1] + "|" + x[2] })
}

// byStep is the lines as a log reads: "step: text".
func (l *lines) byStep() string {
	return l.join(func(x [3]string) string { return x[0] + ": " + x[2] })
}

func (l *lines) join(format func([3]string) string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, len(l.all))
	for i, x := range l.all {
		out[i] = format(x)
	}
	return strings.Join(out, "\n")
}

func run(t *testing.T, ctx context.Context, p *pipeline.Pipeline, secrets ...string) (runner.Result, *lines) {
	t.Helper()
	out := &lines{}
	res := runner.Execute(ctx, p, runner.Options{Dir: t.TempDir(), Sink: out, Masker: runner.NewMasker(secrets...),
		Env: []string{"RAIBID_JOB_ID=j1"}, KillGrace: 500 * time.Millisecond})
	return res, out
}

func steps(specs ...pipeline.Step) *pipeline.Pipeline {
	return &pipeline.Pipeline{Steps: specs, Timeout: time.Minute}
}

func TestRunSuccessFailureAndAllowFailure(t *testing.T) {
	res, out := run(t, context.Background(), steps(
		pipeline.Step{Name: "hello", Run: "echo hello; echo oops >&2"},
		pipeline.Step{Name: "flaky", Run: "exit 3", AllowFailure: true},
		pipeline.Step{Name: "env", Run: `echo "job=$RAIBID_JOB_ID x=$X"`, Env: map[string]string{"X": "1"}},
		pipeline.Step{Name: "broken", Run: "false"},
		pipeline.Step{Name: "never", Run: "echo never"},
	))
	if res.Status != ci.StatusFailed || !strings.Contains(res.Error, "step broken failed with exit code 1") {
		t.Fatalf("result %+v", res)
	}
	want := []ci.Status{ci.StatusSuccess, ci.StatusFailed, ci.StatusSuccess, ci.StatusFailed, ci.StatusSkipped}
	for i, s := range res.Steps {
		if s.Status != want[i] {
			t.Errorf("step %s = %s, want %s", s.Name, s.Status, want[i])
		}
	}
	if *res.Steps[1].ExitCode != 3 || res.Steps[0].FinishedAt == nil || res.Steps[4].StartedAt != nil {
		t.Fatalf("steps %+v", res.Steps)
	}
	txt := out.text()
	for _, w := range []string{"hello|stdout|hello", "hello|stderr|oops", "env|stdout|job=j1 x=1"} {
		if !strings.Contains(txt, w) {
			t.Errorf("log lacks %q:\n%s", w, txt)
		}
	}
	if strings.Contains(txt, "never|") {
		t.Errorf("skipped step ran:\n%s", txt)
	}
}

func TestRunMasksSecretsAndHidesRaibidEnv(t *testing.T) {
	t.Setenv("RAIBID_GITEA_TOKEN", "agent-only-token")
	res, out := run(t, context.Background(), steps(pipeline.Step{Name: "leak",
		Run: `echo "token hunter2-secret"; printf hunter2-secret | base64; echo "gitea=${RAIBID_GITEA_TOKEN:-unset}"`}), "hunter2-secret")
	if res.Status != ci.StatusSuccess {
		t.Fatalf("%+v", res)
	}
	txt := out.text()
	if strings.Contains(txt, "hunter2") || strings.Contains(txt, "aHVudGVyMi1zZWNyZXQ") || !strings.Contains(txt, "token ****") {
		t.Fatalf("secret visible:\n%s", txt)
	}
	if !strings.Contains(txt, "gitea=unset") {
		t.Fatalf("agent's RAIBID_* reached the step:\n%s", txt)
	}
}

func TestStepTimeoutIsError(t *testing.T) {
	res, _ := run(t, context.Background(), steps(pipeline.Step{Name: "slow", Run: "sleep 30", Timeout: 200 * time.Millisecond}))
	if res.Status != ci.StatusError || !strings.Contains(res.Error, "timed out") || res.Steps[0].Status != ci.StatusError {
		t.Fatalf("%+v", res)
	}
	if res.Steps[0].DurationMS > 5000 {
		t.Fatalf("timeout took %d ms", res.Steps[0].DurationMS)
	}
}

func TestPipelineTimeout(t *testing.T) {
	p := steps(pipeline.Step{Name: "a", Run: "true"}, pipeline.Step{Name: "b", Run: "sleep 30"})
	p.Timeout = 300 * time.Millisecond
	res, _ := run(t, context.Background(), p)
	if res.Status != ci.StatusError || !strings.Contains(res.Error, "pipeline timed out") {
		t.Fatalf("%+v", res)
	}
}

// pgrepMarker counts processes whose command line holds marker.
func pgrepMarker(t *testing.T, marker string) int {
	t.Helper()
	out, _ := exec.Command("pgrep", "-f", marker).Output()
	return len(strings.Fields(string(out)))
}

// Cancelling kills the whole process group: the shell, its children and a
// grandchild that ignores SIGTERM, within the grace period.
func TestCancelKillsProcessGroup(t *testing.T) {
	marker := fmt.Sprintf("raibid-cancel-%d", os.Getpid())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan runner.Result, 1)
	go func() {
		r, _ := run(t, ctx, steps(pipeline.Step{Name: "stubborn",
			Run: fmt.Sprintf(`(trap '' TERM; exec -a %s-a sleep 60) & exec -a %s-b sleep 60`, marker, marker)}))
		done <- r
	}()
	testutil.Eventually(t, 5*time.Second, func() bool { return pgrepMarker(t, marker) >= 2 })
	if n := pgrepMarker(t, marker); n < 2 {
		t.Fatalf("step processes not started (%d)", n)
	}
	began := time.Now()
	cancel()
	res := <-done
	if res.Status != ci.StatusCancelled || res.Steps[0].Status != ci.StatusCancelled {
		t.Fatalf("%+v", res)
	}
	if took := time.Since(began); took > 3*time.Second {
		t.Fatalf("cancel took %s", took)
	}
	if n := pgrepMarker(t, marker); n != 0 {
		t.Fatalf("%d step processes survived the cancel", n)
	}
}

// A step that leaves a background process behind does not leak it.
func TestStepLeftoversAreKilled(t *testing.T) {
	marker := fmt.Sprintf("raibid-leftover-%d", os.Getpid())
	res, _ := run(t, context.Background(), steps(pipeline.Step{Name: "bg",
		Run: fmt.Sprintf(`(exec -a %s sleep 60) & echo started`, marker)}))
	if res.Status != ci.StatusSuccess {
		t.Fatalf("%+v", res)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return pgrepMarker(t, marker) == 0 })
	if n := pgrepMarker(t, marker); n != 0 {
		t.Fatalf("%d background processes outlived their step", n)
	}
}

// allow_failure covers what happens after a step's command too (its
// artifacts, publishing): the step reads failed, the job and the steps
// after it go on; without it the job fails.
func TestAllowFailureCoversArtifactErrors(t *testing.T) {
	for _, allow := range []bool{true, false} {
		out := &lines{}
		p := steps(pipeline.Step{Name: "pack", Run: "true", AllowFailure: allow}, pipeline.Step{Name: "after", Run: "echo after-ran"})
		res := runner.Execute(context.Background(), p, runner.Options{Dir: t.TempDir(), Sink: out, Masker: runner.NewMasker(),
			AfterStep: func(s pipeline.Step) error {
				if s.Name == "pack" {
					return errors.New("publish: 409 conflict")
				}
				return nil
			}})
		want, after := ci.StatusFailed, ci.StatusSkipped
		if allow {
			want, after = ci.StatusSuccess, ci.StatusSuccess
		}
		if res.Status != want || res.Steps[0].Status != ci.StatusFailed || res.Steps[1].Status != after {
			t.Fatalf("allow_failure %v: job %s, steps %s %s (%s)", allow, res.Status, res.Steps[0].Status, res.Steps[1].Status, res.Error)
		}
	}
}
