package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// peakRSS samples a process's RSS every 50 ms until stop is closed and
// returns the peak in KiB.
func peakRSS(pid int, stop <-chan struct{}) <-chan int {
	out := make(chan int, 1)
	go func() {
		peak := 0
		for {
			peak = max(peak, vmRSS(pid))
			select {
			case <-stop:
				out <- peak
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return out
}

// BenchmarkLogVolume prints the log figures: agent RSS while a step writes
// 1 GB, step→stored lines/s and MB/s for 2,000,000 short lines, Redis
// memory per million stored lines, server RSS while three 250 MB logs are
// downloaded at once, and stored→client MB/s.
func BenchmarkLogVolume(b *testing.B) {
	for b.Loop() {
		r := testutil.StartRedis(b)
		env := []string{"RAIBID_REDIS_URL=" + r.URL(), "RAIBID_API_TOKEN=tok", "RAIBID_WEBHOOK_SECRET=sec"}
		addr := freeAddr(b)
		srv := startProc(b, env, "server", "--addr", addr, "--log-level", "warn")
		base := "http://" + addr
		agent := startProc(b, env, "agent", "--name", "bench", "--allow-local-clone", "--cache-dir", "off", "--log-level", "warn")
		if !testutil.EventuallyEvery(b, 10*time.Second, 50*time.Millisecond, func() bool { return idleAgents(base, "tok") == 1 }) {
			b.Fatal("the agent is not waiting for work")
		}
		idle := settledRSS(b, agent.cmd.Process.Pid)

		// 1 GB of 100-byte lines.
		dir, sha := testutil.GitRepo(b, map[string]string{".raibid.yml": "steps:\n  - name: flood\n    run: \"set +o pipefail; yes $(printf '%099d' 0) | head -c 1000000000\"\n"})
		stop := make(chan struct{})
		peak := peakRSS(agent.cmd.Process.Pid, stop)
		start := time.Now()
		id := push(b, base, "sec", pushPayload("bench/flood", dir, "main", sha))
		j := waitJob(b, base, "tok", id, 10*time.Minute, nil)
		took := time.Since(start)
		close(stop)
		p := <-peak
		fmt.Printf("1 GB step: job %s in %s (%.0f MB/s through the agent); agent RSS idle %.1f MiB, peak %.1f MiB (growth %.1f MiB)\n",
			j.Status, took.Round(time.Millisecond), 1000/took.Seconds(), float64(idle)/1024, float64(p)/1024, float64(p-idle)/1024)
		b.ReportMetric(float64(p-idle)/1024, "agent-growth-MiB/1GB")

		// 2,000,000 short lines, all stored.
		ctx := context.Background()
		before, _ := r.Client().Info(ctx, "memory").Result()
		dir2, sha2 := testutil.GitRepo(b, map[string]string{".raibid.yml": "steps:\n  - {name: many, run: 'seq 1 2000000'}\n"})
		start = time.Now()
		id2 := push(b, base, "sec", pushPayload("bench/many", dir2, "main", sha2))
		waitJob(b, base, "tok", id2, 10*time.Minute, nil)
		took = time.Since(start)
		after, _ := r.Client().Info(ctx, "memory").Result()
		perMillion := float64(usedMemory(after)-usedMemory(before)) / 2
		fmt.Printf("2,000,000 short lines: stored in %s = %.0f lines/s, %.1f MB/s; Redis memory %.1f MB per million lines (~7 bytes of text each)\n",
			took.Round(time.Millisecond), 2e6/took.Seconds(), 14.9/took.Seconds(), perMillion/1e6)
		b.ReportMetric(2e6/took.Seconds(), "lines/s")
		b.ReportMetric(perMillion/1e6, "redis-MB/Mline")

		// Three concurrent downloads of a 250 MB log.
		st := testutil.NewJobs(r.Client(), 0)
		big, _, err := st.Submit(ctx, &ci.Job{Repo: "bench/big", CloneURL: "http://gitea.local/bench/big.git", Branch: "main"}, "")
		if err != nil {
			b.Fatal(err)
		}
		line := strings.Repeat("z", 999)
		batch := make([]ci.LogLine, 1000)
		for i := range batch {
			batch[i] = ci.LogLine{Step: "s", Stream: "stdout", Text: line}
		}
		for i := range 250 {
			if _, err := st.Store.AppendLogBatch(ctx, big, "bench", int64(i+1), batch); err != nil {
				b.Fatal(err)
			}
		}
		sidle := vmRSS(srv.cmd.Process.Pid)
		stop = make(chan struct{})
		peak = peakRSS(srv.cmd.Process.Pid, stop)
		var got atomic.Int64
		var wg sync.WaitGroup
		start = time.Now()
		for range 3 {
			wg.Go(func() {
				req, _ := http.NewRequest("GET", base+"/jobs/"+big+"/logs", nil)
				req.Header.Set("Authorization", "Bearer tok")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				got.Add(n)
			})
		}
		wg.Wait()
		took = time.Since(start)
		close(stop)
		sp := <-peak
		fmt.Printf("3 downloads of a 250 MB log at once: %.0f MB in %s (%.0f MB/s); server RSS idle %.1f MiB, peak %.1f MiB (growth %.1f MiB per download)\n",
			float64(got.Load())/1e6, took.Round(time.Millisecond), float64(got.Load())/1e6/took.Seconds(),
			float64(sidle)/1024, float64(sp)/1024, float64(sp-sidle)/1024/3)
		b.ReportMetric(float64(sp-sidle)/1024/3, "server-growth-MiB/download")
	}
}

func usedMemory(info string) int64 {
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "used_memory:"); ok {
			var n int64
			fmt.Sscan(v, &n)
			return n
		}
	}
	return 0
}
