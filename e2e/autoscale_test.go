package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/queue"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// kedaAccurate is how many Jobs KEDA's ScaledJob controller creates in one
// polling interval with scalingStrategy "accurate", as KEDA documents it:
// maxScale is the queue length over the target (lag over lagCount "1",
// capped by maxReplicaCount); when maxScale plus the running Jobs would pass
// maxReplicaCount it fills up to the cap, else it creates maxScale minus the
// pending Jobs (pods not yet in pendingPodConditions, here "Ready").
func kedaAccurate(lag, lagCount, running, pending, maxReplicas int64) int64 {
	maxScale := min((lag+lagCount-1)/lagCount, maxReplicas)
	n := maxScale - pending
	if maxScale+running > maxReplicas {
		n = maxReplicas - running
	}
	return max(n, 0)
}

func TestKEDAAccurateFormulaAsDocumented(t *testing.T) {
	for _, c := range []struct{ lag, running, pending, want int64 }{
		{0, 0, 0, 0},  // nothing queued: scale to zero
		{1, 0, 0, 1},  // activation from zero at lag 1
		{20, 0, 0, 6}, // a burst: up to the cap at once
		{14, 6, 0, 0}, // at the cap: nothing more
		{3, 2, 2, 1},  // two pods starting already cover two entries
		{10, 4, 1, 2}, // fill the remaining room
		{2, 0, 2, 0},  // both entries are taken by starting pods
	} {
		if got := kedaAccurate(c.lag, 1, c.running, c.pending, 6); got != c.want {
			t.Errorf("lag %d running %d pending %d: %d jobs, want %d", c.lag, c.running, c.pending, got, c.want)
		}
	}
}

// simAgent is one "pod": a real `raibid agent --once` process.
type simAgent struct {
	name  string
	ready string // readiness file (the agent touches it once it claims a job)
	proc  *proc
}

func (a *simAgent) exited() bool {
	select {
	case <-a.proc.exited:
		return true
	default:
		return false
	}
}

func (a *simAgent) isReady() bool { _, err := os.Stat(a.ready); return err == nil }

// The agent ScaledJob simulated against real Redis: KEDA's accurate formula
// reads the real lag every tick and starts that many real `raibid agent
// --once` processes. A burst of 20 scales 0 → 6 and never above, each job
// runs exactly once, an agent killed with SIGKILL mid-job has its job
// reclaimed and finished by another, and the pool returns to 0.
func TestScaledJobSimulationAgainstRealRedis(t *testing.T) {
	const (
		maxReplicas = 6
		jobs        = 20
		tick        = 250 * time.Millisecond // pollingInterval, scaled down
	)
	r := testutil.StartRedis(t)
	addr := freeAddr(t)
	srv := startProc(t, []string{"RAIBID_API_TOKEN=tok", "RAIBID_WEBHOOK_SECRET=sec"}, "server",
		"--addr", addr, "--redis-url", r.URL(), "--lease", "2s", "--log-level", "info")
	srv.waitFor("listening", 10*time.Second)
	base := "http://" + addr
	q := queue.New(r.Client(), queue.Options{})

	work := t.TempDir()
	dir, _ := testutil.GitRepo(t, map[string]string{"README": "0"})
	var ids []string
	for i := range jobs {
		// Each run reports its commit in its log (a sandboxed step cannot
		// write outside its workspace).
		sha := testutil.Commit(t, dir, map[string]string{"README": fmt.Sprint(i), ".raibid.yml": "steps:\n  - {name: build, run: 'sleep 1.5; echo \"ran-commit $(git rev-parse HEAD)\"'}\n"}, fmt.Sprint("change ", i))
		ids = append(ids, push(t, base, "sec", pushPayload("acme/burst", dir, "main", sha)))
	}

	var agents []*simAgent
	started, peak, killed := 0, 0, ""
	var killedAgent string
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	allDone := func() bool {
		for _, id := range ids {
			if !getJob(t, base, "tok", id).Status.Final() {
				return false
			}
		}
		return true
	}
	// The simulated KEDA looks at the stream once a tick.
	poll := time.NewTicker(tick)
	defer poll.Stop()
	for {
		if ctx.Err() != nil {
			t.Fatalf("the pool did not drain: %d agents started, peak %d", started, peak)
		}
		var running, pending int64
		for _, a := range agents {
			if a.exited() {
				continue
			}
			running++
			if !a.isReady() {
				pending++
			}
		}
		peak = max(peak, int(running))
		if running > maxReplicas {
			t.Fatalf("%d agents at once, above maxReplicaCount %d", running, maxReplicas)
		}
		// Kill one agent that has a job running, once.
		if killed == "" {
			for _, a := range agents {
				if !a.exited() && a.isReady() {
					b, _ := os.ReadFile(a.ready)
					killed, killedAgent = strings.TrimSpace(string(b)), a.name
					// Killed inside the step, not between claim and clone.
					testutil.Eventually(t, 10*time.Second, func() bool {
						j := getJob(t, base, "tok", killed)
						return len(j.Steps) > 0 && j.Steps[0].Status == ci.StatusRunning
					})
					a.proc.signal(syscall.SIGKILL)
					<-a.proc.exited
					break
				}
			}
		}
		st, err := q.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n := kedaAccurate(st.Lag, 1, running, pending, maxReplicas)
		for range n {
			started++
			a := &simAgent{name: fmt.Sprintf("pod-%02d", started), ready: filepath.Join(work, fmt.Sprintf("ready-%02d", started))}
			a.proc = startProc(t, nil, "agent", "--once", "--wait", "1s", "--ready-file", a.ready, "--name", a.name,
				"--redis-url", r.URL(), "--lease", "2s", "--allow-local-clone", "--cache-dir", "off",
				"--workdir", filepath.Join(work, a.name), "--log-level", "warn")
			agents = append(agents, a)
		}
		if n == 0 && running == 0 && st.Lag == 0 && st.Pending == 0 && allDone() {
			break
		}
		<-poll.C
	}

	if peak != maxReplicas {
		t.Errorf("peak %d agents, want the burst to reach maxReplicaCount %d", peak, maxReplicas)
	}
	if killed == "" {
		t.Fatal("no agent was killed")
	}
	for _, id := range ids {
		j := getJob(t, base, "tok", id)
		if j.Status != ci.StatusSuccess {
			t.Errorf("job %s ended %s: %s", id, j.Status, j.Error)
		}
		if id == killed && (j.Attempt < 2 || j.Agent == killedAgent) {
			t.Errorf("the killed agent's job: attempt %d on %s, want a later attempt elsewhere", j.Attempt, j.Agent)
		}
	}
	var lines []string
	for _, id := range ids {
		for _, l := range strings.Split(apiGet(t, base, "tok", "/jobs/"+id+"/logs", nil), "\n") {
			if c, ok := strings.CutPrefix(l, "ran-commit "); ok {
				lines = append(lines, c)
			}
		}
	}
	sort.Strings(lines)
	for i := 1; i < len(lines); i++ {
		if lines[i] == lines[i-1] {
			t.Errorf("commit %s ran twice", lines[i])
		}
	}
	if len(lines) != jobs {
		t.Errorf("%d runs completed, want %d, each exactly once", len(lines), jobs)
	}
	t.Logf("%d agent pods started for %d jobs (one killed), peak %d", started, jobs, peak)
}
