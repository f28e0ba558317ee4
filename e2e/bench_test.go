package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func percentile(d []time.Duration, p float64) float64 {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return float64(s[int(float64(len(s)-1)*p)].Microseconds()) / 1000
}

// BenchmarkPushToRunning: 200 one-`echo` jobs pushed one at a time to an
// idle `raibid up` of 4 agents (then 200 back to back) whose Gitea answers every request in 0.5 s
// (commit statuses go there). Prints the webhook's answer time, push →
// running (an agent blocked in XREADGROUP claims the job and marks it
// running) and push → success from the job's own timestamps (one clock, no
// client in them), and the agent's phases, p50 of each.
func BenchmarkPushToRunning(b *testing.B) {
	forge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(500 * time.Millisecond):
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte("{}"))
	}))
	b.Cleanup(forge.Close)
	up := startUpEnv(b, []string{"RAIBID_GITEA_TOKEN=bench"}, "--agents", "4", "--log-level", "warn", "--gitea-url", forge.URL)
	dir, sha := testutil.GitRepo(b, map[string]string{".raibid.yml": "steps:\n  - {name: ok, run: echo ok}\n"})
	body := pushPayload("acme/fast", dir, "main", sha)
	const jobs = 200
	b.ResetTimer()
	for range b.N {
		// Pushes arrive on a schedule, one every 150 ms, as a team's do:
		// each comes to an idle raibid, its agent's work after the last
		// verdict (the next step's sandbox set up ahead) done. Then the
		// same back to back: the next push as soon as the last job is seen
		// done (waitJob polls every 50 ms).
		for _, mode := range []struct {
			suffix string
			every  time.Duration // 0: no schedule
		}{{"", 150 * time.Millisecond}, {"-back-to-back", 0}} {
			var arrivals <-chan time.Time
			if mode.every > 0 {
				tick := time.NewTicker(mode.every)
				defer tick.Stop()
				arrivals = tick.C
			}
			var running, success, hook []time.Duration
			phases := map[string][]time.Duration{}
			for range jobs {
				if arrivals != nil {
					<-arrivals
				}
				t0 := time.Now()
				id := push(b, up.url, up.secret, body)
				hook = append(hook, time.Since(t0))
				j := waitJob(b, up.url, up.token, id, 30*time.Second, func(j *ci.Job) bool { return j.Status.Final() && j.Phases != nil })
				if j.Status != ci.StatusSuccess {
					b.Fatalf("job %s %s %s", id, j.Status, j.Error)
				}
				running = append(running, j.StartedAt.Sub(j.CreatedAt))
				success = append(success, j.FinishedAt.Sub(j.CreatedAt))
				for k, ms := range j.Phases {
					phases[k] = append(phases[k], time.Duration(ms*float64(time.Millisecond)))
				}
			}
			b.ReportMetric(percentile(success, 0.5), "success-p50-ms"+mode.suffix)
			b.ReportMetric(percentile(phases["steps"], 0.5), "steps-p50-ms"+mode.suffix)
			b.ReportMetric(percentile(hook, 0.5), "webhook-p50-ms"+mode.suffix)
			b.ReportMetric(percentile(hook, 0.99), "webhook-p99-ms"+mode.suffix)
			b.ReportMetric(percentile(running, 0.5), "running-p50-ms"+mode.suffix)
			b.ReportMetric(percentile(running, 0.99), "running-p99-ms"+mode.suffix)
			if mode.suffix != "" {
				continue
			}
			for _, k := range []string{"workspace", "clone", "plan", "prepare", "overhead"} {
				if len(phases[k]) > 0 {
					b.ReportMetric(percentile(phases[k], 0.5), k+"-p50-ms")
				}
			}
		}
	}
}

// BenchmarkBurst: 80 jobs of `sleep 0.3` pushed at once onto 4 agents; the
// ideal is 4/0.3 = 13.3 jobs/s. Twice: first onto a raibid up that never
// built the repository (each agent's first job clones it and sets its
// workspace slot up: cold-%-of-ideal), then again (%-of-ideal), as a box
// that builds a team's repositories all day does.
func BenchmarkBurst(b *testing.B) {
	up := startUp(b, "--agents", "4", "--log-level", "warn")
	dir, sha := testutil.GitRepo(b, map[string]string{".raibid.yml": "steps:\n  - {name: nap, run: 'sleep 0.3'}\n"})
	body := pushPayload("acme/burst", dir, "main", sha)
	b.ResetTimer()
	for range b.N {
		cold := burst(b, up, body)
		warm := burst(b, up, body)
		b.ReportMetric(cold, "cold-%-of-ideal")
		b.ReportMetric(warm, "%-of-ideal")
	}
}

// burst pushes 80 jobs at once once the four agents wait for work, prints
// where each agent's time went, and returns the share of the ideal.
func burst(b *testing.B, up *upInstance, body []byte) float64 {
	const jobs = 80
	testutil.Eventually(b, 30*time.Second, func() bool { return idleAgents(up.url, up.token) == 4 })
	began := time.Now()
	ids := make([]string, jobs)
	for i := range ids {
		ids[i] = push(b, up.url, up.secret, body)
	}
	pushed := time.Since(began)
	var last time.Time
	byAgent := map[string][]*ci.Job{}
	phases := map[string][]time.Duration{}
	for _, id := range ids {
		j := waitJob(b, up.url, up.token, id, 2*time.Minute, func(j *ci.Job) bool { return j.Status.Final() && j.Phases != nil })
		if j.Status != ci.StatusSuccess {
			b.Fatalf("job %s %s", id, j.Status)
		}
		if j.FinishedAt.After(last) {
			last = *j.FinishedAt
		}
		byAgent[j.Agent] = append(byAgent[j.Agent], j)
		for k, ms := range j.Phases {
			phases[k] = append(phases[k], time.Duration(ms*float64(time.Millisecond)))
		}
	}
	// Where an agent's time went between two jobs: from one's verdict to
	// the next one running (the verdict's report, the claim).
	var gaps []time.Duration
	var lines []string
	for name, js := range byAgent {
		sort.Slice(js, func(a, b int) bool { return js[a].StartedAt.Before(*js[b].StartedAt) })
		var busy time.Duration
		for i, j := range js {
			busy += j.FinishedAt.Sub(*j.StartedAt)
			if i > 0 {
				gaps = append(gaps, j.StartedAt.Sub(*js[i-1].FinishedAt))
			}
		}
		lines = append(lines, fmt.Sprintf("  %s: %d jobs, first running after %.0f ms, running %.0f ms of %.0f; its first job's phases (ms) %v",
			name, len(js), ms(js[0].StartedAt.Sub(began)), ms(busy), ms(js[len(js)-1].FinishedAt.Sub(*js[0].StartedAt)), js[0].Phases))
	}
	sort.Strings(lines)
	share := 100 * float64(jobs) * 0.3 / 4 / last.Sub(began).Seconds()
	b.Logf("%d jobs: %.1f %% of ideal, %.2f jobs/s; pushes answered in %.0f ms; between two jobs of an agent p50 %.1f ms, max %.1f ms; steps p50 %.1f ms, p90 %.1f ms; overhead p50 %.2f ms\n%s",
		jobs, share, float64(jobs)/last.Sub(began).Seconds(), ms(pushed), percentile(gaps, 0.5), percentile(gaps, 1),
		percentile(phases["steps"], 0.5), percentile(phases["steps"], 0.9), percentile(phases["overhead"], 0.5), strings.Join(lines, "\n"))
	return share
}

// BenchmarkAgentColdStart: process start → the agent blocked waiting for
// work (its debug line), and its RSS once idle.
func BenchmarkAgentColdStart(b *testing.B) {
	r := testutil.StartRedis(b)
	var starts []time.Duration
	var rssKB int
	b.ResetTimer()
	for i := range b.N {
		cmd := exec.Command(binary, "agent", "--redis-url", r.URL(), "--log-level", "debug", "--name", fmt.Sprintf("cold-%d", i))
		stderr, _ := cmd.StderrPipe()
		t0 := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "waiting for work") {
				starts = append(starts, time.Since(t0))
				break
			}
		}
		if i == 0 {
			rssKB = settledRSS(b, cmd.Process.Pid)
		}
		cmd.Process.Kill()
		cmd.Wait()
	}
	b.StopTimer()
	b.ReportMetric(percentile(starts, 0.5), "start-p50-ms")
	b.ReportMetric(float64(rssKB)/1024, "idle-RSS-MiB")
}

// settledRSS is a process's RSS (KiB) once it stops changing: the same
// reading twice, 250 ms apart (an idle process's figure, not its start-up's).
func settledRSS(t testing.TB, pid int) int {
	t.Helper()
	return settled(t, 250*time.Millisecond, func() int { return vmRSS(pid) })
}

// settled is read's value once two readings every apart agree (at most
// 10 s of readings).
func settled(t testing.TB, every time.Duration, read func() int) int {
	t.Helper()
	last := -1
	testutil.EventuallyEvery(t, 10*time.Second, every, func() bool {
		now := read()
		same := now == last
		last = now
		return same
	})
	return last
}

func vmRSS(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			var kb int
			fmt.Sscan(strings.Fields(line)[1], &kb)
			return kb
		}
	}
	return 0
}
