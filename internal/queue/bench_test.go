package queue_test

import (
	"context"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/queue"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// BenchmarkEnqueueToClaim: an idle consumer is blocked in XREADGROUP; the
// time from the start of Enqueue to the consumer holding the delivery is the
// dispatch latency (polling queues take 0.5–5 s here).
func BenchmarkEnqueueToClaim(b *testing.B) {
	r := testutil.StartRedis(b)
	producer := queue.New(r.Client(), queue.Options{})
	consumer := queue.New(r.Client(), queue.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	if err := producer.EnsureGroup(ctx); err != nil {
		b.Fatal(err)
	}
	claimed := make(chan time.Time, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			d, err := consumer.Claim(ctx, "bench", 100*time.Millisecond)
			if err != nil {
				if ctx.Err() == nil {
					b.Error(err)
				}
				return
			}
			if d != nil {
				now := time.Now()
				consumer.Ack(ctx, d.ID)
				claimed <- now
			}
		}
	}()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		time.Sleep(200 * time.Microsecond) // let the consumer block again
		t0 := time.Now()
		if _, err := producer.Enqueue(ctx, map[string]string{"job_id": strconv.Itoa(i)}); err != nil {
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
