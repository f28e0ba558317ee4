//go:build forge

package forge_test

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
	"github.com/raibid-labs/raibid-ci/internal/forge/github"
	"github.com/raibid-labs/raibid-ci/internal/mirror"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
	"github.com/raibid-labs/raibid-ci/internal/testutil/fakeforge"
)

// Mirroring into the real Gitea: the GitHub API side is the fake (GitHub
// cannot run here), but it serves real git over HTTP, so Gitea's migration
// really clones. plan shows what to create; sync (making the missing
// organisation, with the token's documented write:organization) makes a
// pull mirror whose
// branch is the source's commit; a source Gitea cannot clone leaves the
// empty repository Gitea itself leaves behind, which plan reports and
// sync --repair replaces once the source clones.
func TestMirrorPlanSyncRepairIntoGitea(t *testing.T) {
	ctx := t.Context()
	const ghToken = "ghp_forge_suite"
	gh := fakeforge.NewGitHub(t, ghToken)
	src, sha := testutil.GitRepo(t, map[string]string{"README": "tool\n"})
	bare := filepath.Join(t.TempDir(), "tool.git")
	if out, err := exec.Command("git", "clone", "-q", "--bare", src, bare).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	gh.AddOrg("octo", fakeforge.GitHubRepo{Name: "tool"}, fakeforge.GitHubRepo{Name: "broken"})
	gh.ServeGit("octo", "tool", bare) // "broken" is listed, but its git is not served yet

	cfg, err := mirror.Parse("mirrors.yaml", []byte("mirrors:\n  - {type: org, source: octo}\n"))
	if err != nil {
		t.Fatal(err)
	}
	ghc := github.NewClient(gh.URL, ghToken, nil)
	gtc := gitea.NewClient(gt.URL, gt.Token, nil)
	plan, err := mirror.Plan(ctx, cfg, ghc, gtc)
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(plan); got["octo/tool"] != mirror.ActionCreate || got["octo/broken"] != mirror.ActionCreate {
		t.Fatalf("first plan %v", got)
	}
	done := actions(mirror.Sync(ctx, plan, gtc, mirror.SyncOptions{GitHubToken: ghToken, CreateOwners: true}))
	if done["octo/tool"] != mirror.ActionCreated || done["octo/broken"] != mirror.ActionFailed {
		t.Fatalf("sync: %v", done)
	}
	repo, err := gtc.GetRepo(ctx, "octo", "tool")
	if err != nil || !repo.Mirror {
		t.Fatalf("the mirror in Gitea: %+v, %v", repo, err)
	}
	if head, err := gtc.BranchHead(ctx, "octo/tool", "main"); err != nil || head != sha {
		t.Fatalf("the mirror's main = %q, %v; the source's is %s", head, err, sha)
	}

	// Gitea left the failed migration's empty repository: plan says so,
	// and sync --repair migrates again once the source clones.
	plan, err = mirror.Plan(ctx, cfg, ghc, gtc)
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(plan); got["octo/tool"] != mirror.ActionExists || got["octo/broken"] != mirror.ActionConflict || !leftover(plan, "octo/broken") {
		t.Fatalf("plan after the failure %v (%+v)", got, plan)
	}
	gh.ServeGit("octo", "broken", bare)
	if done := actions(mirror.Sync(ctx, plan, gtc, mirror.SyncOptions{GitHubToken: ghToken, Repair: true})); done["octo/broken"] != mirror.ActionRepaired {
		t.Fatalf("repair: %v", done)
	}
	if head, err := gtc.BranchHead(ctx, "octo/broken", "main"); err != nil || head != sha {
		t.Fatalf("the repaired mirror's main = %q, %v", head, err)
	}
}

func actions(items []mirror.Item) map[string]mirror.Action {
	out := map[string]mirror.Action{}
	for _, it := range items {
		out[it.Source] = it.Action
	}
	return out
}

func leftover(items []mirror.Item, source string) bool {
	for _, it := range items {
		if it.Source == source {
			return it.Leftover
		}
	}
	return false
}
