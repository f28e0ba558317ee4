package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// BenchmarkSoak runs `raibid up` with 2 agents and a steady trickle of
// trivial jobs for RAIBID_SOAK (default 30m; `make soak`), sampling the RSS
// of raibid and of its Redis every 10 s. It prints the growth after a
// warm-up (the first fifth) and, with jobs and logs kept only a minute,
// whether Redis's memory comes back to its live set once they expire.
func BenchmarkSoak(b *testing.B) {
	dur := 30 * time.Minute
	if v := os.Getenv("RAIBID_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatal(err)
		}
		dur = d
	}
	for b.Loop() {
		up := startUp(b, "--agents", "2", "--job-retention", "1m", "--log-retention", "1m", "--log-level", "warn")
		m := redisPortInBanner.FindStringSubmatch(up.output())
		pw, _ := os.ReadFile(filepath.Join(up.dataDir, "redis", "password"))
		rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + m[1], Password: strings.TrimSpace(string(pw))})
		defer rdb.Close()
		ctx := context.Background()
		info, _ := rdb.InfoMap(ctx, "server").Result()
		var redisPID int
		fmt.Sscan(info["Server"]["process_id"], &redisPID)
		used := func() int64 {
			mem, _ := rdb.InfoMap(ctx, "memory").Result()
			var n int64
			fmt.Sscan(mem["Memory"]["used_memory"], &n)
			return n
		}
		startMem := used()
		dir, _ := testutil.GitRepo(b, map[string]string{".raibid.yml": "steps:\n  - {name: ok, run: 'echo soak'}\n"})
		var samples []struct{ raibid, redis int }
		end := time.Now().Add(dur)
		jobs := 0
		nextSample := time.Now()
		// Pushes arrive on a schedule: one every 500 ms.
		arrivals := time.NewTicker(500 * time.Millisecond)
		defer arrivals.Stop()
		for time.Now().Before(end) {
			sha := testutil.Commit(b, dir, map[string]string{"n": fmt.Sprint(jobs)}, "soak")
			push(b, up.url, up.secret, pushPayload("acme/soak", dir, "main", sha))
			jobs++
			if time.Now().After(nextSample) {
				samples = append(samples, struct{ raibid, redis int }{vmRSS(up.cmd.Process.Pid), vmRSS(redisPID)})
				nextSample = nextSample.Add(10 * time.Second)
			}
			<-arrivals.C
		}
		warm := samples[len(samples)/5]
		last := samples[len(samples)-1]
		peak := warm
		for _, s := range samples[len(samples)/5:] {
			peak.raibid, peak.redis = max(peak.raibid, s.raibid), max(peak.redis, s.redis)
		}
		fmt.Printf("soak %s, %d jobs: raibid RSS %.1f MiB after warm-up → %.1f MiB at the end (peak %.1f, growth %.1f%%); redis-server %.1f → %.1f MiB\n",
			dur, jobs, float64(warm.raibid)/1024, float64(last.raibid)/1024, float64(peak.raibid)/1024,
			100*float64(last.raibid-warm.raibid)/float64(warm.raibid), float64(warm.redis)/1024, float64(last.redis)/1024)
		// Everything finished expires a minute after it ended; the server's
		// expiry runs each minute.
		loaded := used()
		jobKeys := func() int {
			n := 0
			for iter := rdb.Scan(ctx, 0, "job:*", 1000).Iterator(); iter.Next(ctx); {
				n++
			}
			return n
		}
		if !testutil.EventuallyEvery(b, 4*time.Minute, 5*time.Second, func() bool { return jobKeys() == 0 }) {
			b.Fatalf("%d job keys left four minutes after the last job", jobKeys())
		}
		after := used()
		keys, _ := rdb.DBSize(ctx).Result()
		// What stays is the live set: each webhook's delivery id, kept a
		// day so a redelivery is not queued twice.
		var deliveries int
		iter := rdb.Scan(ctx, 0, "delivery:*", 1000).Iterator()
		for iter.Next(ctx) {
			deliveries++
		}
		fmt.Printf("Redis used_memory: %.1f MiB at start, %.1f MiB with %d jobs' data, %.1f MiB once they expired (%d keys left, %d of them webhook delivery ids kept 24 h)\n",
			float64(startMem)/(1<<20), float64(loaded)/(1<<20), jobs, float64(after)/(1<<20), keys, deliveries)
		b.ReportMetric(100*float64(last.raibid-warm.raibid)/float64(warm.raibid), "raibid-growth-%")
	}
}
