package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// TestHostileCloneInputsRunNothing feeds the agent's clone clone URLs,
// branches and commits that git would read as options or as a transport that
// runs a command. Each must be refused, and none may create its marker file.
// (The server refuses the same inputs when a job is queued; this is the
// agent's own defence, for entries that reach the stream another way.)
func TestHostileCloneInputsRunNothing(t *testing.T) {
	testutil.RequireTool(t, "git")
	repo, commit := testutil.GitRepo(t, map[string]string{"README": "hi\n"})
	tmp := t.TempDir()
	marker := filepath.Join(tmp, "pwned")
	cmd := "touch " + marker
	cases := []struct{ name, cloneURL, branch, commit string }{
		{"file upload-pack", "file://--upload-pack=" + cmd + ";", "main", ""},
		{"bare option", "--upload-pack=" + cmd, "main", ""},
		{"ssh proxy command option", "-oProxyCommand=" + cmd, "main", ""},
		{"ssh proxy command host", "ssh://-oProxyCommand=" + strings.ReplaceAll(cmd, " ", "%20") + "/x", "main", ""},
		{"ext transport", "ext::sh -c " + strings.ReplaceAll(cmd, " ", "% "), "main", ""},
		{"ext in http clothing", "http://x@ext::sh -c " + cmd, "main", ""},
		{"relative path", "repo/../" + filepath.Base(repo), "main", ""},
		{"branch as option", repo, "--upload-pack=" + cmd, ""},
		{"branch as short option", repo, "-u" + cmd, ""},
		{"commit as option", repo, "main", "--upload-pack=" + cmd},
		{"commit as revision expression", repo, "main", commit[:7] + "^{/x}"},
		{"branch with dotdot", repo, "main..x", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := Repos{AllowLocal: true}
			err := src.clone(context.Background(), filepath.Join(tmp, "mirrors"), filepath.Join(tmp, "ws-"+strings.ReplaceAll(c.name, " ", "-")),
				c.cloneURL, c.branch, c.commit, false, true, nil)
			if err == nil {
				t.Fatalf("clone(%q, %q, %q) succeeded", c.cloneURL, c.branch, c.commit)
			}
			if !errors.Is(err, errCloneRefused) {
				t.Fatalf("clone(%q, %q, %q): %v, want a refusal before git runs", c.cloneURL, c.branch, c.commit, err)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatalf("clone(%q, %q, %q) ran the injected command", c.cloneURL, c.branch, c.commit)
			}
		})
	}
	// The same source still clones an honest request.
	src := Repos{AllowLocal: true}
	if err := src.clone(context.Background(), filepath.Join(tmp, "mirrors"), filepath.Join(tmp, "ws-ok"), "file://"+repo, "main", commit, false, true, nil); err != nil {
		t.Fatalf("honest clone: %v", err)
	}
}

// TestLocalCloneNeedsExistingDirectory: with local clones allowed, a path
// that is not a directory is refused before git runs.
func TestLocalCloneNeedsExistingDirectory(t *testing.T) {
	src := Repos{AllowLocal: true}
	for _, p := range []string{"/nonexistent/raibid/repo", "/etc/hostname"} {
		if err := src.check(p); !errors.Is(err, errCloneRefused) {
			t.Errorf("check(%q) = %v, want refused", p, err)
		}
	}
	if err := (Repos{}).check(t.TempDir()); !errors.Is(err, errCloneRefused) {
		t.Errorf("local clone without AllowLocal accepted: %v", err)
	}
}

// Another name of the forge (its ROOT_URL host) is accepted and fetched
// from the configured forge URL, path kept; any other host is refused.
func TestCloneHostAliasesFetchFromTheForge(t *testing.T) {
	r := Repos{ForgeURL: "http://gitea-http.infrastructure.svc.cluster.local:3000", Hosts: []string{"gitea.dgx.local:3000"}}
	in := "http://gitea.dgx.local:3000/acme/widget.git"
	if err := r.check(in); err != nil {
		t.Fatal(err)
	}
	if got := r.fetchURL(in); got != "http://gitea-http.infrastructure.svc.cluster.local:3000/acme/widget.git" {
		t.Fatalf("fetch from %s", got)
	}
	if got := r.fetchURL("http://gitea-http.infrastructure.svc.cluster.local:3000/acme/widget.git"); got != "http://gitea-http.infrastructure.svc.cluster.local:3000/acme/widget.git" {
		t.Fatalf("the forge's own URL changed: %s", got)
	}
	if err := r.check("http://gitea.dgx.local:3001/acme/widget.git"); !errors.Is(err, errCloneRefused) || !strings.Contains(err.Error(), "also gitea.dgx.local:3000") {
		t.Fatalf("another port: %v", err)
	}
}
