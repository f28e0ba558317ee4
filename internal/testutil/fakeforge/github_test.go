package fakeforge_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raibid-labs/raibid-ci/internal/testutil"
	"github.com/raibid-labs/raibid-ci/internal/testutil/fakeforge"
)

// The fake GitHub serves a repository's git over HTTP at its clone_url:
// real git clones it, and a repository it does not serve is not found.
func TestFakeGitHubServesGitOverHTTP(t *testing.T) {
	src, sha := testutil.GitRepo(t, map[string]string{"README": "tool\n"})
	bare := filepath.Join(t.TempDir(), "tool.git")
	if out, err := exec.Command("git", "clone", "-q", "--bare", src, bare).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	gh := fakeforge.NewGitHub(t, "tok")
	gh.ServeGit("alice", "tool", bare)
	dst := filepath.Join(t.TempDir(), "clone")
	if out, err := exec.Command("git", "clone", "-q", gh.CloneURL("alice", "tool"), dst).CombinedOutput(); err != nil {
		t.Fatalf("clone: %v %s", err, out)
	}
	head, _ := exec.Command("git", "-C", dst, "rev-parse", "HEAD").Output()
	if strings.TrimSpace(string(head)) != sha {
		t.Fatalf("cloned HEAD %s, want %s", head, sha)
	}
	if err := exec.Command("git", "clone", "-q", gh.CloneURL("alice", "missing"), filepath.Join(t.TempDir(), "x")).Run(); err == nil {
		t.Fatal("a repository the fake does not serve was cloned")
	}
}
