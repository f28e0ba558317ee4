package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/jobs"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// newChromium starts Debian's headless Chromium with the flags this machine
// needs (no sandbox as root; no background connections, which the closed
// network refuses) and a fresh profile.
func newChromium(t testing.TB) context.Context {
	t.Helper()
	testutil.RequireTool(t, "chromium")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath("chromium"),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(360, 740),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first Run starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(360, 740)); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// within runs steps with a deadline.
func within(t testing.TB, ctx context.Context, d time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := chromedp.Do(c, steps...); err != nil {
		t.Fatal(err)
	}
}

// js evaluates an expression.
func js[T any](t testing.TB, ctx context.Context, expr string) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// waitJS waits until a JavaScript expression is true.
func waitJS(t testing.TB, ctx context.Context, what, expr string, d time.Duration) {
	t.Helper()
	if !testutil.Eventually(t, d, func() bool { return js[bool](t, ctx, expr) }) {
		html := js[string](t, ctx, "document.body ? document.body.innerText.slice(0, 2000) : ''")
		t.Fatalf("waited %s for %s; the page shows:\n%s", d, what, html)
	}
}

// artifactDir is where tests leave files for people (screenshots):
// $RAIBID_TEST_ARTIFACTS, else artifacts/ at the repository root.
func artifactDir(t testing.TB) string {
	dir := os.Getenv("RAIBID_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A commit status link opened in a real browser: log in, watch the live log,
// cancel, and the job list refreshing itself.
func TestJobPageInHeadlessChromium(t *testing.T) {
	up := startUp(t, "--agents", "1")
	ctx := newChromium(t)

	gate := newGate(t)
	dir, sha := testutil.GitRepo(t, map[string]string{".raibid.yml": fmt.Sprintf(
		"steps:\n  - name: work\n    run: 'printf \"\\033[32mfirst-line\\033[0m\\n\"; %s; echo appended-after-load; sleep 120'\n", gate.wait)})
	const message = `<img src=x onerror="document.title='pwned'"><b>bold</b> & fix`
	var payload map[string]any
	json.Unmarshal(pushPayload("acme/web", dir, "main", sha), &payload)
	payload["head_commit"].(map[string]any)["message"] = message
	body, _ := json.Marshal(payload)
	id := push(t, up.url, up.secret, body)
	waitJob(t, up.url, up.token, id, 30*time.Second, func(j *ci.Job) bool { return j.Status == ci.StatusRunning })
	if !testutil.Eventually(t, 20*time.Second, func() bool {
		return strings.Contains(apiGet(t, up.url, up.token, "/jobs/"+id+"/logs", nil), "first-line")
	}) {
		t.Fatal("the job never logged its first line")
	}

	// The page needs the token: the browser is sent to the login form.
	within(t, ctx, 20*time.Second, chromedp.Navigate(up.url+"/ui/jobs/"+id), chromedp.WaitVisible("#token"))
	within(t, ctx, 20*time.Second,
		chromedp.SendKeys("#token", up.token),
		chromedp.Submit("#token"),
		chromedp.WaitVisible("#log"))
	if loc := js[string](t, ctx, "location.pathname"); loc != "/ui/jobs/"+id {
		t.Fatalf("after login the browser is at %s", loc)
	}

	// The commit message is text, not markup.
	if got := js[string](t, ctx, "document.querySelector('.message').textContent"); got != message {
		t.Fatalf("message renders as %q", got)
	}
	if n := js[int](t, ctx, "document.querySelectorAll('.message *').length"); n != 0 {
		t.Fatalf("the message became %d elements", n)
	}
	if strings.Contains(js[string](t, ctx, "document.title"), "pwned") {
		t.Fatal("the message's script ran")
	}
	if js[string](t, ctx, "getComputedStyle(document.querySelector('#log .f2')).color") == "" {
		t.Fatal("the ANSI green of the first line is not rendered")
	}

	// A line written after the page loaded appears without a reload.
	js[bool](t, ctx, "window.loadedOnce = true")
	// (The step's command line is logged too; the line itself is its own row.)
	const appended = "Array.from(document.querySelectorAll('#log .l .t')).some(d => d.textContent === 'appended-after-load')"
	if js[bool](t, ctx, appended) {
		t.Fatal("the line is there before it was written")
	}
	gate.open()
	waitJS(t, ctx, "the appended line", appended, 15*time.Second)
	if !js[bool](t, ctx, "window.loadedOnce === true") {
		t.Fatal("the page reloaded to show the line; it should have been appended")
	}

	// A phone-sized screenshot, kept for people to look at.
	c, cancel := context.WithTimeout(ctx, 20*time.Second)
	shot, err := chromedp.Run(c, chromedp.CaptureScreenshot())
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(shot))
	if err != nil || cfg.Width != 360 || cfg.Height != 740 {
		t.Fatalf("screenshot %dx%d, %v; want 360x740", cfg.Width, cfg.Height, err)
	}
	if js[int](t, ctx, "document.documentElement.scrollWidth") > 360 {
		t.Errorf("the page is wider than a 360 px screen: %d", js[int](t, ctx, "document.documentElement.scrollWidth"))
	}
	shotPath := filepath.Join(artifactDir(t), "job-page-360x740.png")
	if err := os.WriteFile(shotPath, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shotPath)

	// Cancel: the status changes on the page and on the server.
	within(t, ctx, 20*time.Second, chromedp.Click("#cancel"))
	waitJS(t, ctx, "the cancelled badge", "(document.querySelector('#summary .badge')||{}).textContent === 'cancelled'", 15*time.Second)
	if j := getJob(t, up.url, up.token, id); j.Status != ci.StatusCancelled {
		t.Fatalf("server says %s", j.Status)
	}
	// After the end the page shows the step's last state, not "running".
	waitJS(t, ctx, "the step's final state", "!document.querySelector('#summary .steps .s-running')", 10*time.Second)

	// A failed job: its log opens at the failed step, scrolled to its end;
	// other steps are closed; a #L link opens the step that holds the line.
	script := "steps:\n  - name: setup\n    run: |\n      echo preparing\n      seq 1 60\n  - name: tests\n    run: |\n" +
		"      seq 1 200\n      echo 'test widget::parse ... FAILED'\n      exit 3\n"
	dir3, sha3 := testutil.GitRepo(t, map[string]string{".raibid.yml": script})
	id3 := push(t, up.url, up.secret, pushPayload("acme/failing", dir3, "main", sha3))
	waitJob(t, up.url, up.token, id3, 30*time.Second, nil)
	within(t, ctx, 20*time.Second, chromedp.Navigate(up.url+"/ui/jobs/"+id3), chromedp.WaitVisible("#log"))
	if !js[bool](t, ctx, "document.querySelector('details[data-failed]').dataset.step === 'tests' && document.querySelector('details[data-failed]').open") {
		t.Fatal("the failed step's section is not open and marked")
	}
	if js[bool](t, ctx, "document.querySelector('details[data-step=setup]').open") {
		t.Fatal("a step that passed is open")
	}
	const lastFailedLine = "(() => { const ls = document.querySelectorAll('details[data-failed] .l'); const r = ls[ls.length-1].getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight + 1; })()"
	if !js[bool](t, ctx, lastFailedLine) {
		t.Fatal("the failed step's last line is not in view")
	}
	if !js[bool](t, ctx, "document.querySelector('details[data-step=tests] .t').textContent.includes('seq 1 200\\necho')") {
		t.Fatal("the multi-line command is not shown as written")
	}
	setupLine := js[string](t, ctx, "document.querySelector('details[data-step=setup] .l:last-child').id")
	within(t, ctx, 20*time.Second, chromedp.Navigate(up.url+"/ui/jobs/"+id3+"#"+setupLine), chromedp.WaitVisible("#"+setupLine))
	if !js[bool](t, ctx, "document.querySelector('details[data-step=setup]').open && document.querySelector('.l.hl') !== null") {
		t.Fatalf("the link to %s does not open its step", setupLine)
	}

	// The job list refreshes itself when a job appears.
	within(t, ctx, 20*time.Second, chromedp.Navigate(up.url+"/ui/"), chromedp.WaitVisible("#rows"))
	js[bool](t, ctx, "window.loadedOnce = true")
	dir2, sha2 := testutil.GitRepo(t, map[string]string{".raibid.yml": "steps:\n  - {name: hi, run: 'echo hi'}\n"})
	push(t, up.url, up.secret, pushPayload("acme/second-repo", dir2, "main", sha2))
	waitJS(t, ctx, "the new job in the list", "document.getElementById('rows').textContent.includes('acme/second-repo')", 15*time.Second)
	if !js[bool](t, ctx, "window.loadedOnce === true") {
		t.Fatal("the list reloaded instead of refreshing its rows")
	}
	if n := js[int](t, ctx, "document.querySelectorAll('script:not([src])').length"); n != 0 {
		t.Fatalf("%d inline scripts", n)
	}
}

// BenchmarkJobPage100kFirstPaint: the job page of a running job with a
// 100,000-line log, opened in headless Chromium; reports the first
// contentful paint and the page's own server time (the page shows the last
// 1,000 lines and follows live).
func BenchmarkJobPage100kFirstPaint(b *testing.B) {
	r := testutil.StartRedis(b)
	addr := freeAddr(b)
	srv := startProc(b, []string{"RAIBID_API_TOKEN=bench-token", "RAIBID_WEBHOOK_SECRET=s"}, "server",
		"--addr", addr, "--redis-url", r.URL())
	srv.waitFor("listening", 10*time.Second)
	base := "http://" + addr
	st := testutil.NewJobs(r.Client(), 0)
	id, _, err := st.Submit(context.Background(), &ci.Job{Repo: "acme/huge", Branch: "main", Commit: strings.Repeat("a", 40), Trigger: ci.TriggerManual}, "")
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	st.Transition(context.Background(), id, jobs.Change{From: []ci.Status{ci.StatusPending}, To: ci.StatusRunning, At: now})
	for chunk := 0; chunk < 100; chunk++ {
		lines := make([]ci.LogLine, 1000)
		for i := range lines {
			lines[i] = ci.LogLine{Step: "test", Stream: "stdout", Text: fmt.Sprintf("\x1b[32m   Compiling\x1b[0m crate-%06d v0.1.0 (/work/crates/crate-%06d) test result: ok. 12 passed; 0 failed", chunk*1000+i, chunk*1000+i)}
		}
		if err := st.Store.AppendLog(context.Background(), id, lines...); err != nil {
			b.Fatal(err)
		}
	}
	ctx := newChromium(b)
	within(b, ctx, 20*time.Second, chromedp.Navigate(base+"/ui/login"), chromedp.WaitVisible("#token"),
		chromedp.SendKeys("#token", "bench-token"), chromedp.Submit("#token"), chromedp.WaitVisible("#rows"))
	var fcp, server, domDone []time.Duration
	b.ResetTimer()
	for range b.N {
		within(b, ctx, 30*time.Second, chromedp.Navigate(base+"/ui/jobs/"+id), chromedp.WaitVisible("#log"))
		waitJS(b, ctx, "first paint", "performance.getEntriesByName('first-contentful-paint').length > 0", 10*time.Second)
		ms := func(expr string) time.Duration {
			return time.Duration(js[float64](b, ctx, expr) * float64(time.Millisecond))
		}
		fcp = append(fcp, ms("performance.getEntriesByName('first-contentful-paint')[0].startTime"))
		nav := "performance.getEntriesByType('navigation')[0]"
		server = append(server, ms(nav+".responseEnd - "+nav+".requestStart"))
		domDone = append(domDone, ms(nav+".domContentLoadedEventEnd"))
		if n := js[int](b, ctx, "document.querySelectorAll('#log .l').length"); n != 1000 {
			b.Fatalf("the page shows %d lines, want the last 1000", n)
		}
	}
	b.ReportMetric(percentile(fcp, 0.5), "fcp-p50-ms")
	b.ReportMetric(percentile(fcp, 1), "fcp-max-ms")
	b.ReportMetric(percentile(server, 0.5), "response-p50-ms")
	b.ReportMetric(percentile(domDone, 0.5), "domcontentloaded-p50-ms")
}
