package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raibid-labs/raibid-ci/internal/testutil/fakeforge"
)

// raibidMirror runs `raibid mirror ...` with the tokens in the environment,
// as the docs tell users to.
func raibidMirror(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"mirror"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	_ = cmd.Run()
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

// The binary against fake GitHub and Gitea APIs (neither can run here).
func TestMirrorCommandAgainstFakeForges(t *testing.T) {
	gh := fakeforge.NewGitHub(t, "ghp_e2e_token")
	var repos []fakeforge.GitHubRepo
	for i := range 120 {
		repos = append(repos, fakeforge.GitHubRepo{Name: fmt.Sprintf("svc-%03d", i)})
	}
	gh.AddOrg("acme", append(repos, fakeforge.GitHubRepo{Name: "website"})...)
	gt := fakeforge.NewGitea(t, "gitea_e2e_token")
	gt.AddOrg("acme")
	file := filepath.Join(t.TempDir(), "mirrors.yaml")
	os.WriteFile(file, []byte("mirrors:\n  - {type: org, source: acme, exclude: [\"^website$\"], interval: 1h}\n"), 0o644)
	env := []string{"RAIBID_GITHUB_TOKEN=ghp_e2e_token", "RAIBID_GITEA_TOKEN=gitea_e2e_token",
		"RAIBID_GITEA_URL=" + gt.URL, "RAIBID_GITHUB_API_URL=" + gh.URL}

	out, errOut, code := raibidMirror(t, env, "plan", "-f", file)
	if code != 0 || !strings.Contains(out, "120 create, 1 excluded") || !strings.Contains(out, "acme/website") {
		t.Fatalf("plan: exit %d\n%s%s", code, out, errOut)
	}
	if len(gt.Migrations()) != 0 {
		t.Fatal("plan created mirrors")
	}

	out, errOut, code = raibidMirror(t, env, "sync", "-f", file, "-o", "json")
	var items []struct{ Action, Target string }
	if err := json.Unmarshal([]byte(out), &items); err != nil || code != 0 {
		t.Fatalf("sync -o json: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	created := 0
	for _, it := range items {
		if it.Action == "created" {
			created++
		}
	}
	if created != 120 || len(gt.Migrations()) != 120 {
		t.Fatalf("sync created %d (gitea saw %d), want 120", created, len(gt.Migrations()))
	}
	if strings.Contains(out+errOut, "ghp_e2e_token") || strings.Contains(out+errOut, "gitea_e2e_token") {
		t.Fatal("a token reached the output")
	}

	out, _, code = raibidMirror(t, env, "sync", "-f", file)
	if code != 0 || !strings.Contains(out, "120 exists") || len(gt.Migrations()) != 120 {
		t.Fatalf("second sync: exit %d, %d migrations\n%s", code, len(gt.Migrations()), out)
	}

	out, _, code = raibidMirror(t, env, "list", "-f", file)
	if code != 0 || !strings.Contains(out, "acme/svc-119") || !strings.Contains(out, "120 mirrors, 0 stale") {
		t.Fatalf("list: exit %d\n%s", code, out)
	}
	out, _, code = raibidMirror(t, env, "list", "-f", file, "-o", "json")
	var list []struct {
		Target string
		Stale  bool
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 120 || code != 0 {
		t.Fatalf("list -o json: exit %d, %v, %d mirrors", code, err, len(list))
	}

	// A failed migration's leftover: sync says so and exits 1; --repair fixes it.
	gh.AddOrg("acme", fakeforge.GitHubRepo{Name: "svc-new"})
	gt.FailNextMigration("acme/svc-new", "clone failed: connection reset")
	_, _, code = raibidMirror(t, env, "sync", "-f", file)
	if code != 1 {
		t.Fatalf("sync with a failing migration: exit %d, want 1", code)
	}
	out, errOut, code = raibidMirror(t, env, "sync", "-f", file)
	if code != 1 || !strings.Contains(out, "--repair") || !strings.Contains(errOut, "1 of 122 repositories were not mirrored") {
		t.Fatalf("sync over a leftover: exit %d\n%s%s", code, out, errOut)
	}
	out, _, code = raibidMirror(t, env, "sync", "-f", file, "--repair")
	if code != 0 || !strings.Contains(out, "1 repaired") {
		t.Fatalf("sync --repair: exit %d\n%s", code, out)
	}

	_, errOut, code = raibidMirror(t, env, "plan", "-f", file, "-o", "yaml")
	if code != 2 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("bad --output: exit %d, %q", code, errOut)
	}
}
