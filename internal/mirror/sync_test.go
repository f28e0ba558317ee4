package mirror_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
	"github.com/raibid-labs/raibid-ci/internal/forge/github"
	"github.com/raibid-labs/raibid-ci/internal/mirror"
	"github.com/raibid-labs/raibid-ci/internal/testutil/fakeforge"
)

const (
	githubToken = "ghp_mirror_source_token"
	giteaToken  = "gitea_admin_token"
)

type forges struct {
	gh  *fakeforge.GitHub
	gt  *fakeforge.Gitea
	ghc *github.Client
	gtc *gitea.Client
}

// newForges builds a fake GitHub with an org "acme" of 230 repositories (three
// pages of 100) and a user "alice", and a fake Gitea with the owners.
func newForges(t *testing.T) *forges {
	t.Helper()
	f := &forges{gh: fakeforge.NewGitHub(t, githubToken), gt: fakeforge.NewGitea(t, giteaToken)}
	var repos []fakeforge.GitHubRepo
	for i := range 228 {
		repos = append(repos, fakeforge.GitHubRepo{Name: fmt.Sprintf("svc-%03d", i)})
	}
	repos = append(repos, fakeforge.GitHubRepo{Name: "svc-old-archive"}, fakeforge.GitHubRepo{Name: "website", Private: true})
	f.gh.AddOrg("acme", repos...)
	f.gh.AddUser("alice", fakeforge.GitHubRepo{Name: "tool", Description: "a <b>tool</b>"})
	f.gt.AddOrg("acme")
	f.gt.AddOrg("mirrors")
	f.ghc = github.NewClient(f.gh.URL, githubToken, nil)
	f.gtc = gitea.NewClient(f.gt.URL, giteaToken, nil)
	return f
}

func parse(t *testing.T, y string) *mirror.Config {
	t.Helper()
	cfg, err := mirror.Parse("mirrors.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func count(items []mirror.Item) map[mirror.Action]int {
	out := map[mirror.Action]int{}
	for _, it := range items {
		out[it.Action]++
	}
	return out
}

const orgAndSingle = `
defaults: {owner: mirrors, interval: 2h}
mirrors:
  - {type: org, source: acme, include: ["^svc-"], exclude: ["-archive$"]}
  - {type: single, source: alice/tool}
  - {type: single, source: alice/gone}
`

func TestPlanSyncIsIdempotentAgainstFakeForges(t *testing.T) {
	f := newForges(t)
	cfg := parse(t, orgAndSingle)
	ctx := t.Context()

	plan, err := mirror.Plan(ctx, cfg, f.ghc, f.gtc)
	if err != nil {
		t.Fatal(err)
	}
	got := count(plan)
	want := map[mirror.Action]int{mirror.ActionCreate: 229, mirror.ActionExcluded: 2, mirror.ActionError: 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("plan = %v, want %v", got, want)
	}
	if n := len(f.gt.Migrations()); n != 0 {
		t.Fatalf("plan migrated %d repositories; a plan changes nothing", n)
	}
	for _, it := range plan {
		if it.Source == "acme/website" && (it.Action != mirror.ActionExcluded || it.Reason != "matches no include pattern") {
			t.Errorf("website: %+v", it)
		}
		if it.Source == "acme/svc-old-archive" && !strings.Contains(it.Reason, "exclude") {
			t.Errorf("archive: %+v", it)
		}
	}

	res := mirror.Sync(ctx, plan, f.gtc, mirror.SyncOptions{GitHubToken: githubToken})
	if got := count(res)[mirror.ActionCreated]; got != 229 {
		t.Fatalf("sync created %d, want 229: %v", got, count(res))
	}
	migs := f.gt.Migrations()
	if len(migs) != 229 {
		t.Fatalf("gitea saw %d migrations", len(migs))
	}
	for _, m := range migs {
		if !m.Mirror || m.Service != "github" || m.AuthToken != githubToken || m.MirrorInterval != "2h0m0s" {
			t.Fatalf("migration %+v: want mirror, service github, the GitHub token and the interval", m)
		}
	}
	tool, ok := f.gt.Repo("mirrors/tool")
	if !ok || !tool.Mirror || tool.OriginalURL != f.gh.CloneURL("alice", "tool") || tool.Description != "a <b>tool</b>" {
		t.Fatalf("mirrors/tool = %+v, %v", tool, ok)
	}

	// A second run finds everything in place and creates nothing.
	plan2, err := mirror.Plan(ctx, cfg, f.ghc, f.gtc)
	if err != nil {
		t.Fatal(err)
	}
	if got := count(plan2); got[mirror.ActionExists] != 229 || got[mirror.ActionCreate] != 0 {
		t.Fatalf("second plan = %v, want 229 exists", got)
	}
	mirror.Sync(ctx, plan2, f.gtc, mirror.SyncOptions{GitHubToken: githubToken})
	if n := len(f.gt.Migrations()); n != 229 {
		t.Fatalf("second sync migrated %d more", n-229)
	}

	// GitHub was paged 100 at a time.
	pages := 0
	for _, r := range f.gh.Requests() {
		if strings.HasPrefix(r, "GET /orgs/acme/repos") {
			pages++
		}
	}
	if pages != 6 { // 3 pages, two plans
		t.Errorf("org listing requests = %d, want 3 per plan", pages)
	}
}

func TestConflictsAreReportedNotOverwrittenAgainstFakeForges(t *testing.T) {
	f := newForges(t)
	f.gt.AddRepo(fakeforge.GiteaRepo{Owner: "mirrors", Name: "tool", Empty: false}) // someone's own repository
	f.gt.AddRepo(fakeforge.GiteaRepo{Owner: "acme", Name: "svc-001", Mirror: true, OriginalURL: "https://example.com/other.git"})
	cfg := parse(t, orgAndSingle)
	plan, err := mirror.Plan(t.Context(), cfg, f.ghc, f.gtc)
	if err != nil {
		t.Fatal(err)
	}
	res := mirror.Sync(t.Context(), plan, f.gtc, mirror.SyncOptions{Repair: true})
	for _, it := range res {
		switch it.Target {
		case "mirrors/tool":
			if it.Action != mirror.ActionConflict || !strings.Contains(it.Reason, "not a mirror") {
				t.Errorf("mirrors/tool: %+v", it)
			}
		case "acme/svc-001":
			if it.Action != mirror.ActionConflict || !strings.Contains(it.Reason, "another source") {
				t.Errorf("acme/svc-001: %+v", it)
			}
		}
	}
	if r, _ := f.gt.Repo("mirrors/tool"); r.Mirror {
		t.Fatal("a repository that is not a mirror was replaced, even with --repair")
	}
}

func TestFailedMigrationLeftoverIsDetectedAndRepairedAgainstFakeForges(t *testing.T) {
	f := newForges(t)
	cfg := parse(t, "defaults: {owner: mirrors}\nmirrors:\n  - {type: single, source: alice/tool}\n")
	f.gt.FailNextMigration("mirrors/tool", "migrate: clone: remote hung up")

	plan, err := mirror.Plan(t.Context(), cfg, f.ghc, f.gtc)
	if err != nil {
		t.Fatal(err)
	}
	res := mirror.Sync(t.Context(), plan, f.gtc, mirror.SyncOptions{})
	if res[0].Action != mirror.ActionFailed || !strings.Contains(res[0].Reason, "remote hung up") {
		t.Fatalf("first sync: %+v", res[0])
	}

	// The leftover is now in Gitea; the next plan and sync say so and do not
	// delete it on their own.
	plan, err = mirror.Plan(t.Context(), cfg, f.ghc, f.gtc)
	if err != nil {
		t.Fatal(err)
	}
	if plan[0].Action != mirror.ActionConflict || !plan[0].Leftover || !strings.Contains(plan[0].Reason, "--repair") {
		t.Fatalf("plan after failure: %+v", plan[0])
	}
	res = mirror.Sync(t.Context(), plan, f.gtc, mirror.SyncOptions{})
	if res[0].Action != mirror.ActionConflict {
		t.Fatalf("sync without repair: %+v", res[0])
	}
	if _, ok := f.gt.Repo("mirrors/tool"); !ok {
		t.Fatal("sync without --repair deleted the leftover")
	}

	res = mirror.Sync(t.Context(), plan, f.gtc, mirror.SyncOptions{Repair: true})
	if res[0].Action != mirror.ActionRepaired {
		t.Fatalf("sync --repair: %+v", res[0])
	}
	if r, ok := f.gt.Repo("mirrors/tool"); !ok || !r.Mirror || r.Empty {
		t.Fatalf("after repair: %+v", r)
	}
}

func TestMigrate409IsExaminedAgainstFakeGitea(t *testing.T) {
	// Planned as create, but the leftover appears before sync runs (another
	// sync raced us and failed): the 409 is examined, not reported raw.
	f := newForges(t)
	cfg := parse(t, "defaults: {owner: mirrors}\nmirrors:\n  - {type: single, source: alice/tool}\n")
	plan, err := mirror.Plan(t.Context(), cfg, f.ghc, f.gtc)
	if err != nil {
		t.Fatal(err)
	}
	f.gt.AddRepo(fakeforge.GiteaRepo{Owner: "mirrors", Name: "tool", Empty: true, Mirror: true, OriginalURL: f.gh.CloneURL("alice", "tool")})
	res := mirror.Sync(t.Context(), plan, f.gtc, mirror.SyncOptions{})
	if res[0].Action != mirror.ActionConflict || !res[0].Leftover {
		t.Fatalf("409 on a leftover: %+v", res[0])
	}
	res = mirror.Sync(t.Context(), plan, f.gtc, mirror.SyncOptions{Repair: true})
	if res[0].Action != mirror.ActionRepaired {
		t.Fatalf("409 with repair: %+v", res[0])
	}
}

func TestListMarksStaleAndMissingAgainstFakeGitea(t *testing.T) {
	f := newForges(t)
	now := time.Now()
	f.gt.AddRepo(fakeforge.GiteaRepo{Owner: "acme", Name: "svc-000", Mirror: true, OriginalURL: "u0", MirrorInterval: "8h0m0s", MirrorUpdated: now.Add(-time.Hour)})
	f.gt.AddRepo(fakeforge.GiteaRepo{Owner: "acme", Name: "svc-001", Mirror: true, OriginalURL: "u1", MirrorUpdated: now.Add(-25 * time.Hour)})
	f.gt.AddRepo(fakeforge.GiteaRepo{Owner: "acme", Name: "handmade"}) // not a mirror: not listed
	for i := range 60 {                                                // more than one Gitea page
		f.gt.AddRepo(fakeforge.GiteaRepo{Owner: "acme", Name: fmt.Sprintf("zz-%02d", i), Mirror: true, MirrorUpdated: now})
	}
	cfg := parse(t, orgAndSingle)
	list, err := mirror.List(t.Context(), cfg, f.gtc, now)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]mirror.Mirror{}
	for _, m := range list {
		byName[m.Target] = m
	}
	if len(list) != 62+2 {
		t.Fatalf("listed %d, want 62 mirrors of acme + 2 missing singles", len(list))
	}
	if m := byName["acme/svc-000"]; m.Stale || m.LastSync.IsZero() || m.Interval != "8h0m0s" {
		t.Errorf("fresh mirror: %+v", m)
	}
	if m := byName["acme/svc-001"]; !m.Stale {
		t.Errorf("25 h old mirror not stale: %+v", m)
	}
	if _, ok := byName["acme/handmade"]; ok {
		t.Error("a repository that is not a mirror is listed")
	}
	if m := byName["mirrors/tool"]; !m.Missing {
		t.Errorf("missing single: %+v", m)
	}
}

func TestSyncMigratesInParallelButBoundedAgainstFakeGitea(t *testing.T) {
	f := newForges(t)
	f.gt.MigrateDelay = 50 * time.Millisecond
	cfg := parse(t, "mirrors:\n  - {type: org, source: acme, include: [\"^svc-00\"]}\n")
	plan, err := mirror.Plan(t.Context(), cfg, f.ghc, f.gtc)
	if err != nil {
		t.Fatal(err)
	}
	res := mirror.Sync(t.Context(), plan, f.gtc, mirror.SyncOptions{Parallel: 3})
	if got := count(res)[mirror.ActionCreated]; got != 10 {
		t.Fatalf("created %d of svc-000..009", got)
	}
	for i, it := range res {
		if it.Source != plan[i].Source {
			t.Fatalf("results out of order at %d: %s vs %s", i, it.Source, plan[i].Source)
		}
	}
	if n := f.gt.MaxConcurrentMigrations(); n < 2 || n > 3 {
		t.Fatalf("%d migrations at once, want 2..3 (parallel, bounded by 3)", n)
	}
}

// The data-loss bug: a user's own empty repository under a mirror's name
// (a placeholder) is reported, and --repair leaves it where it is.
func TestRepairNeverDeletesAUsersEmptyRepositoryAgainstFakeGitea(t *testing.T) {
	f := newForges(t)
	f.gt.AddRepo(fakeforge.GiteaRepo{Owner: "mirrors", Name: "tool", Empty: true, Description: "placeholder"})
	cfg := parse(t, "defaults: {owner: mirrors}\nmirrors:\n  - {type: single, source: alice/tool}\n")
	plan, err := mirror.Plan(t.Context(), cfg, f.ghc, f.gtc)
	if err != nil {
		t.Fatal(err)
	}
	if plan[0].Action != mirror.ActionConflict || plan[0].Leftover {
		t.Fatalf("plan: %+v", plan[0])
	}
	res := mirror.Sync(t.Context(), plan, f.gtc, mirror.SyncOptions{Repair: true})
	if res[0].Action != mirror.ActionConflict || !strings.Contains(res[0].Reason, "will not delete") {
		t.Fatalf("sync --repair: %+v", res[0])
	}
	if r, ok := f.gt.Repo("mirrors/tool"); !ok || r.Mirror || r.Description != "placeholder" {
		t.Fatalf("the user's repository was replaced: %+v %v", r, ok)
	}
}

// A migration slower than the migrate timeout is "still running in Gitea",
// not a failure (Gitea goes on cloning after the client gives up).
func TestSlowMigrationIsReportedRunningAgainstFakeGitea(t *testing.T) {
	f := newForges(t)
	f.gt.MigrateDelay = 600 * time.Millisecond
	f.gtc.MigrateTimeout = 100 * time.Millisecond
	cfg := parse(t, "defaults: {owner: mirrors}\nmirrors:\n  - {type: single, source: alice/tool}\n")
	plan, err := mirror.Plan(t.Context(), cfg, f.ghc, f.gtc)
	if err != nil {
		t.Fatal(err)
	}
	res := mirror.Sync(t.Context(), plan, f.gtc, mirror.SyncOptions{})
	if res[0].Action != mirror.ActionRunning || !strings.Contains(res[0].Reason, "still running in Gitea") {
		t.Fatalf("slow migration: %+v", res[0])
	}
}

// A target owner Gitea does not have: plan says so (not a bare "create"),
// sync reports it without a 422 from Gitea, --create-owners makes the
// organisation and migrates.
func TestMissingTargetOwnerAgainstFakeGitea(t *testing.T) {
	f := newForges(t)
	cfg := parse(t, "mirrors:\n  - {type: single, source: alice/tool, target: newowner/tool}\n")
	plan, err := mirror.Plan(t.Context(), cfg, f.ghc, f.gtc)
	if err != nil {
		t.Fatal(err)
	}
	if plan[0].Action != mirror.ActionCreate || !plan[0].OwnerMissing || !strings.Contains(plan[0].Reason, "--create-owners") {
		t.Fatalf("plan: %+v", plan[0])
	}
	res := mirror.Sync(t.Context(), plan, f.gtc, mirror.SyncOptions{})
	if res[0].Action != mirror.ActionError || len(f.gt.Migrations()) != 0 {
		t.Fatalf("sync without --create-owners: %+v, %d migrations", res[0], len(f.gt.Migrations()))
	}
	res = mirror.Sync(t.Context(), plan, f.gtc, mirror.SyncOptions{CreateOwners: true})
	if res[0].Action != mirror.ActionCreated {
		t.Fatalf("sync --create-owners: %+v", res[0])
	}
	if r, ok := f.gt.Repo("newowner/tool"); !ok || !r.Mirror {
		t.Fatalf("mirror not created under the new organisation: %+v", r)
	}
}
