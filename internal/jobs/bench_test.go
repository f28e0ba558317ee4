package jobs_test

import (
	"context"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/jobs"
	"github.com/raibid-labs/raibid-ci/internal/queue"
	"github.com/raibid-labs/raibid-ci/internal/store"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// BenchmarkEnqueueToClaim: an idle agent is blocked in XREADGROUP; the
// time from the start of Submit to the agent holding the job, marked
// running, is the dispatch latency (polling queues take 0.5–5 s here).
func BenchmarkEnqueueToClaim(b *testing.B) {
	r := testutil.StartRedis(b)
	st := store.New(r.Client(), store.Options{})
	producer := jobs.New(st, queue.New(r.Client(), queue.Options{}), jobs.Options{})
	consumer := jobs.New(st, queue.New(r.Client(), queue.Options{}), jobs.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	if err := queue.New(r.Client(), queue.Options{}).EnsureGroup(ctx); err != nil {
		b.Fatal(err)
	}
	claimed := make(chan time.Time, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			run, err := consumer.Claim(ctx, "bench", 100*time.Millisecond, nil)
			if err != nil {
				if ctx.Err() == nil {
					b.Error(err)
				}
				return
			}
			if run != nil {
				now := time.Now()
				run.Finish(ctx, jobs.Verdict{Status: ci.StatusSuccess})
				claimed <- now
			}
		}
	}()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		testutil.WaitBlocked(b, r.Client(), 1) // the consumer is in XREADGROUP BLOCK again
		t0 := time.Now()
		if _, _, err := producer.Submit(ctx, push("bench/"+strconv.Itoa(i), "main"), ""); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, (<-claimed).Sub(t0))
	}
	b.StopTimer()
	cancel()
	<-done
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[int(float64(len(lat)-1)*0.99)].Microseconds())/1000, "p99-ms")
}
