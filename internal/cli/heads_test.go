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

// The server reads .raibid.yml at the pushed commit: from a local checkout
// with git (raibid up only), from Gitea through its raw-file API (the
// project's fake Gitea here); no file is nil, nil.
func TestPipelineFiles(t *testing.T) {
	ctx := context.Background()
	yml := "when: {event: tag}\nsteps:\n  - {name: a, run: x}\n"
	dir, sha := testutil.GitRepo(t, map[string]string{".raibid.yml": yml})
	local := forgeRepos{allowLocal: true}
	if b, err := local.PipelineFile(ctx, "local/x", dir, sha); err != nil || string(b) != yml {
		t.Fatalf("local = %q, %v", b, err)
	}
	plain, plainSHA := testutil.GitRepo(t, map[string]string{"Cargo.toml": ""})
	if b, err := local.PipelineFile(ctx, "local/y", plain, plainSHA); b != nil || err != nil {
		t.Fatalf("no file = %q, %v", b, err)
	}
	if b, _ := (forgeRepos{}).PipelineFile(ctx, "local/x", dir, sha); b != nil {
		t.Fatal("a server without local clones read a local path")
	}
	fake := fakeforge.NewGitea(t, "tok")
	fake.SetFile("acme/widget", sha, ".raibid.yml", yml)
	forge := forgeRepos{gitea: gitea.NewClient(fake.URL, "tok", nil)}
	if b, err := forge.PipelineFile(ctx, "acme/widget", fake.URL+"/acme/widget.git", sha); err != nil || string(b) != yml {
		t.Fatalf("gitea = %q, %v", b, err)
	}
	if b, err := forge.PipelineFile(ctx, "acme/widget", fake.URL+"/acme/widget.git", plainSHA); b != nil || err != nil {
		t.Fatalf("gitea without the file = %q, %v", b, err)
	}
}
