package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/raibid-labs/raibid-ci/internal/api"
	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/client"
	"github.com/raibid-labs/raibid-ci/internal/jobs"
	"github.com/raibid-labs/raibid-ci/internal/server"
	"github.com/raibid-labs/raibid-ci/internal/store"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
	"github.com/raibid-labs/raibid-ci/internal/tui"
)

// BenchmarkScale loads 10k, 100k and 1M jobs (RAIBID_SCALE overrides, e.g.
// "10000,100000") through the real submit path — concurrent, not HTTP, to be
// quick — with 200 heartbeating agents, and prints at each size: submit
// throughput, p50/p99 of the reads dashboards, pages and the CLI make (over
// HTTP), /events' connect time, the dashboard's first frame, and Redis bytes
// per queued and per finished job. `make bench-scale`.
func BenchmarkScale(b *testing.B) {
	sizes := []int{10000, 100000, 1000000}
	if v := os.Getenv("RAIBID_SCALE"); v != "" {
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			n, _ := strconv.Atoi(f)
			sizes = append(sizes, n)
		}
	}
	for b.Loop() {
		// The encodings raibid up and deploy/ configure.
		r := testutil.StartRedis(b, "--hash-max-listpack-value", "1024", "--zset-max-listpack-entries", "128")
		rdb := r.Client()
		ctx := context.Background()
		jb := testutil.NewJobs(rdb, 0)
		st, q := jb.Store, jb.Queue
		srv := server.New(server.Options{Store: st, Queue: q, Jobs: jb.Lifecycle, APIToken: "tok", ReaperInterval: -1, UIPublic: true})
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		sctx, stop := context.WithCancel(ctx)
		go srv.Serve(sctx, l)
		base := "http://" + l.Addr().String()
		for i := range 200 {
			st.AgentHeartbeat(ctx, store.Agent{Name: fmt.Sprintf("agent-%03d", i), Status: "idle"}, time.Hour)
		}
		used := func() int64 {
			info, _ := rdb.Info(ctx, "memory").Result()
			for _, l := range strings.Split(info, "\n") {
				if v, ok := strings.CutPrefix(strings.TrimSpace(l), "used_memory:"); ok {
					n, _ := strconv.ParseInt(v, 10, 64)
					return n
				}
			}
			return 0
		}
		// mainTable is the main keyspace table's own size: Redis resizes it
		// in steps (8 MB at a million keys), which would swamp a small
		// sample's delta, so the finished jobs' figure leaves it out.
		mainTable := func() int64 {
			stats, _ := rdb.Do(ctx, "MEMORY", "STATS").Result()
			db, _ := field(stats, "db.0")
			n, _ := field(db, "overhead.hashtable.main")
			v, _ := n.(int64)
			return v
		}
		submit := func(n int) (perSec float64, ids []string) {
			var mu sync.Mutex
			work := make(chan int, 64)
			var wg sync.WaitGroup
			start := time.Now()
			for range 16 {
				wg.Go(func() {
					for i := range work {
						j := &ci.Job{Repo: fmt.Sprintf("acme/repo-%03d", i%500), CloneURL: "http://gitea.local/acme/x.git",
							Branch: fmt.Sprintf("b%d", i%50), Commit: "0123456789abcdef0123456789abcdef01234567", Author: "ann", Message: "fix", Trigger: ci.TriggerPush}
						if i%100 == 50 { // one job in a hundred is a tag's
							j.Event, j.Tag, j.Branch = ci.EventTag, fmt.Sprintf("v%d", i), ""
						}
						id, _, err := jb.Submit(ctx, j, "")
						if err == nil && i%100 == 0 {
							mu.Lock()
							ids = append(ids, id)
							mu.Unlock()
						}
					}
				})
			}
			for i := range n {
				work <- i
			}
			close(work)
			wg.Wait()
			return float64(n) / time.Since(start).Seconds(), ids
		}
		get := func(path string) time.Duration {
			req, _ := http.NewRequest("GET", base+path, nil)
			req.Header.Set("Authorization", "Bearer tok")
			t0 := time.Now()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("GET %s: %d", path, resp.StatusCode)
			}
			return time.Since(t0)
		}
		loaded := 0
		var ingest10k float64
		for _, size := range sizes {
			before := used()
			rate, ids := submit(size - loaded)
			perQueued := float64(used()-before) / float64(size-loaded)
			loaded = size
			if ingest10k == 0 {
				ingest10k = rate
			}
			hashQueued, _ := rdb.MemoryUsage(ctx, "job:"+ids[len(ids)-1]).Result()
			// Finish a sample to measure a finished job's bytes.
			before, table := used(), mainTable()
			for _, id := range ids {
				jb.Transition(ctx, id, jobs.Change{From: []ci.Status{ci.StatusPending}, To: ci.StatusRunning, Agent: "agent-001"})
				jb.Transition(ctx, id, jobs.Change{From: []ci.Status{ci.StatusRunning}, To: ci.StatusFailed, Error: "step test failed with exit code 101",
					Steps: []ci.Step{{Name: "check", Status: ci.StatusSuccess}, {Name: "test", Status: ci.StatusFailed}}})
			}
			perFinished := float64(used()-before-(mainTable()-table))/float64(len(ids)) + perQueued
			short := ids[0][len(ids[0])-8:]
			hashFinished, _ := rdb.MemoryUsage(ctx, "job:"+ids[len(ids)-1]).Result()
			fmt.Printf("%d jobs: submit %.0f jobs/s (%.0f%% of the first size's); Redis %.0f B per queued job (its hash %d B; the rest: its stream entry and 5 index entries), ~%.0f B per finished job (its hash %d B)\n",
				size, rate, 100*rate/ingest10k, perQueued, hashQueued, perFinished, hashFinished)
			for _, path := range []string{"/jobs", "/jobs?status=failed", "/jobs?repo=acme/repo-007", "/jobs?branch=b7", "/jobs?event=tag", "/jobs?event=push", "/jobs/" + short,
				"/agents", "/queue", "/metrics", "/ui/"} {
				var d []time.Duration
				for range 50 {
					d = append(d, get(path))
				}
				sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
				fmt.Printf("   %-28s p50 %6.2f ms  p99 %6.2f ms\n", path, ms(d[len(d)/2]), ms(d[len(d)*99/100]))
			}
			// /events: from the request to the stream's headers (what a
			// dashboard or page waits for before it is live).
			var d []time.Duration
			for range 50 {
				req, _ := http.NewRequest("GET", base+"/events", nil)
				req.Header.Set("Authorization", "Bearer tok")
				req.Header.Set("Accept", "text/event-stream")
				rctx, cancel := context.WithCancel(ctx)
				t0 := time.Now()
				resp, err := http.DefaultClient.Do(req.WithContext(rctx))
				if err != nil || resp.StatusCode != 200 {
					b.Fatalf("GET /events: %v %v", err, resp)
				}
				d = append(d, time.Since(t0))
				cancel()
				resp.Body.Close()
			}
			sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
			fmt.Printf("   %-28s p50 %6.2f ms  p99 %6.2f ms\n", "/events (connect)", ms(d[len(d)/2]), ms(d[len(d)*99/100]))
			// The dashboard's first frame: a new model, until its jobs
			// list shows the newest job.
			d = d[:0]
			page, err := client.New(base, "tok").ListJobs(ctx, api.JobFilter{Limit: 1})
			if err != nil || len(page.Jobs) == 0 {
				b.Fatalf("GET /jobs: %v", err)
			}
			newest := page.Jobs[0].ID
			for range 10 {
				mctx, cancel := context.WithCancel(ctx)
				t0 := time.Now()
				tm := teatest.NewTestModel(b, tui.New(mctx, client.New(base, "tok"), tui.Options{Server: base}), teatest.WithInitialTermSize(160, 50))
				teatest.WaitFor(b, tm.Output(), func(out []byte) bool { return bytes.Contains(out, []byte(newest[len(newest)-8:])) },
					teatest.WithDuration(30*time.Second), teatest.WithCheckInterval(time.Millisecond))
				d = append(d, time.Since(t0))
				cancel()
				tm.Quit()
			}
			sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
			fmt.Printf("   %-28s p50 %6.2f ms  max %6.2f ms\n", "dashboard first frame", ms(d[len(d)/2]), ms(d[len(d)-1]))
		}
		stop()
	}
}

// field is key's value in a Redis map reply (RESP3 map, or RESP2's flat
// key-value list).
func field(reply any, key string) (any, bool) {
	switch r := reply.(type) {
	case map[any]any:
		v, ok := r[key]
		return v, ok
	case []any:
		for i := 0; i+1 < len(r); i += 2 {
			if r[i] == key {
				return r[i+1], true
			}
		}
	}
	return nil, false
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
