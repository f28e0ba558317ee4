package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

func percentile(d []time.Duration, p float64) float64 {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return float64(s[int(float64(len(s)-1)*p)].Microseconds()) / 1000
}

// BenchmarkPushToRunning: webhook received → job running (an idle agent blocked in
// XREADGROUP claims it and marks it running), over 200 jobs whose pipeline is
// `true`, one at a time so an agent is always waiting. `raibid up`, 2 agents.
func BenchmarkPushToRunning(b *testing.B) {
	up := startUp(b, "--agents", "2", "--log-level", "warn")
	dir, sha := testutil.GitRepo(b, map[string]string{".raibid.yml": "steps:\n  - {name: ok, run: 'true'}\n"})
	body := pushPayload("acme/fast", dir, "main", sha)
	const jobs = 200
	b.ResetTimer()
	for range b.N {
		// The server stamps created_at as the webhook arrives, the agent
		// started_at as it marks the job running: one clock, no client in it.
		// The webhook's own answer time is measured apart: it includes
		// reading .raibid.yml at the commit (when: and matrix).
		var lat, hook []time.Duration
		for range jobs {
			t0 := time.Now()
			id := push(b, up.url, up.secret, body)
			hook = append(hook, time.Since(t0))
			j := waitJob(b, up.url, up.token, id, 30*time.Second, func(j *ci.Job) bool { return j.StartedAt != nil && j.Status.Final() })
			lat = append(lat, j.StartedAt.Sub(j.CreatedAt))
		}
		b.ReportMetric(percentile(lat, 0.5), "p50-ms")
		b.ReportMetric(percentile(lat, 0.99), "p99-ms")
		b.ReportMetric(percentile(hook, 0.5), "webhook-p50-ms")
		b.ReportMetric(percentile(hook, 0.99), "webhook-p99-ms")
	}
}

// BenchmarkBurst: 80 jobs of `sleep 0.3` pushed at once onto 4 agents; the
// ideal is 4/0.3 = 13.3 jobs/s.
func BenchmarkBurst(b *testing.B) {
	up := startUp(b, "--agents", "4", "--log-level", "warn")
	dir, sha := testutil.GitRepo(b, map[string]string{".raibid.yml": "steps:\n  - {name: nap, run: 'sleep 0.3'}\n"})
	body := pushPayload("acme/burst", dir, "main", sha)
	const jobs = 80
	b.ResetTimer()
	for range b.N {
		began := time.Now()
		ids := make([]string, jobs)
		for i := range ids {
			ids[i] = push(b, up.url, up.secret, body)
		}
		var last time.Time
		for _, id := range ids {
			j := waitJob(b, up.url, up.token, id, 2*time.Minute, nil)
			if j.Status != ci.StatusSuccess {
				b.Fatalf("job %s %s", id, j.Status)
			}
			if j.FinishedAt.After(last) {
				last = *j.FinishedAt
			}
		}
		b.ReportMetric(float64(jobs)/last.Sub(began).Seconds(), "jobs/s")
	}
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
			time.Sleep(2 * time.Second)
			rssKB = vmRSS(cmd.Process.Pid)
		}
		cmd.Process.Kill()
		cmd.Wait()
	}
	b.StopTimer()
	b.ReportMetric(percentile(starts, 0.5), "start-p50-ms")
	b.ReportMetric(float64(rssKB)/1024, "idle-RSS-MiB")
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
