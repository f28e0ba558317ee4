package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
	"github.com/raibid-labs/raibid-ci/internal/server"
	"github.com/raibid-labs/raibid-ci/internal/statuses"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

func (e *env) job(id any) *ci.Job {
	e.t.Helper()
	j, err := e.store.Get(context.Background(), id.(string))
	if err != nil {
		e.t.Fatal(err)
	}
	return j
}

// Each Gitea event, as Gitea 1.27 sends it, becomes the job it should.
func TestGiteaEventsBecomeJobs(t *testing.T) {
	e := start(t)
	code, out := e.webhook(hook{body: fixture(t, "push.json"), delivery: "p-1"})
	if code != 202 {
		t.Fatalf("push %d %v", code, out)
	}
	if j := e.job(out["job_id"]); j.Event != ci.EventPush || j.Branch != "main" || j.Tag != "" ||
		!reflect.DeepEqual(j.Changed, []string{"src/lib.rs"}) || j.Before != "28e1879d029cb852e4844d9c718537df08844e03" {
		t.Fatalf("push job = %+v", j)
	}

	// A new tag arrives as a push of refs/tags/… and as a create event:
	// one job, whichever comes first.
	code, tag := e.webhook(hook{body: fixture(t, "push-tag.json"), delivery: "t-1"})
	if code != 202 {
		t.Fatalf("tag push %d %v", code, tag)
	}
	if j := e.job(tag["job_id"]); j.Event != ci.EventTag || j.Tag != "v1.0.0" || j.Branch != "" || j.Commit != "bffeb74224043ba2feb48d137756c8a9331c449a" {
		t.Fatalf("tag job = %+v", j)
	}
	code, again := e.webhook(hook{body: fixture(t, "create-tag.json"), event: "create", delivery: "t-2"})
	if code != 202 || again["job_id"] != tag["job_id"] || again["duplicate"] != true {
		t.Fatalf("create after tag push = %d %v, want the tag push's job", code, again)
	}

	code, pr := e.webhook(hook{body: fixture(t, "pull_request-opened.json"), event: "pull_request", delivery: "pr-1"})
	if code != 202 {
		t.Fatalf("pull request %d %v", code, pr)
	}
	want := &ci.PullRequest{Number: 12, BaseBranch: "main", HeadBranch: "faster"}
	if j := e.job(pr["job_id"]); j.Event != ci.EventPullRequest || !reflect.DeepEqual(j.PullRequest, want) ||
		j.Repo != "acme/widget" || j.Commit != "c0ffee0000000000000000000000000000000001" || j.Branch != "faster" {
		t.Fatalf("pull request job = %+v %+v", j, j.PullRequest)
	}
	code, fork := e.webhook(hook{body: fixture(t, "pull_request-synchronized-fork.json"), event: "pull_request", delivery: "pr-2"})
	if j := e.job(fork["job_id"]); code != 202 || !j.PullRequest.FromFork || j.CloneURL != "http://gitea.local:3000/bob/widget.git" || j.Repo != "acme/widget" {
		t.Fatalf("fork pull request = %d %+v", code, j)
	}

	// Closing #12 cancels its queued job, and only its.
	code, closed := e.webhook(hook{body: fixture(t, "pull_request-closed.json"), event: "pull_request", delivery: "pr-3"})
	if code != 200 || !reflect.DeepEqual(closed["cancelled"], []any{pr["job_id"]}) {
		t.Fatalf("close = %d %v", code, closed)
	}
	if st := e.job(pr["job_id"]).Status; st != ci.StatusCancelled {
		t.Fatalf("closed pull request's job is %s", st)
	}
	if st := e.job(fork["job_id"]).Status; st != ci.StatusPending {
		t.Fatalf("another pull request's job is %s", st)
	}
}

// headTable resolves branches from a table (the real resolvers, git and
// Gitea's API, are tested in internal/cli).
type headTable map[string]string

func (h headTable) BranchHead(_ context.Context, repo, _, branch string) (string, error) {
	if sha, ok := h[repo+"@"+branch]; ok {
		return sha, nil
	}
	return "", ci.ErrNotFound
}

// A manual job records its branch's head commit and event manual; a branch
// that does not exist is a 400 at once, and no job.
func TestManualJobResolvesTheBranchHead(t *testing.T) {
	const sha = "0123456789abcdef0123456789abcdef01234567"
	e := startWith(t, func(o *server.Options) { o.Heads = headTable{"acme/widget@main": sha} })
	resp, body := e.do("POST", "/jobs", `{"repo":"acme/widget","branch":"main"}`, token)
	var j ci.Job
	if err := json.Unmarshal(body, &j); err != nil || resp.StatusCode != 201 || j.Commit != sha || j.Event != ci.EventManual {
		t.Fatalf("POST /jobs = %d %s", resp.StatusCode, body)
	}
	resp, body = e.do("POST", "/jobs", `{"repo":"acme/widget","branch":"nope"}`, token)
	if resp.StatusCode != 400 || !strings.Contains(string(body), "branch nope does not exist in acme/widget") {
		t.Fatalf("missing branch = %d %s", resp.StatusCode, body)
	}
	if n := e.jobCount(); n != 1 {
		t.Fatalf("%d jobs, want 1", n)
	}
}

// The webhook reads nothing from the forge before it answers: with a
// Gitea that never answers, every event — a push to any branch, a pull
// request, a tag — is queued and answered 202 at once (the agent reads the
// pipeline and decides its when:); the only requests Gitea sees are the
// pending statuses, posted in the background.
func TestWebhookAnswersWithoutWaitingForTheForge(t *testing.T) {
	var mu sync.Mutex
	var reads []string
	stuck := make(chan struct{})
	forge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			mu.Lock()
			reads = append(reads, r.URL.Path)
			mu.Unlock()
		}
		select {
		case <-stuck:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(forge.Close)
	// As raibid server and raibid up wire it: commit statuses go through
	// the outbox, to a forge that never answers.
	r := testutil.StartRedis(t)
	e := startOn(t, r, func(o *server.Options) {
		o.GiteaURL = forge.URL
		o.Status = statuses.New(r.Client(), gitea.NewClient(forge.URL, "tok", nil), statuses.Options{})
	})
	// The forge answers again before the server stops (cleanups run last
	// first): its status posts end then instead of timing out.
	t.Cleanup(func() { close(stuck) })
	payload := func(branch string) []byte {
		b, _ := json.Marshal(map[string]any{"ref": "refs/heads/" + branch, "before": "28e1879d029cb852e4844d9c718537df08844e03",
			"after":      "bffeb74224043ba2feb48d137756c8a9331c449a",
			"repository": map[string]any{"full_name": "acme/widget", "clone_url": forge.URL + "/acme/widget.git"}})
		return b
	}
	hooks := []hook{{body: payload("main")}, {body: payload("feature")},
		{body: fixture(t, "pull_request-opened.json"), event: "pull_request"}, {body: fixture(t, "push-tag.json")}}
	for i, h := range hooks {
		h.delivery = fmt.Sprint("w-", i)
		done := make(chan struct{})
		var code int
		var out map[string]any
		go func() { defer close(done); code, out = e.webhook(h) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			t.Fatalf("hook %d: no answer while the forge hangs", i)
		}
		if code != 202 || out["job_id"] == nil {
			t.Fatalf("hook %d: %d %v", i, code, out)
		}
	}
	if n := e.jobCount(); n != len(hooks) {
		t.Fatalf("%d jobs, want %d", n, len(hooks))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reads) > 0 {
		t.Fatalf("the server read from the forge: %v", reads)
	}
}
