package server_test

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/agent"
	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
	"github.com/raibid-labs/raibid-ci/internal/server"
	"github.com/raibid-labs/raibid-ci/internal/store"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// statusLog records every commit status posted, by context.
type statusLog struct {
	mu  sync.Mutex
	got map[string][]string // context → states in order
}

func (l *statusLog) PostStatus(_ context.Context, _, _ string, st gitea.CommitStatus) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got[st.Context] = append(l.got[st.Context], st.State+": "+st.Description)
	return nil
}

func (l *statusLog) snapshot() map[string][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string][]string{}
	for k, v := range l.got {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// A 2×2 matrix: one push queues one job; the agent that claims it reads
// the pipeline, becomes the first combination and queues the other three
// in a group named by its id. Each combination sees its values and posts
// its own status; the plain context is the aggregate, pending first,
// failure once one combination failed.
func TestMatrixQueuesAGroupWithStatuses(t *testing.T) {
	testutil.RequireTool(t, "git")
	yml := "matrix:\n  a: [\"1\", \"2\"]\n  b: [x, y]\nsteps:\n  - name: test\n    run: echo combo=$RAIBID_MATRIX_A$RAIBID_MATRIX_B; test \"$RAIBID_MATRIX_A$RAIBID_MATRIX_B\" != 2y\n"
	dir, sha := testutil.GitRepo(t, map[string]string{".raibid.yml": yml})
	statuses := &statusLog{got: map[string][]string{}}
	e := startWith(t, func(o *server.Options) { o.Status = statuses })
	body, _ := json.Marshal(map[string]any{"ref": "refs/heads/main", "after": sha,
		"repository": map[string]any{"full_name": "acme/matrix", "clone_url": dir}})
	code, out := e.webhook(hook{body: body, delivery: "m-1"})
	first, _ := out["job_id"].(string)
	if code != 202 || first == "" {
		t.Fatalf("webhook = %d %v", code, out)
	}
	if code, again := e.webhook(hook{body: body, delivery: "m-1"}); code != 202 || again["duplicate"] != true || e.jobCount() != 1 {
		t.Fatalf("redelivery = %d %v, %d jobs", code, again, e.jobCount())
	}
	// The server's pending status for the event goes out in the
	// background; let it land first.
	testutil.Eventually(t, 5*time.Second, func() bool { return len(statuses.snapshot()) >= 1 })
	// The agent is another process: its own lifecycle, without the
	// server's hooks.
	own := testutil.NewJobs(e.redis.Client(), 30*time.Second)
	for range 4 {
		a := agent.New(agent.Options{Name: "m1", Jobs: own.Lifecycle, Store: own.Store, Status: statuses, WorkDir: t.TempDir(),
			Repos: agent.Repos{AllowLocal: true}, Once: true, Wait: 5 * time.Second, ClaimBlock: 200 * time.Millisecond})
		if err := a.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	group := first
	page, _, err := e.store.List(context.Background(), store.Filter{Group: group})
	if err != nil || len(page) != 4 {
		t.Fatalf("group list = %d, %v", len(page), err)
	}
	if j := e.job(first); ci.MatrixLabel(j.Matrix) != "a=1,b=x" || j.Group != group {
		t.Fatalf("the first job is %q in group %q", ci.MatrixLabel(j.Matrix), j.Group)
	}
	var ids []string
	for _, j := range page {
		ids = append(ids, j.ID)
	}
	var results []string
	for _, id := range ids {
		j := e.job(id)
		results = append(results, ci.MatrixLabel(j.Matrix)+"="+string(j.Status))
		if j.Group != group {
			t.Errorf("job %s group %q", j.ID, j.Group)
		}
	}
	sort.Strings(results)
	if got := strings.Join(results, " "); got != "a=1,b=x=success a=1,b=y=success a=2,b=x=success a=2,b=y=failed" {
		t.Fatalf("results %s", got)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return len(statuses.snapshot()) >= 5 })
	got := statuses.snapshot()
	for _, combo := range []string{"a=1,b=x", "a=1,b=y", "a=2,b=x", "a=2,b=y"} {
		states := got["raibid-ci/push/"+combo]
		want := "success"
		if combo == "a=2,b=y" {
			want = "failure"
		}
		if len(states) != 2 || !strings.HasPrefix(states[0], "pending") || !strings.HasPrefix(states[1], want) {
			t.Errorf("context raibid-ci/push/%s: %v", combo, states)
		}
	}
	agg := got["raibid-ci/push"]
	if len(agg) < 2 || !strings.HasPrefix(agg[0], "pending") || agg[len(agg)-1] != "failure: 1 of 4 matrix jobs did not pass" {
		t.Fatalf("aggregate: %v", agg)
	}

	// A group is found by the short id the CLI prints, or by a member's.
	member := ids[0]
	if member == group {
		member = ids[1]
	}
	for _, short := range []string{group[len(group)-8:], member[len(member)-8:]} {
		resp, body := e.do("GET", "/jobs?group="+short, "", token)
		var pg struct{ Jobs []ci.Job }
		json.Unmarshal(body, &pg)
		if resp.StatusCode != 200 || len(pg.Jobs) != 4 {
			t.Fatalf("GET /jobs?group=%s = %d, %d jobs: %s", short, resp.StatusCode, len(pg.Jobs), body)
		}
	}
	if resp, _ := e.do("GET", "/jobs?group=abcdef12", "", token); resp.StatusCode != 404 {
		t.Fatalf("an unknown short group: %d", resp.StatusCode)
	}
	b := newBrowser(t, e)
	b.login()
	if resp, page := b.get("/ui/?group=" + group[len(group)-8:]); resp.StatusCode != 200 || strings.Count(page, "a=") < 4 {
		t.Fatalf("/ui/?group=<short> = %d:\n%.600s", resp.StatusCode, page)
	}
	if resp, page := b.get("/ui/?group=xyz"); resp.StatusCode != 400 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(page, "<h1>400 Bad Request</h1>") || !strings.Contains(page, "group is not a group id") {
		t.Fatalf("/ui/?group=xyz = %d %s:\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), page)
	}

	// Retrying the group runs what did not pass, in the group; cancelling
	// it stops what is queued.
	resp, body := e.do("POST", "/groups/"+group+"/retry", "", token)
	var retried struct{ Jobs []ci.Job }
	json.Unmarshal(body, &retried)
	if resp.StatusCode != 201 || len(retried.Jobs) != 1 || ci.MatrixLabel(retried.Jobs[0].Matrix) != "a=2,b=y" || retried.Jobs[0].Group != group {
		t.Fatalf("group retry = %d %s", resp.StatusCode, body)
	}
	resp, body = e.do("POST", "/groups/"+group[len(group)-8:]+"/cancel", "", token)
	if resp.StatusCode != 200 || !strings.Contains(string(body), retried.Jobs[0].ID) {
		t.Fatalf("group cancel = %d %s", resp.StatusCode, body)
	}
	// The retry was cancelled before an agent took it: its pending status
	// is ended here (no agent will), and the matrix is decided again.
	got = statuses.snapshot()
	if s := got["raibid-ci/push/a=2,b=y"]; s[len(s)-1] != "error: cancelled" {
		t.Fatalf("the cancelled retry's statuses: %v", s)
	}
	if s := got["raibid-ci/push"]; s[len(s)-1] != "failure: 1 of 4 matrix jobs did not pass" {
		t.Fatalf("aggregate after the cancel: %v", s)
	}
	if resp, _ := e.do("POST", "/groups/"+strings.Repeat("0", 20)+"/cancel", "", token); resp.StatusCode != 404 {
		t.Fatalf("unknown group: %d", resp.StatusCode)
	}
}
