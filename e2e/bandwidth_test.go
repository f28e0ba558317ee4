package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// byteCounter counts what the dashboard writes to its terminal.
type byteCounter struct {
	mu  sync.Mutex
	n   int
	buf bytes.Buffer
}

func (c *byteCounter) add(b []byte) {
	c.mu.Lock()
	c.n += len(b)
	if c.buf.Len() < 1<<20 {
		c.buf.Write(b)
	}
	c.mu.Unlock()
}

func (c *byteCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func (c *byteCounter) has(s string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Contains(c.buf.Bytes(), []byte(s))
}

// BenchmarkTUIBandwidth runs `raibid tui` in a 120×40 pseudo-terminal and
// counts the bytes it writes: the first full frame, an idle minute, and a busy
// minute (10 job updates a second while the job view follows a log that
// grows by 10 lines a second). RAIBID_BENCH_SECONDS shortens the minutes.
// Budget from a 2G link (~150 kbit/s): first frame ≤ 8 KB, idle ≤ 200 B/s,
// busy ≤ 4 KB/s.
func BenchmarkTUIBandwidth(b *testing.B) {
	secs := 60
	if v, err := strconv.Atoi(os.Getenv("RAIBID_BENCH_SECONDS")); err == nil && v > 0 {
		secs = v
	}
	period := time.Duration(secs) * time.Second
	up := startUp(b, "--agents", "2", "--log-level", "warn")
	fast, fastSHA := testutil.GitRepo(b, map[string]string{".raibid.yml": "steps:\n  - {name: ok, run: 'true'}\n"})
	ticker, tickerSHA := testutil.GitRepo(b, map[string]string{".raibid.yml": "steps:\n  - name: count\n    run: for i in $(seq 1 100000); do echo tick-$i; sleep 0.1; done\n"})
	for range 5 { // some history in the table
		id := push(b, up.url, up.secret, pushPayload("acme/fast", fast, "main", fastSHA))
		waitJob(b, up.url, up.token, id, 30*time.Second, nil)
	}

	cmd := exec.Command(binary, "tui", "--data-dir", up.dataDir)
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: 120, Rows: 40})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait(); f.Close() }()
	c := &byteCounter{}
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := f.Read(buf)
			c.add(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	if !testutil.EventuallyEvery(b, 15*time.Second, 20*time.Millisecond, func() bool {
		return c.has("live") && c.has("cpu ") && c.has("acme/fast")
	}) {
		b.Fatalf("no first frame; %d bytes", c.count())
	}
	first := settled(b, 100*time.Millisecond, c.count) // the frame written whole

	b.ResetTimer()
	idleStart := c.count()
	time.Sleep(period)
	idle := float64(c.count()-idleStart) / period.Seconds()

	tickerID := push(b, up.url, up.secret, pushPayload("acme/ticker", ticker, "main", tickerSHA))
	waitJob(b, up.url, up.token, tickerID, 30*time.Second, func(j *ci.Job) bool { return j.Status == ci.StatusRunning })
	if !testutil.EventuallyEvery(b, 10*time.Second, 20*time.Millisecond, func() bool { return c.has("acme/ticker") }) {
		b.Fatal("the running ticker job is not in the table")
	}
	f.Write([]byte("g\r")) // the newest job: the ticker; open it and follow its log
	busyStart := c.count()
	// Ten job updates a second: a push every 100 ms.
	arrivals := time.NewTicker(100 * time.Millisecond)
	defer arrivals.Stop()
	for stop := time.Now().Add(period); time.Now().Before(stop); <-arrivals.C {
		push(b, up.url, up.secret, pushPayload("acme/fast", fast, "main", fastSHA))
	}
	busy := float64(c.count()-busyStart) / period.Seconds()
	b.StopTimer()
	if !c.has("tick-") {
		b.Fatal("the job view never showed the followed log")
	}
	b.ReportMetric(float64(first), "first-frame-B")
	b.ReportMetric(idle, "idle-B/s")
	b.ReportMetric(busy, "busy-B/s")
}
