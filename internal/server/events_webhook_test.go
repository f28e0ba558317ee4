package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/server"
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

// pipelineFiles serves .raibid.yml from a table, by repository (the real
// readers, Gitea's API and git, are tested in internal/cli).
type pipelineFiles map[string]string

func (p pipelineFiles) PipelineFile(_ context.Context, repo, _, _ string) ([]byte, error) {
	if f, ok := p[repo]; ok {
		return []byte(f), nil
	}
	return nil, nil
}

// A pipeline whose when does not match the event queues nothing: the
// webhook answers 200 {"skipped": why}. Branch × event × path.
func TestWebhookSkipsWhatThePipelineExcludes(t *testing.T) {
	e := startWith(t, func(o *server.Options) {
		o.PipelineFiles = pipelineFiles{"acme/widget": "when:\n  event: [push, pull_request, tag]\n  branch: main\n  path: {exclude: [\"docs/**\"]}\nsteps:\n  - {name: a, run: x}\n"}
	})
	payload := func(branch string, changed ...string) []byte {
		commits := []map[string]any{{"id": "bffeb74224043ba2feb48d137756c8a9331c449a", "message": "m", "modified": changed}}
		b, _ := json.Marshal(map[string]any{"ref": "refs/heads/" + branch, "before": "28e1879d029cb852e4844d9c718537df08844e03",
			"after": "bffeb74224043ba2feb48d137756c8a9331c449a", "commits": commits, "total_commits": 1,
			"repository": map[string]any{"full_name": "acme/widget", "clone_url": "http://gitea.local:3000/acme/widget.git"}})
		return b
	}
	cases := []struct {
		name    string
		hook    hook
		code    int
		skipped string
	}{
		{"push to main, code", hook{body: payload("main", "src/lib.rs")}, 202, ""},
		{"push to main, docs only", hook{body: payload("main", "docs/a.md")}, 200, "none of the 1 file changed matches when.path"},
		{"push to a feature branch", hook{body: payload("feature", "src/lib.rs")}, 200, `branch "feature" does not match when.branch`},
		{"pull request into main", hook{body: fixture(t, "pull_request-opened.json"), event: "pull_request"}, 202, ""},
		{"tag", hook{body: fixture(t, "push-tag.json")}, 202, ""},
	}
	jobs := 0
	for i, c := range cases {
		c.hook.delivery = fmt.Sprint("w-", i)
		code, out := e.webhook(c.hook)
		if code != c.code || (c.skipped != "" && !strings.Contains(fmt.Sprint(out["skipped"]), c.skipped)) {
			t.Errorf("%s: %d %v", c.name, code, out)
		}
		if code == 202 {
			jobs++
		}
	}
	if n := e.jobCount(); n != jobs {
		t.Fatalf("%d jobs, want %d", n, jobs)
	}
	// Another repository's pipeline (no file here: the default) is never skipped.
	if code, _ := e.webhook(hook{body: bytes.ReplaceAll(payload("feature", "docs/a.md"), []byte("acme/widget"), []byte("acme/other")), delivery: "w-other"}); code != 202 {
		t.Fatalf("a repository without when: %d", code)
	}
}
