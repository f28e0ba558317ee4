package cli

import (
	"context"
	"errors"
	"testing"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
	"github.com/raibid-labs/raibid-ci/internal/testutil/fakeforge"
)

// A manual job's branch resolves to its head: a local checkout with git
// (raibid up only), a Gitea repository through Gitea's API (here the
// project's fake Gitea); a branch that does not exist is ci.ErrNotFound.
func TestBranchHeads(t *testing.T) {
	ctx := context.Background()
	dir, sha := testutil.GitRepo(t, map[string]string{"README": "hi\n"})
	testutil.Git(t, dir, "branch", "-M", "main")
	local := forgeRepos{allowLocal: true}
	if got, err := local.BranchHead(ctx, "local/x", dir, "main"); err != nil || got != sha {
		t.Fatalf("local main = %q, %v; want %s", got, err, sha)
	}
	if _, err := local.BranchHead(ctx, "local/x", dir, "nope"); !errors.Is(err, ci.ErrNotFound) {
		t.Fatalf("local missing branch: %v", err)
	}
	if got, err := (forgeRepos{}).BranchHead(ctx, "local/x", dir, "main"); got != "" || err != nil {
		t.Fatalf("local path on a server without local clones = %q, %v", got, err)
	}

	fake := fakeforge.NewGitea(t, "tok")
	fake.SetBranch("acme/widget", "feature/x", "c0ffee0000000000000000000000000000000003")
	forge := forgeRepos{gitea: gitea.NewClient(fake.URL, "tok", nil)}
	if got, err := forge.BranchHead(ctx, "acme/widget", fake.URL+"/acme/widget.git", "feature/x"); err != nil || got != "c0ffee0000000000000000000000000000000003" {
		t.Fatalf("gitea feature/x = %q, %v", got, err)
	}
	if _, err := forge.BranchHead(ctx, "acme/widget", "", "gone"); !errors.Is(err, ci.ErrNotFound) {
		t.Fatalf("gitea missing branch: %v", err)
	}
	if got, err := forge.BranchHead(ctx, "acme/widget", "http://elsewhere.example/acme/widget.git", "main"); got != "" || err != nil {
		t.Fatalf("another host = %q, %v", got, err)
	}
}
