package gitea_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
)

// fakeGiteaStatusAPI checks requests against Gitea's documented
// POST /api/v1/repos/{owner}/{repo}/statuses/{sha}: token auth header, JSON
// body with state in Gitea's set, context, description, target_url; 201.
type fakeGiteaStatusAPI struct {
	t        *testing.T
	mu       sync.Mutex
	got      []gitea.CommitStatus
	paths    []string
	failures int // answer 503 this many times first
}

func (f *fakeGiteaStatusAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failures > 0 {
		f.failures--
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/api/v1/repos/") || !strings.Contains(r.URL.Path, "/statuses/") {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if r.Header.Get("Authorization") != "token gitea-tok" {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		http.Error(w, "content type", http.StatusUnsupportedMediaType)
		return
	}
	var raw map[string]any
	if err := json.NewDecoder(r.Body).Decode(&raw); err != nil {
		http.Error(w, "bad json", http.StatusUnprocessableEntity)
		return
	}
	for k := range raw {
		if k != "state" && k != "target_url" && k != "description" && k != "context" {
			f.t.Errorf("unknown field %q in status body", k)
		}
	}
	st := gitea.CommitStatus{State: raw["state"].(string), Context: raw["context"].(string), Description: raw["description"].(string)}
	if tu, ok := raw["target_url"].(string); ok {
		st.TargetURL = tu
	}
	switch st.State {
	case "pending", "success", "error", "failure", "warning":
	default:
		http.Error(w, "invalid state", http.StatusUnprocessableEntity)
		return
	}
	f.got = append(f.got, st)
	f.paths = append(f.paths, r.URL.Path)
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(map[string]any{"id": len(f.got), "status": st.State, "context": st.Context})
}

func TestPostStatusMatchesGiteaAPI(t *testing.T) {
	fake := &fakeGiteaStatusAPI{t: t, failures: 2}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	c := gitea.NewClient(srv.URL+"/", "gitea-tok", nil)
	post := func() error {
		return c.PostStatus(context.Background(), "acme/widget", "bffeb74224043ba2feb48d137756c8a9331c449a",
			gitea.CommitStatus{State: gitea.StateSuccess, TargetURL: "http://ci.local/jobs/x", Description: "passed in 12s"})
	}
	for range 2 { // an outage: worth another try, not a refusal
		if err := post(); err == nil || errors.Is(err, gitea.ErrRejected) {
			t.Fatalf("post during an outage: %v", err)
		}
	}
	if err := post(); err != nil {
		t.Fatalf("post after 2 outages: %v", err)
	}
	if len(fake.got) != 1 || fake.got[0].Context != "raibid-ci/push" || fake.got[0].State != "success" ||
		fake.paths[0] != "/api/v1/repos/acme/widget/statuses/bffeb74224043ba2feb48d137756c8a9331c449a" {
		t.Fatalf("got %+v at %v", fake.got, fake.paths)
	}
	bad := gitea.NewClient(srv.URL, "wrong-token-value", nil)
	err := bad.PostStatus(context.Background(), "acme/widget", "abc", gitea.CommitStatus{State: "success"})
	if !errors.Is(err, gitea.ErrRejected) || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "wrong-token-value") {
		t.Fatalf("unauthorized: %v", err)
	}
}

// One commit's builds of different events keep statuses apart: the last to
// finish never overwrites another event's.
func TestContextNamesTheEvent(t *testing.T) {
	cases := map[[2]string]string{
		{"push", ""}:                     "raibid-ci/push",
		{"", ""}:                         "raibid-ci/push",
		{"pull_request", ""}:             "raibid-ci/pr",
		{"tag", ""}:                      "raibid-ci/tag",
		{"cron", ""}:                     "raibid-ci/cron",
		{"manual", ""}:                   "raibid-ci/manual",
		{"pull_request", "os=linux,v=2"}: "raibid-ci/pr/os=linux,v=2",
	}
	seen := map[string]bool{}
	for in, want := range cases {
		got := gitea.ContextOf(in[0], in[1])
		if got != want {
			t.Errorf("ContextOf(%q, %q) = %q, want %q", in[0], in[1], got, want)
		}
		seen[got] = true
	}
	if len(seen) != len(cases)-1 { // "" and push are one
		t.Errorf("contexts collide: %v", seen)
	}
}
