package server_test

import (
	"bytes"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/forge"
)

// BenchmarkWebhookIngest: signed Gitea push → 202, including the atomic
// submit (job hash, index, dedupe key, XADD) on a real redis-server, at 1, 8
// and 64 concurrent clients. Reports requests/s and p50/p99 latency.
func BenchmarkWebhookIngest(b *testing.B) {
	for _, mode := range []struct {
		name string
		args []string
	}{
		{"aof=off", nil},
		{"aof=everysec", []string{"--appendonly", "yes", "--appendfsync", "everysec"}},
		{"aof=always", []string{"--appendonly", "yes", "--appendfsync", "always"}},
	} {
		for _, clients := range []int{1, 8, 64} {
			b.Run(fmt.Sprintf("%s/clients=%d", mode.name, clients), func(b *testing.B) {
				e := start(&testing.T{}, mode.args...)
				benchIngest(b, e, clients)
			})
		}
	}
}

func benchIngest(b *testing.B, e *env, clients int) {
	push := fixture(b, "push.json")
	sig := forge.SignHex([]byte(secret), push)
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	client := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	lat := make([]time.Duration, b.N)
	var next int64 = -1
	var mu sync.Mutex
	var wg sync.WaitGroup
	b.ResetTimer()
	began := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				next++
				i := next
				mu.Unlock()
				if i >= int64(b.N) {
					return
				}
				req, _ := http.NewRequest("POST", e.url+"/webhook/gitea", bytes.NewReader(push))
				req.Header.Set("X-Gitea-Event", "push")
				req.Header.Set("X-Gitea-Signature", sig)
				req.Header.Set("X-Gitea-Delivery", fmt.Sprintf("bench-%d-%d", clients, i))
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				resp.Body.Close()
				lat[i] = time.Since(t0)
				if resp.StatusCode != 202 {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(began)
	b.StopTimer()
	reportLatency(b, lat, elapsed)
}

func reportLatency(b *testing.B, lat []time.Duration, elapsed time.Duration) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 {
		return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
