package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/jobs"
	"github.com/raibid-labs/raibid-ci/internal/server"
)

// browser is an HTTP client with a cookie jar that does not follow redirects,
// so each answer can be checked.
type browser struct {
	t *testing.T
	e *env
	c *http.Client
}

func newBrowser(t *testing.T, e *env) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

func (b *browser) get(path string) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.Get(b.e.url + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func (b *browser) post(path string, form url.Values, origin string) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest("POST", b.e.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func (b *browser) login() {
	b.t.Helper()
	resp, _ := b.post("/ui/login", url.Values{"token": {token}, "next": {"/ui/"}}, "")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/" {
		b.t.Fatalf("login: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	sc := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"raibid_session=", "HttpOnly", "SameSite=Strict", "Path=/ui/"} {
		if !strings.Contains(sc, want) {
			b.t.Fatalf("session cookie %q lacks %s", sc, want)
		}
	}
	if strings.Contains(sc, token) {
		b.t.Fatal("the cookie holds the API token")
	}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func (e *env) runningJob(t *testing.T, message string) string {
	t.Helper()
	ctx := context.Background()
	id, _, err := e.jobs.Submit(ctx, &ci.Job{Repo: "acme/widget", Branch: "main", Commit: "bffeb74224043ba2feb48d137756c8a9331c449a",
		Author: "Ann <ann@example.com>", Message: message, CloneURL: "http://gitea.local:3000/acme/widget.git", Trigger: ci.TriggerPush}, "")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := e.jobs.Transition(ctx, id, jobs.Change{From: []ci.Status{ci.StatusPending}, To: ci.StatusRunning, At: now, Agent: "local-1",
		Steps: []ci.Step{{Name: "check", Status: ci.StatusRunning, StartedAt: &now}}}); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestUIRequiresLoginAndEscapesEverything(t *testing.T) {
	e := start(t)
	id := e.runningJob(t, "fix <script>alert('x')</script> & more")
	e.store.AppendLog(context.Background(), id, ci.LogLine{Step: "check", Stream: "stdout", Text: "\x1b[1;32m   Compiling\x1b[0m widget <img src=x onerror=alert(1)>"})
	b := newBrowser(t, e)

	resp, _ := b.get("/ui/jobs/" + id)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/ui/login?next=%2Fui%2Fjobs%2F"+id) {
		t.Fatalf("anonymous job page: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := b.get("/ui/rows"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous rows fragment: %d", resp.StatusCode)
	}
	if resp, body := b.post("/ui/login", url.Values{"token": {"wrong"}}, ""); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "not the API token") {
		t.Fatalf("wrong token: %d", resp.StatusCode)
	}
	b.login()

	resp, body := b.get("/ui/jobs/" + id)
	if resp.StatusCode != 200 {
		t.Fatalf("job page: %d %s", resp.StatusCode, body)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("CSP %q", csp)
	}
	for _, bad := range []string{"<script>alert", "<img src=x", token, secret} {
		if strings.Contains(body, bad) {
			t.Errorf("job page contains %q", bad)
		}
	}
	for _, want := range []string{"fix &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more", "Ann &lt;ann@example.com&gt;",
		`<span class="f2 bo">   Compiling</span> widget &lt;img src=x onerror=alert(1)&gt;`, `id="cancel"`, "badge s-running"} {
		if !strings.Contains(body, want) {
			t.Errorf("job page lacks %q", want)
		}
	}
	if strings.Count(body, "<script") != 1 || !strings.Contains(body, `<script src="/ui/static/app.js" defer></script>`) {
		t.Error("the page has a script other than /ui/static/app.js")
	}

	_, list := b.get("/ui/?status=running")
	if !strings.Contains(list, id[len(id)-8:]) || strings.Contains(list, "<script>alert") {
		t.Fatal("job list lacks the job or shows the message unescaped")
	}
	if _, list := b.get("/ui/?event=push"); !strings.Contains(list, id[len(id)-8:]) {
		t.Fatal("the push filter lacks the pushed job")
	}
	if _, list := b.get("/ui/?event=tag"); strings.Contains(list, id[len(id)-8:]) || !strings.Contains(list, `<option value="tag" selected>`) {
		t.Fatal("the tag filter shows a push, or the form forgot the filter")
	}
	if resp, _ := b.get("/ui/?event=deploy"); resp.StatusCode != 400 {
		t.Fatalf("unknown event: %d", resp.StatusCode)
	}
	if _, static := b.get("/ui/static/app.css"); !strings.Contains(static, ".logbody") {
		t.Fatal("stylesheet not served")
	}
}

func TestUICancelNeedsCSRFAndSameOrigin(t *testing.T) {
	e := start(t)
	id := e.runningJob(t, "x")
	b := newBrowser(t, e)
	b.login()
	_, page := b.get("/ui/jobs/" + id)
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no CSRF token in the page")
	}
	if resp, _ := b.post("/ui/jobs/"+id+"/cancel", url.Values{}, ""); resp.StatusCode != 403 {
		t.Fatalf("cancel without token: %d", resp.StatusCode)
	}
	if resp, _ := b.post("/ui/jobs/"+id+"/cancel", url.Values{"csrf": {m[1]}}, "https://evil.example"); resp.StatusCode != 403 {
		t.Fatalf("cross-origin cancel: %d", resp.StatusCode)
	}
	if resp, _ := newBrowser(t, e).post("/ui/jobs/"+id+"/cancel", url.Values{"csrf": {m[1]}}, ""); resp.StatusCode != 403 {
		t.Fatalf("cancel from a browser without the session: %d", resp.StatusCode)
	}
	if j, _ := e.store.Get(context.Background(), id); j.Status != ci.StatusRunning {
		t.Fatalf("a refused form changed the job: %s", j.Status)
	}
	resp, _ := b.post("/ui/jobs/"+id+"/cancel", url.Values{"csrf": {m[1]}}, e.url)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/jobs/"+id {
		t.Fatalf("cancel: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if j, _ := e.store.Get(context.Background(), id); j.Status != ci.StatusCancelled {
		t.Fatalf("job %s after cancel", j.Status)
	}
	_, page = b.get("/ui/jobs/" + id)
	if !strings.Contains(page, "badge s-cancelled") || !strings.Contains(page, `id="retry"`) || strings.Contains(page, `id="cancel"`) {
		t.Fatal("the page after cancel does not show cancelled with a retry button")
	}
	resp, _ = b.post("/ui/jobs/"+id+"/retry", url.Values{"csrf": {m[1]}}, "")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") == "/ui/jobs/"+id {
		t.Fatalf("retry: %d to %q, want the new job", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestUIPublicPagesStillNeedLoginToAct(t *testing.T) {
	e := startWith(t, func(o *server.Options) { o.UIPublic = true })
	id := e.runningJob(t, "x")
	b := newBrowser(t, e)
	resp, page := b.get("/ui/jobs/" + id)
	if resp.StatusCode != 200 || strings.Contains(page, `id="cancel"`) || !strings.Contains(page, "log in") {
		t.Fatalf("public page: %d, cancel button shown: %v", resp.StatusCode, strings.Contains(page, `id="cancel"`))
	}
	if resp, _ := b.post("/ui/jobs/"+id+"/cancel", url.Values{"csrf": {"x"}}, ""); resp.StatusCode != 403 {
		t.Fatalf("anonymous cancel on public pages: %d", resp.StatusCode)
	}
}

func TestUILongLogIsPaged(t *testing.T) {
	e := start(t)
	id := e.runningJob(t, "x")
	var lines []ci.LogLine
	for i := range 2500 {
		lines = append(lines, ci.LogLine{Step: "check", Stream: "stdout", Text: fmt.Sprintf("line-%05d", i)})
	}
	e.store.AppendLog(context.Background(), id, lines...)
	b := newBrowser(t, e)
	b.login()
	_, page := b.get("/ui/jobs/" + id)
	if n := strings.Count(page, `<div class="l"`); n != 1000 {
		t.Fatalf("latest page shows %d lines, want 1000", n)
	}
	if !strings.Contains(page, "line-01500") || strings.Contains(page, "line-01499") ||
		!strings.Contains(page, `<span id="shown">1000</span> of <span id="total">2500</span> lines`) {
		t.Fatal("latest page is not the last 1000 lines")
	}
	// Numbered lines with links, in one section of their step.
	if !strings.Contains(page, `id="L2500"`) || !strings.Contains(page, `href="#L1501"`) || strings.Contains(page, `id="L1500"`) ||
		strings.Count(page, `<details class="step" data-step="check"`) != 1 {
		t.Fatal("lines are not numbered and linked, or not in one section of their step")
	}
	older := regexp.MustCompile(`href="/ui/jobs/` + id + `\?before=([0-9-]+)"`).FindStringSubmatch(page)
	if older == nil {
		t.Fatal("no link to older lines")
	}
	_, page = b.get("/ui/jobs/" + id + "?before=" + older[1])
	if !strings.Contains(page, "line-00500") || !strings.Contains(page, "line-01499") || strings.Contains(page, "line-01500") || strings.Contains(page, "data-stream") {
		t.Fatal("the older page is not lines 500-1499, or it follows live")
	}
	if resp, _ := b.get("/ui/jobs/" + id + "?before=nonsense"); resp.StatusCode != 400 {
		t.Fatalf("bad before: %d", resp.StatusCode)
	}
}

func TestUIStreamSendsEscapedLinesSummaryAndEnd(t *testing.T) {
	e := start(t)
	id := e.runningJob(t, "x")
	ctx := context.Background()
	e.store.AppendLog(ctx, id, ci.LogLine{Step: "check", Stream: "stdout", Text: "\x1b[31m<b>red</b>"})
	b := newBrowser(t, e)
	b.login()
	resp, err := b.c.Get(e.url + "/ui/jobs/" + id + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// Once the page has the running job's summary, the job is cancelled.
	cancelled := false
	events := readEvents(t, resp.Body, func(ev sseEvent) bool {
		if ev.name == "summary" && !cancelled {
			cancelled = true
			e.jobs.Cancel(ctx, id)
		}
		return ev.name == "end"
	})
	var names []string
	for _, ev := range events {
		names = append(names, ev.name)
		if ev.name == "line" && ev.data != `{"step":"check","n":1,"cont":false,"html":"\u003cspan class=\"f1\"\u003e\u0026lt;b\u0026gt;red\u0026lt;/b\u0026gt;\u003c/span\u003e"}` {
			t.Errorf("line event %s", ev.data)
		}
	}
	got := strings.Join(names, ",")
	if !strings.HasPrefix(got, "line,summary") || !strings.HasSuffix(got, "summary,end") {
		t.Fatalf("events %s, want line, summary (running), summary (cancelled), end", got)
	}
	if last := events[len(events)-2]; !strings.Contains(last.data, "s-cancelled") {
		t.Fatalf("final summary %s", last.data)
	}
}

// Logging out revokes the session: the same cookie, copied before the
// logout, no longer opens a page.
func TestUILogoutRevokesTheCookie(t *testing.T) {
	e := start(t)
	id := e.runningJob(t, "x")
	b := newBrowser(t, e)
	b.login()
	u, _ := url.Parse(e.url + "/ui/")
	cookies := b.c.Jar.Cookies(u)
	if len(cookies) != 1 {
		t.Fatalf("cookies %v", cookies)
	}
	_, page := b.get("/ui/jobs/" + id)
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no CSRF token in the page")
	}
	if resp, _ := b.post("/ui/logout", url.Values{"csrf": {m[1]}}, e.url); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	thief := newBrowser(t, e)
	thief.c.Jar.SetCookies(u, cookies)
	if resp, _ := thief.get("/ui/jobs/" + id); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/ui/login") {
		t.Fatalf("the logged-out cookie still opens the page: %d", resp.StatusCode)
	}
}

// Behind a TLS proxy the session cookie is Secure.
func TestUISessionCookieSecureBehindTLSProxy(t *testing.T) {
	e := start(t)
	for _, proto := range []string{"https", ""} {
		req, _ := http.NewRequest("POST", e.url+"/ui/login", strings.NewReader(url.Values{"token": {token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if proto != "" {
			req.Header.Set("X-Forwarded-Proto", proto)
		}
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		secure := strings.Contains(resp.Header.Get("Set-Cookie"), "Secure")
		if secure != (proto == "https") {
			t.Fatalf("X-Forwarded-Proto %q: cookie %q", proto, resp.Header.Get("Set-Cookie"))
		}
	}
}

// A finished job whose log has expired still has its page (the commit
// status links to it), which says the log expired instead of a 404.
func TestUIJobWithExpiredLog(t *testing.T) {
	e := start(t)
	id := e.runningJob(t, "x")
	ctx := context.Background()
	e.store.AppendLog(ctx, id, ci.LogLine{Step: "s", Stream: "stdout", Text: "gone soon"})
	e.jobs.Transition(ctx, id, jobs.Change{From: []ci.Status{ci.StatusRunning}, To: ci.StatusSuccess, At: time.Now().Add(-25 * time.Hour)})
	e.redis.Client().Del(ctx, "job:"+id+":log") // as the log's 24 h TTL would
	b := newBrowser(t, e)
	b.login()
	resp, page := b.get("/ui/jobs/" + id)
	if resp.StatusCode != 200 || !strings.Contains(page, "Log expired: logs are kept 24h after a job ends") || !strings.Contains(page, "ended 25h ago") {
		t.Fatalf("%d\n%s", resp.StatusCode, page)
	}
}
