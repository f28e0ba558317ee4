package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/forge"
	"github.com/raibid-labs/raibid-ci/internal/jobs"
	"github.com/raibid-labs/raibid-ci/internal/queue"
	"github.com/raibid-labs/raibid-ci/internal/server"
	"github.com/raibid-labs/raibid-ci/internal/store"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

const (
	secret = "webhook-s3cret"
	token  = "api-t0ken"
)

type env struct {
	t     *testing.T
	url   string
	redis *testutil.Redis
	store *store.Store
	queue *queue.Queue
	jobs  *jobs.Lifecycle
}

// start runs a real server on a loopback port against a real redis-server.
func start(t *testing.T, extra ...string) *env {
	t.Helper()
	return startWith(t, nil, extra...)
}

// startWith is start with options changed by with before the server is built.
func startWith(t *testing.T, with func(*server.Options), extra ...string) *env {
	t.Helper()
	return startOn(t, testutil.StartRedis(t, extra...), with)
}

// startOn is startWith on a Redis the caller started (and may use in with).
func startOn(t *testing.T, r *testutil.Redis, with func(*server.Options)) *env {
	t.Helper()
	rdb := r.Client()
	jb := testutil.NewJobs(rdb, 0)
	st, q := jb.Store, jb.Queue
	opts := server.Options{Store: st, Queue: q, Jobs: jb.Lifecycle, WebhookSecret: secret, APIToken: token,
		GiteaURL: "http://gitea.local:3000", ReaperInterval: -1}
	if with != nil {
		with(&opts)
	}
	srv := server.New(opts)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() { cancel(); <-done })
	return &env{t: t, url: "http://" + l.Addr().String(), redis: r, store: st, queue: q, jobs: jb.Lifecycle}
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "forge", "gitea", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type hook struct {
	body      []byte
	event     string
	delivery  string
	signature string // "" signs body with secret; "-" sends none
}

func (e *env) webhook(h hook) (int, map[string]any) {
	e.t.Helper()
	code, out := e.webhookNoFatal(h)
	if code == 0 {
		e.t.Fatalf("webhook: %v", out["error"])
	}
	return code, out
}

// webhookNoFatal answers status 0 when the request failed, for use from
// goroutines other than the test's.
func (e *env) webhookNoFatal(h hook) (int, map[string]any) {
	req, _ := http.NewRequest("POST", e.url+"/webhook/gitea", bytes.NewReader(h.body))
	req.Header.Set("Content-Type", "application/json")
	if h.event == "" {
		h.event = "push"
	}
	req.Header.Set("X-Gitea-Event", h.event)
	if h.delivery != "" {
		req.Header.Set("X-Gitea-Delivery", h.delivery)
	}
	switch h.signature {
	case "":
		req.Header.Set("X-Gitea-Signature", forge.SignHex([]byte(secret), h.body))
	case "-":
	default:
		req.Header.Set("X-Gitea-Signature", h.signature)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, map[string]any{"error": err.Error()}
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (e *env) do(method, path, body string, tok string) (*http.Response, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func (e *env) jobCount() int {
	e.t.Helper()
	jobs, _, err := e.store.List(context.Background(), store.Filter{Limit: 500})
	if err != nil {
		e.t.Fatal(err)
	}
	st, err := e.queue.Stats(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	if int(st.Length) != len(jobs) {
		e.t.Fatalf("%d jobs but %d stream entries", len(jobs), st.Length)
	}
	return len(jobs)
}

func TestGiteaWebhookBadInputMatrix(t *testing.T) {
	push := fixture(t, "push.json")
	huge := append(bytes.Repeat([]byte(" "), server.DefaultMaxBody), push...)
	cases := []struct {
		name     string
		hook     hook
		code     int
		wantJobs int
		field    string // a key the JSON answer must have
	}{
		{"valid push", hook{body: push, delivery: "d-1"}, 202, 1, "job_id"},
		{"missing signature", hook{body: push, signature: "-"}, 401, 0, "error"},
		{"wrong signature", hook{body: push, signature: strings.Repeat("ab", 32)}, 401, 0, "error"},
		{"signature not hex", hook{body: push, signature: "sha256=zz"}, 401, 0, "error"},
		{"signature of another body", hook{body: push, signature: forge.SignHex([]byte(secret), []byte("{}"))}, 401, 0, "error"},
		{"signed with another secret", hook{body: push, signature: forge.SignHex([]byte("guess"), push)}, 401, 0, "error"},
		{"oversized body", hook{body: huge}, 413, 0, "error"},
		{"malformed json", hook{body: []byte(`{"ref": "refs/heads/main", `)}, 400, 0, "error"},
		{"push without repository", hook{body: []byte(`{"ref":"refs/heads/main","after":"bffeb74224043ba2feb48d137756c8a9331c449a"}`)}, 400, 0, "error"},
		{"ping event", hook{body: []byte(`{"zen":"hi"}`), event: "ping"}, 200, 0, "ignored"},
		{"issue event", hook{body: push, event: "issues"}, 200, 0, "ignored"},
		{"tag push", hook{body: fixture(t, "push-tag.json")}, 202, 1, "job_id"},
		{"branch created", hook{body: fixture(t, "create-branch.json"), event: "create"}, 200, 0, "ignored"},
		{"pull request edited", hook{body: fixture(t, "pull_request-edited.json"), event: "pull_request"}, 200, 0, "ignored"},
		{"pull request without head", hook{body: []byte(`{"action":"opened","pull_request":{"number":1,"base":{"ref":"main","repo":{"full_name":"a/b"}}}}`), event: "pull_request"}, 400, 0, "error"},
		{"branch deletion", hook{body: fixture(t, "push-delete.json")}, 200, 0, "ignored"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := start(t)
			code, out := e.webhook(c.hook)
			if code != c.code {
				t.Fatalf("status %d, want %d (%v)", code, c.code, out)
			}
			if _, ok := out[c.field]; !ok {
				t.Fatalf("answer %v lacks %q", out, c.field)
			}
			if n := e.jobCount(); n != c.wantJobs {
				t.Fatalf("%d jobs, want %d", n, c.wantJobs)
			}
		})
	}
}

// One validator for repository names at every way in: what POST /jobs
// refuses, the webhook refuses too (400, no job), and names Gitea allows
// are queued.
func TestRepositoryNamesAtTheWebhook(t *testing.T) {
	var push map[string]any
	json.Unmarshal(fixture(t, "push.json"), &push)
	e := start(t)
	for i, c := range []struct {
		repo string
		code int
	}{
		{"acme/widget", 202}, {"Acme_1/w.i-d_g.et", 202}, {"_x/y", 202},
		{"--x/../y", 400}, {"../../etc", 400}, {"../x", 400}, {"x/..", 400}, {"-x/y", 400}, {"x/-y", 400},
		{".hidden/y", 400}, {"x/.y", 400}, {"acme", 400}, {"a/b/c", 400}, {"a b/c", 400}, {"a/b\x1b[2J", 400},
		{"/x", 400}, {"x/", 400}, {strings.Repeat("a", 101) + "/x", 400},
	} {
		before := e.jobCount()
		push["repository"].(map[string]any)["full_name"] = c.repo
		body, _ := json.Marshal(push)
		code, out := e.webhook(hook{body: body, delivery: fmt.Sprintf("repo-%d", i)})
		if code != c.code {
			t.Errorf("webhook for %q: %d %v, want %d", c.repo, code, out, c.code)
		}
		want := before
		if c.code == 202 {
			want++
		}
		if n := e.jobCount(); n != want {
			t.Errorf("webhook for %q: %d jobs, want %d", c.repo, n, want)
		}
		resp, _ := e.do("POST", "/jobs", fmt.Sprintf(`{"repo":%q,"branch":"main","clone_url":"http://gitea.local/x.git"}`, c.repo), token)
		if c.code == 400 && resp.StatusCode != 400 {
			t.Errorf("POST /jobs with %q: %d, want 400", c.repo, resp.StatusCode)
		}
	}
}

func TestRepeatedDeliveryReturnsFirstJob(t *testing.T) {
	e := start(t)
	push := fixture(t, "push.json")
	code, first := e.webhook(hook{body: push, delivery: "0e0b0f5e-1"})
	if code != 202 {
		t.Fatalf("first delivery %d", code)
	}
	for range 3 {
		code, again := e.webhook(hook{body: push, delivery: "0e0b0f5e-1"})
		if code != 202 || again["job_id"] != first["job_id"] || again["duplicate"] != true {
			t.Fatalf("redelivery = %d %v, want job %v", code, again, first["job_id"])
		}
	}
	if n := e.jobCount(); n != 1 {
		t.Fatalf("%d jobs after redeliveries, want 1", n)
	}
	// Another delivery of the same commit is another job (a manual redeliver
	// in Gitea keeps the id; a new push gets a new one).
	e.webhook(hook{body: push, delivery: "0e0b0f5e-2"})
	if n := e.jobCount(); n != 2 {
		t.Fatalf("%d jobs, want 2", n)
	}
}

func TestWebhookRecordsThePush(t *testing.T) {
	e := start(t)
	_, out := e.webhook(hook{body: fixture(t, "push.json"), delivery: "x"})
	resp, body := e.do("GET", "/jobs/"+out["job_id"].(string), "", token)
	if resp.StatusCode != 200 {
		t.Fatalf("get job %d %s", resp.StatusCode, body)
	}
	var j ci.Job
	if err := json.Unmarshal(body, &j); err != nil {
		t.Fatal(err)
	}
	if j.Repo != "acme/widget" || j.CloneURL != "http://gitea.local:3000/acme/widget.git" || j.Branch != "main" ||
		j.Commit != "bffeb74224043ba2feb48d137756c8a9331c449a" || j.Author != "ann" || j.Message != "Fix the frobnicator\n" ||
		j.Status != ci.StatusPending || j.Trigger != ci.TriggerPush {
		t.Fatalf("job = %+v", j)
	}
	if !strings.Contains(string(body), `"created_at":"`) || !strings.Contains(string(body), `"steps":[]`) {
		t.Fatalf("job JSON %s", body)
	}
}

// With Redis gone the webhook must not pretend: 503 makes Gitea deliver again.
func TestWebhookAnswers503WhileRedisIsDown(t *testing.T) {
	e := start(t)
	e.redis.Kill()
	code, out := e.webhook(hook{body: fixture(t, "push.json"), delivery: "during-outage"})
	if code != 503 {
		t.Fatalf("status %d %v, want 503", code, out)
	}
	if resp, _ := e.do("GET", "/readyz", "", ""); resp.StatusCode != 503 {
		t.Fatalf("readyz %d while Redis is down", resp.StatusCode)
	}
	e.redis.Restart()
	var code2 int
	testutil.Eventually(t, 5*time.Second, func() bool { // the client reconnects on its next command
		code2, _ = e.webhook(hook{body: fixture(t, "push.json"), delivery: "during-outage"})
		return code2 == 202
	})
	if code2 != 202 || e.jobCount() != 1 {
		t.Fatalf("after restart: %d, %d jobs", code2, e.jobCount())
	}
	if resp, _ := e.do("GET", "/readyz", "", ""); resp.StatusCode != 200 {
		t.Fatalf("readyz %d after restart", resp.StatusCode)
	}
}

func TestBearerTokenGuardsAPIButNotWebhooksOrHealth(t *testing.T) {
	e := start(t)
	for _, path := range []string{"/jobs", "/agents", "/queue", "/metrics"} {
		if resp, _ := e.do("GET", path, "", ""); resp.StatusCode != 401 {
			t.Errorf("GET %s without token: %d", path, resp.StatusCode)
		}
		if resp, _ := e.do("GET", path, "", "wrong"); resp.StatusCode != 401 {
			t.Errorf("GET %s with wrong token: %d", path, resp.StatusCode)
		}
		if resp, _ := e.do("GET", path, "", token); resp.StatusCode != 200 {
			t.Errorf("GET %s with token: %d", path, resp.StatusCode)
		}
	}
	for _, path := range []string{"/healthz", "/readyz", "/openapi.yaml"} {
		if resp, _ := e.do("GET", path, "", ""); resp.StatusCode != 200 {
			t.Errorf("GET %s without token: %d", path, resp.StatusCode)
		}
	}
	resp, body := e.do("GET", "/jobs", "", "")
	if resp.Header.Get("Content-Type") != "application/json" || !strings.Contains(string(body), `"error"`) {
		t.Errorf("401 is not a JSON error: %s", body)
	}
}

func decodeJob(t *testing.T, b []byte) ci.Job {
	t.Helper()
	var j ci.Job
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return j
}

func TestJobsAPICreateGetListCancelRetry(t *testing.T) {
	e := start(t)
	resp, body := e.do("POST", "/jobs", `{"repo":"acme/widget","branch":"dev"}`, token)
	if resp.StatusCode != 201 {
		t.Fatalf("create %d %s", resp.StatusCode, body)
	}
	j := decodeJob(t, body)
	if j.CloneURL != "http://gitea.local:3000/acme/widget.git" || j.Trigger != ci.TriggerManual || j.Status != ci.StatusPending {
		t.Fatalf("created %+v", j)
	}
	for _, bad := range []string{`{"repo":"acme","branch":"x"}`, `{"repo":"a/b"}`, `{"repo":"a/b","branch":"x","extra":1}`, `nope`} {
		if resp, body := e.do("POST", "/jobs", bad, token); resp.StatusCode != 400 {
			t.Errorf("create %s: %d %s", bad, resp.StatusCode, body)
		}
	}
	if resp, _ := e.do("POST", "/jobs/"+j.ID+"/retry", "", token); resp.StatusCode != 409 {
		t.Fatalf("retry of pending job %d", resp.StatusCode)
	}
	resp, body = e.do("POST", "/jobs/"+j.ID+"/cancel", "", token)
	if resp.StatusCode != 200 || decodeJob(t, body).Status != ci.StatusCancelled {
		t.Fatalf("cancel %d %s", resp.StatusCode, body)
	}
	if resp, body := e.do("POST", "/jobs/"+j.ID+"/cancel", "", token); resp.StatusCode != 409 || !strings.Contains(string(body), "cancelled") {
		t.Fatalf("second cancel %d %s", resp.StatusCode, body)
	}
	resp, body = e.do("POST", "/jobs/"+j.ID+"/retry", "", token)
	r := decodeJob(t, body)
	if resp.StatusCode != 201 || r.RetryOf != j.ID || r.Attempt != 2 || r.Branch != "dev" {
		t.Fatalf("retry %d %+v", resp.StatusCode, r)
	}
	for _, path := range []string{"/jobs/00000000000000000000", "/jobs/../etc", "/jobs/zzz/logs"} {
		if resp, _ := e.do("GET", path, "", token); resp.StatusCode != 404 {
			t.Errorf("GET %s = %d", path, resp.StatusCode)
		}
	}
	resp, body = e.do("GET", "/jobs?status=cancelled", "", token)
	var page struct {
		Jobs       []ci.Job `json:"jobs"`
		NextCursor string   `json:"next_cursor"`
	}
	json.Unmarshal(body, &page)
	if resp.StatusCode != 200 || len(page.Jobs) != 1 || page.Jobs[0].ID != j.ID {
		t.Fatalf("list cancelled: %s", body)
	}
	resp, body = e.do("GET", "/jobs?limit=1", "", token)
	json.Unmarshal(body, &page)
	if resp.StatusCode != 200 || len(page.Jobs) != 1 || page.Jobs[0].ID != r.ID || page.NextCursor == "" {
		t.Fatalf("page 1: %s", body)
	}
	_, body = e.do("GET", "/jobs?limit=1&cursor="+page.NextCursor, "", token)
	json.Unmarshal(body, &page)
	if len(page.Jobs) != 1 || page.Jobs[0].ID != j.ID {
		t.Fatalf("page 2: %s", body)
	}
	// Both jobs were started by hand: event manual, none a push.
	for q, want := range map[string]int{"event=manual": 2, "event=push": 0, "event=manual&status=cancelled": 1} {
		_, body = e.do("GET", "/jobs?"+q, "", token)
		page.Jobs = nil
		json.Unmarshal(body, &page)
		if len(page.Jobs) != want {
			t.Errorf("GET /jobs?%s: %d jobs, want %d", q, len(page.Jobs), want)
		}
	}
	for _, q := range []string{"status=bogus", "limit=0", "limit=x", "cursor=../../", "event=deploy", "group=xyz"} {
		if resp, _ := e.do("GET", "/jobs?"+q, "", token); resp.StatusCode != 400 {
			t.Errorf("GET /jobs?%s = %d", q, resp.StatusCode)
		}
	}
}

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct{ id, name, data string }

func readEvents(t *testing.T, body io.Reader, stop func(sseEvent) bool) []sseEvent {
	t.Helper()
	var out []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.name != "" || cur.data != "" {
				out = append(out, cur)
				if stop(cur) {
					return out
				}
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			cur.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			cur.name = line[7:]
		case strings.HasPrefix(line, "data: "):
			cur.data += line[6:]
		}
	}
	return out
}

func (e *env) stream(path, lastID string) *http.Response {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestLogsTextAndResumableSSE(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	id, _, _ := e.jobs.Submit(ctx, &ci.Job{Repo: "a/b", CloneURL: "/tmp/x", Branch: "main"}, "")
	e.jobs.Transition(ctx, id, jobs.Change{From: []ci.Status{ci.StatusPending}, To: ci.StatusRunning})
	e.store.AppendLog(ctx, id, ci.LogLine{Step: "build", Stream: "stdout", Text: "line 1"}, ci.LogLine{Step: "build", Stream: "stdout", Text: "line 2"})

	resp := e.stream("/jobs/"+id+"/logs/stream", "")
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
	first := readEvents(t, resp.Body, func(ev sseEvent) bool { return strings.Contains(ev.data, "line 2") })
	if len(first) != 2 || first[0].name != "log" || first[0].id == "" {
		t.Fatalf("events %+v", first)
	}
	resp.Body.Close()

	// Lines written while the client was away, then the job ends.
	e.store.AppendLog(ctx, id, ci.LogLine{Step: "test", Stream: "stdout", Text: "line 3"})
	e.jobs.Transition(ctx, id, jobs.Change{From: []ci.Status{ci.StatusRunning}, To: ci.StatusSuccess})
	resumed := readEvents(t, e.stream("/jobs/"+id+"/logs/stream", first[0].id).Body, func(ev sseEvent) bool { return ev.name == "end" })
	if len(resumed) != 3 || !strings.Contains(resumed[0].data, "line 2") || !strings.Contains(resumed[1].data, "line 3") ||
		resumed[2].name != "end" || !strings.Contains(resumed[2].data, "success") {
		t.Fatalf("resumed %+v", resumed)
	}
	r, body := e.do("GET", "/jobs/"+id+"/logs", "", token)
	if r.StatusCode != 200 || string(body) != "line 1\nline 2\nline 3\n" {
		t.Fatalf("text logs %d %q", r.StatusCode, body)
	}
	if r, _ := e.do("GET", "/jobs/"+id+"/logs/stream?after=bogus", "", token); r.StatusCode != 400 {
		t.Fatalf("bad Last-Event-ID: %d", r.StatusCode)
	}
}

func TestEventsStreamJobAndQueueChanges(t *testing.T) {
	e := start(t)
	before := testutil.Subscribers(t, e.redis.Client())
	resp := e.stream("/events", "")
	got := make(chan []sseEvent, 1)
	go func() {
		got <- readEvents(t, resp.Body, func(ev sseEvent) bool { return ev.name == "job" })
	}()
	testutil.WaitSubscribers(t, e.redis.Client(), before+1) // the stream's subscription is up
	_, out := e.webhook(hook{body: fixture(t, "push.json")})
	select {
	case evs := <-got:
		if evs[0].name != "queue" || !strings.Contains(evs[len(evs)-1].data, out["job_id"].(string)) {
			t.Fatalf("events %+v", evs)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no job event")
	}
}

func TestMetricsExposeWebhooksAndQueue(t *testing.T) {
	e := start(t)
	e.webhook(hook{body: fixture(t, "push.json")})
	e.webhook(hook{body: fixture(t, "push.json"), signature: "-"})
	_, body := e.do("GET", "/metrics", "", token)
	for _, want := range []string{
		`raibid_webhooks_total{forge="gitea",result="accepted"} 1`,
		`raibid_webhooks_total{forge="gitea",result="unauthorized"} 1`,
		`raibid_jobs_enqueued_total{trigger="push"} 1`,
		"raibid_queue_length 1", "raibid_queue_lag 1", "raibid_queue_pending 0", "raibid_queue_dead_letters 0",
		`raibid_http_request_duration_seconds_bucket{code="202",method="POST",route="/webhook/gitea"`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// A finished job's cargo artifacts reach the cache counters, and its
// phases on the agent the phase histogram, whichever process ran it.
func TestFinishedJobCounters(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	id, _, _ := e.jobs.Submit(ctx, &ci.Job{Repo: "a/b", CloneURL: "/x", Branch: "main"}, "")
	e.jobs.Transition(ctx, id, jobs.Change{From: []ci.Status{ci.StatusPending}, To: ci.StatusRunning})
	testutil.WaitSubscribers(t, e.redis.Client(), 1) // the server's subscription is up
	e.jobs.Transition(ctx, id, jobs.Change{From: []ci.Status{ci.StatusRunning}, To: ci.StatusSuccess,
		Fields: map[string]string{"cache_artifacts": "10", "cache_fresh": "9", "phases": `{"clone":12.5,"steps":300,"overhead":20}`}})
	var body []byte
	if !testutil.Eventually(t, 5*time.Second, func() bool {
		_, body = e.do("GET", "/metrics", "", token)
		return strings.Contains(string(body), `raibid_build_cache_artifacts_total{fresh="true"} 9`) &&
			strings.Contains(string(body), `raibid_build_cache_artifacts_total{fresh="false"} 1`) &&
			strings.Contains(string(body), `raibid_job_phase_seconds_sum{phase="overhead"} 0.02`) &&
			strings.Contains(string(body), `raibid_job_phase_seconds_bucket{phase="clone",le="0.015"} 1`)
	}) {
		t.Fatalf("cache counters missing:\n%s", body)
	}
}
