package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/forge"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// BenchmarkServerUnderAbuse holds `raibid server` under the load that once
// grew it to 1.15 GB: 500 clients that send one header byte every 5 s, and
// 40 clients that each send a 24 MiB webhook body with a bogus signature,
// slowly. It prints the server's peak RSS and how many slow connections the
// server still held after 10 s.
func BenchmarkServerUnderAbuse(b *testing.B) {
	addr, pid := startAbuseServer(b)
	idle := vmRSS(pid)
	for b.Loop() {
		peak := samplePeakRSS(pid)
		var slow []net.Conn
		for range 500 {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			io.WriteString(c, "POST /webhook/gitea HTTP/1.1\r\nHost: x\r\nX-Gi")
			slow = append(slow, c)
		}
		var bodies sync.WaitGroup
		codes := map[int]int{}
		var mu sync.Mutex
		for range 40 {
			bodies.Go(func() {
				code := sendBody(addr, "bogus")
				mu.Lock()
				codes[code]++
				mu.Unlock()
			})
		}
		// Trickle the slow clients' headers for 10 s: a byte each every 5 s.
		trickle := time.NewTicker(5 * time.Second)
		for range 2 {
			<-trickle.C
			for _, c := range slow {
				c.Write([]byte("t"))
			}
		}
		trickle.Stop()
		held := 0
		for _, c := range slow {
			c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
			if _, err := c.Read(make([]byte, 1)); err != nil && strings.Contains(err.Error(), "timeout") {
				held++
			}
			c.Close()
		}
		bodies.Wait()
		peakKiB := peak()
		b.ReportMetric(float64(idle)/1024, "idle-RSS-MiB")
		b.ReportMetric(float64(peakKiB)/1024, "peak-RSS-MiB")
		b.ReportMetric(float64(held), "slow-conns-held-after-10s")
		fmt.Printf("server RSS idle %.1f MiB, peak %.1f MiB under 500 slow + 40×24 MiB with a bad signature; slow connections still held after 10 s: %d/500; body answers %v\n",
			float64(idle)/1024, float64(peakKiB)/1024, held, codes)
	}
}

// sendBody sends one 24 MiB webhook body slowly (1 MiB every 100 ms):
// signature "none" sends no signature header, "bogus" a wrong one, "valid"
// the right one over a valid push padded to 24 MiB. It returns the answer's
// status code (0: no answer).
func sendBody(addr, signature string) int {
	body := []byte(`{"ref":"refs/heads/main","after":"` + strings.Repeat("a", 40) +
		`","repository":{"full_name":"acme/flood","clone_url":"http://gitea.local/acme/flood.git"},"pad":"`)
	body = append(body, strings.Repeat("x", 24<<20-len(body)-2)...)
	body = append(body, `"}`...)
	pr, pw := io.Pipe()
	go func() {
		// A slow sender: 1 MiB every 100 ms.
		pace := time.NewTicker(100 * time.Millisecond)
		defer pace.Stop()
		for off := 0; off < len(body); off += 1 << 20 {
			if _, err := pw.Write(body[off:min(off+1<<20, len(body))]); err != nil {
				return
			}
			<-pace.C
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", "http://"+addr+"/webhook/gitea", pr)
	req.ContentLength = int64(len(body))
	req.Header.Set("X-Gitea-Event", "push")
	req.Header.Set("X-Gitea-Delivery", fmt.Sprintf("flood-%d", time.Now().UnixNano()))
	switch signature {
	case "bogus":
		req.Header.Set("X-Gitea-Signature", strings.Repeat("0", 64))
	case "valid":
		req.Header.Set("X-Gitea-Signature", forge.SignHex([]byte("sec"), body))
	}
	resp, err := http.DefaultClient.Do(req)
	code := 0
	if err == nil {
		code = resp.StatusCode
		resp.Body.Close()
	}
	pr.CloseWithError(io.EOF)
	return code
}

// BenchmarkWebhookFloods sends 40 concurrent slow 24 MiB bodies to
// `raibid server` three times — unsigned, with a bad signature, validly
// signed — and prints for each the peak RSS and the RSS a minute after the
// flood, beside the idle baseline. Goals: peak ≤ 150 MB, and a minute later
// within 20 MiB of the baseline.
func BenchmarkWebhookFloods(b *testing.B) {
	addr, pid := startAbuseServer(b)
	for b.Loop() {
		idle := vmRSS(pid)
		for _, kind := range []string{"none", "bogus", "valid"} {
			peak := samplePeakRSS(pid)
			var wg sync.WaitGroup
			codes := map[int]int{}
			var mu sync.Mutex
			for range 40 {
				wg.Go(func() {
					code := sendBody(addr, kind)
					mu.Lock()
					codes[code]++
					mu.Unlock()
				})
			}
			wg.Wait()
			peakKiB := peak()
			time.Sleep(time.Minute)
			after := vmRSS(pid)
			name := map[string]string{"none": "unsigned", "bogus": "bad-signature", "valid": "valid"}[kind]
			b.ReportMetric(float64(peakKiB)/1024, name+"-peak-RSS-MiB")
			b.ReportMetric(float64(after)/1024, name+"-after-1m-RSS-MiB")
			fmt.Printf("%-13s flood (40×24 MiB): RSS idle %.1f MiB, peak %.1f MiB, a minute later %.1f MiB; answers %v\n",
				name, float64(idle)/1024, float64(peakKiB)/1024, float64(after)/1024, codes)
		}
	}
}

// samplePeakRSS samples pid's RSS every 50 ms until the returned function
// is called, which returns the peak in KiB.
func samplePeakRSS(pid int) (stop func() int64) {
	var peak atomic.Int64
	done := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			if v := int64(vmRSS(pid)); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	return func() int64 {
		close(done)
		sampler.Wait()
		return peak.Load()
	}
}

// startAbuseServer starts `raibid server` (secret "sec") on a real Redis and
// returns its address and pid.
func startAbuseServer(b *testing.B) (addr string, pid int) {
	r := testutil.StartRedis(b)
	addr = freeAddr(b)
	srv := startProc(b, []string{"RAIBID_API_TOKEN=tok", "RAIBID_WEBHOOK_SECRET=sec"}, "server",
		"--addr", addr, "--redis-url", r.URL(), "--log-level", "info")
	srv.waitFor("listening", 10*time.Second)
	return addr, srv.cmd.Process.Pid
}
