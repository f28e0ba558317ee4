package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
	"github.com/raibid-labs/raibid-ci/internal/forge/github"
	"github.com/raibid-labs/raibid-ci/internal/mirror"
	"github.com/raibid-labs/raibid-ci/internal/server"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
	"github.com/raibid-labs/raibid-ci/internal/testutil/fakeforge"
)

const githubSecret = "It's a Secret to Everybody"

type mirrorEnv struct {
	*env
	gh *fakeforge.GitHub
	gt *fakeforge.Gitea
}

// startMirrors runs the server with --mirrors against fake GitHub and Gitea
// APIs (no real forge can run here) and waits for the start-up rescan.
func startMirrors(t *testing.T, syncDelay time.Duration) *mirrorEnv {
	t.Helper()
	gh := fakeforge.NewGitHub(t, "ghp_tok")
	gh.AddOrg("acme", fakeforge.GitHubRepo{Name: "svc-api"}, fakeforge.GitHubRepo{Name: "website"})
	gt := fakeforge.NewGitea(t, "gitea_tok")
	gt.AddOrg("acme")
	gt.SyncDelay = syncDelay
	cfg, err := mirror.Parse("mirrors.yaml", []byte("mirrors:\n  - {type: org, source: acme, include: [\"^svc-\"]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	svc := mirror.NewService(mirror.ServiceOptions{Config: cfg,
		GitHub: github.NewClient(gh.URL, "ghp_tok", nil), Gitea: gitea.NewClient(gt.URL, "gitea_tok", nil),
		GitHubToken: "ghp_tok"})
	e := startWith(t, func(o *server.Options) { o.Features = append(o.Features, server.Mirrors(svc, githubSecret)) })
	if !testutil.Eventually(t, 10*time.Second, func() bool { r, ok := gt.Repo("acme/svc-api"); return ok && r.Mirror }) {
		t.Fatal("the start-up rescan did not create acme/svc-api")
	}
	return &mirrorEnv{env: e, gh: gh, gt: gt}
}

func (e *mirrorEnv) githubHook(event string, body []byte, sig string) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.url+"/webhook/github-sync", bytes.NewReader(body))
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("Content-Type", "application/json")
	if sig == "" {
		sig = github.Sign([]byte(githubSecret), body)
	}
	req.Header.Set("X-Hub-Signature-256", sig)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func pushOf(repo string) []byte {
	return []byte(`{"ref":"refs/heads/main","after":"1111111111111111111111111111111111111111","repository":{"full_name":"` + repo + `"}}`)
}

func TestGitHubSyncWebhookAnswersBeforeGiteaAndSyncsTheMirror(t *testing.T) {
	e := startMirrors(t, 2*time.Second) // Gitea slower than GitHub's patience allows to wait for

	if code, out := e.githubHook("ping", []byte(`{"zen":"Keep it logically awesome.","hook_id":1}`), ""); code != 200 || out["ignored"] != "ping" {
		t.Fatalf("ping: %d %v", code, out)
	}
	if code, _ := e.githubHook("push", pushOf("acme/svc-api"), "sha256=00"); code != 401 {
		t.Fatalf("bad signature: %d, want 401", code)
	}
	if code, _ := e.githubHook("push", pushOf("acme/svc-api"), strings.Replace(github.Sign([]byte(githubSecret), pushOf("acme/svc-api")), "sha256=", "sha1=", 1)); code != 401 {
		t.Fatalf("sha1 prefix: %d, want 401", code)
	}
	if code, out := e.githubHook("push", pushOf("acme/website"), ""); code != 200 || !strings.Contains(out["ignored"].(string), "not mirrored") {
		t.Fatalf("unmirrored repo: %d %v", code, out)
	}
	if code, _ := e.githubHook("push", []byte(`{"ref":1}`), ""); code != 400 {
		t.Fatalf("malformed: %d, want 400", code)
	}

	start := time.Now()
	code, out := e.githubHook("push", pushOf("acme/svc-api"), "")
	answered := time.Since(start)
	if code != 202 || out["mirror"] != "acme/svc-api" {
		t.Fatalf("push: %d %v", code, out)
	}
	if answered >= time.Second {
		t.Fatalf("webhook answered after %s; it must not wait for Gitea", answered)
	}
	// Two more pushes while the first sync is in flight coalesce into one call.
	e.githubHook("push", pushOf("acme/svc-api"), "")
	e.githubHook("push", pushOf("acme/svc-api"), "")
	testutil.Eventually(t, 10*time.Second, func() bool { return len(e.gt.Syncs()) >= 2 })
	// A third call would have landed within this.
	testutil.Consistently(t, 2500*time.Millisecond, func() bool { return len(e.gt.Syncs()) == 2 })
	if got := e.gt.Syncs(); !slices.Equal(got, []string{"acme/svc-api", "acme/svc-api"}) {
		t.Fatalf("gitea mirror-syncs = %q, want two (the first push, then the coalesced rest)", got)
	}
}

func TestMirrorsEndpointsAndMetrics(t *testing.T) {
	e := startMirrors(t, 0)
	resp, _ := e.do("GET", "/mirrors", "", "")
	if resp.StatusCode != 401 {
		t.Fatalf("GET /mirrors without token: %d", resp.StatusCode)
	}
	resp, body := e.do("GET", "/mirrors", "", token)
	var list struct {
		Enabled bool            `json:"enabled"`
		Mirrors []mirror.Mirror `json:"mirrors"`
	}
	if err := json.Unmarshal(body, &list); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /mirrors: %d %s", resp.StatusCode, body)
	}
	if !list.Enabled || len(list.Mirrors) != 1 || list.Mirrors[0].Target != "acme/svc-api" || list.Mirrors[0].Stale {
		t.Fatalf("mirrors = %+v", list)
	}

	resp, body = e.do("POST", "/mirrors/acme/svc-api/sync", "", token)
	if resp.StatusCode != 202 {
		t.Fatalf("manual sync: %d %s", resp.StatusCode, body)
	}
	if got := e.gt.Syncs(); len(got) != 1 {
		t.Fatalf("gitea syncs = %q", got)
	}
	resp, body = e.do("POST", "/mirrors/acme/website/sync", "", token)
	if resp.StatusCode != 404 || !strings.Contains(string(body), "not a mirror") {
		t.Fatalf("sync of an unmirrored repo: %d %s", resp.StatusCode, body)
	}
	resp, body = e.do("GET", "/mirrors", "", token)
	_ = json.Unmarshal(body, &list)
	if resp.StatusCode != 200 || list.Mirrors[0].LastTriggered.IsZero() || list.Mirrors[0].LastError != "" {
		t.Fatalf("after a manual sync: %+v", list.Mirrors[0])
	}

	_, metrics := e.do("GET", "/metrics", "", token)
	for _, want := range []string{
		`raibid_mirror_sync_duration_seconds_count{op="migrate"} 1`,
		`raibid_mirror_sync_duration_seconds_count{op="mirror-sync"} 1`,
		`raibid_mirror_last_sync_timestamp_seconds{repo="acme/svc-api"}`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestMirrorSyncErrorsAreCountedAndShown(t *testing.T) {
	e := startMirrors(t, 0)
	e.gt.AddRepo(fakeforge.GiteaRepo{Owner: "acme", Name: "svc-api"}) // replaced by a non-mirror
	resp, body := e.do("POST", "/mirrors/acme/svc-api/sync", "", token)
	if resp.StatusCode != 502 || !strings.Contains(string(body), "not a mirror") {
		t.Fatalf("sync of a broken mirror: %d %s", resp.StatusCode, body)
	}
	_, metrics := e.do("GET", "/metrics", "", token)
	if !strings.Contains(string(metrics), `raibid_mirror_sync_errors_total{op="mirror-sync"} 1`) {
		t.Error("the failed sync is not counted")
	}
}

// Mirroring off (no --mirrors): the routes are there and say so.
func TestMirrorsOff(t *testing.T) {
	e := startWith(t, func(o *server.Options) { o.Features = append(o.Features, server.Mirrors(nil, "")) })
	resp, body := e.do("GET", "/mirrors", "", token)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"enabled":false`) {
		t.Fatalf("GET /mirrors without --mirrors: %d %s", resp.StatusCode, body)
	}
	code, out := (&mirrorEnv{env: e}).githubHook("push", pushOf("a/b"), github.Sign([]byte(secret), pushOf("a/b")))
	if code != 200 || !strings.Contains(out["ignored"].(string), "not configured") {
		t.Fatalf("github-sync without mirrors: %d %v", code, out)
	}
}

// A push for a repository new on GitHub, in a mirrored organisation and
// matching its filters, gets its mirror at once (not at the next rescan);
// names match case-insensitively, as on GitHub.
func TestPushOfANewRepositoryCreatesItsMirror(t *testing.T) {
	e := startMirrors(t, 0)
	e.gh.AddOrg("acme", fakeforge.GitHubRepo{Name: "svc-new"})
	code, out := e.githubHook("push", pushOf("ACME/Svc-New"), "")
	if code != 202 {
		t.Fatalf("push: %d %v", code, out)
	}
	if !testutil.Eventually(t, 10*time.Second, func() bool { r, ok := e.gt.Repo("acme/svc-new"); return ok && r.Mirror }) {
		t.Fatalf("no mirror of the new repository; migrations %+v", e.gt.Migrations())
	}
}
