package github_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/forge/github"
	"github.com/raibid-labs/raibid-ci/internal/testutil/fakeforge"
)

func manyRepos(n int) []fakeforge.GitHubRepo {
	out := make([]fakeforge.GitHubRepo, n)
	for i := range out {
		out[i] = fakeforge.GitHubRepo{Name: fmt.Sprintf("repo-%03d", i)}
	}
	return out
}

func TestListReposFollowsLinkHeadersOverThreePagesAgainstFakeGitHub(t *testing.T) {
	gh := fakeforge.NewGitHub(t, "ghp_secret")
	gh.AddOrg("acme", manyRepos(250)...)
	c := github.NewClient(gh.URL, "ghp_secret", nil)
	repos, err := c.ListRepos(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if len(repos) != 250 {
		t.Fatalf("got %d repos, want 250", len(repos))
	}
	seen := map[string]bool{}
	for _, r := range repos {
		if seen[r.FullName] {
			t.Fatalf("%s listed twice", r.FullName)
		}
		seen[r.FullName] = true
	}
	reqs := gh.Requests()
	if len(reqs) != 3 {
		t.Fatalf("requests = %q, want 3 pages", reqs)
	}
	for _, r := range reqs {
		if !strings.HasPrefix(r, "GET /orgs/acme/repos?") || !strings.Contains(r, "per_page=100") {
			t.Errorf("request %q is not a 100-per-page org listing", r)
		}
	}
}

func TestListReposFallsBackToUserAgainstFakeGitHub(t *testing.T) {
	gh := fakeforge.NewGitHub(t, "")
	gh.AddUser("alice", fakeforge.GitHubRepo{Name: "dotfiles"})
	repos, err := github.NewClient(gh.URL, "", nil).ListRepos(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(repos) != 1 || repos[0].FullName != "alice/dotfiles" || repos[0].CloneURL == "" {
		t.Fatalf("repos = %+v", repos)
	}
	_, err = github.NewClient(gh.URL, "", nil).ListRepos(t.Context(), "nobody")
	if !errors.Is(err, github.ErrNotFound) {
		t.Fatalf("unknown owner: err = %v, want ErrNotFound", err)
	}
}

func TestBadTokenIsAnErrorWithoutTheTokenAgainstFakeGitHub(t *testing.T) {
	gh := fakeforge.NewGitHub(t, "right")
	gh.AddOrg("acme", manyRepos(1)...)
	_, err := github.NewClient(gh.URL, "wrong-token-value", nil).ListRepos(t.Context(), "acme")
	if err == nil || !strings.Contains(err.Error(), "Bad credentials") {
		t.Fatalf("err = %v, want GitHub's Bad credentials", err)
	}
	if strings.Contains(err.Error(), "wrong-token-value") {
		t.Fatalf("error shows the token: %v", err)
	}
}

func TestRateLimitIsWaitedOutNotHammeredAgainstFakeGitHub(t *testing.T) {
	gh := fakeforge.NewGitHub(t, "tok")
	gh.AddOrg("acme", manyRepos(150)...)
	gh.RateLimitNext(1200 * time.Millisecond)
	c := github.NewClient(gh.URL, "tok", nil)
	start := time.Now()
	repos, err := c.ListRepos(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if len(repos) != 150 {
		t.Fatalf("got %d repos after the limit, want 150", len(repos))
	}
	refused, hammered := gh.RateLimitStats()
	if refused != 1 || hammered != 0 {
		t.Fatalf("refused %d, hammered %d: the client must wait for the reset after one refusal", refused, hammered)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Fatalf("listing took %s: it cannot have waited for a 1.2 s window", waited)
	}
}

func TestRateLimitBeyondMaxWaitIsAClearError(t *testing.T) {
	gh := fakeforge.NewGitHub(t, "tok")
	gh.AddOrg("acme", manyRepos(1)...)
	gh.RateLimitNext(time.Hour)
	c := github.NewClient(gh.URL, "tok", nil)
	c.MaxWait = time.Second
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := c.ListRepos(ctx, "acme")
	if err == nil || !strings.Contains(err.Error(), "rate limit") || !strings.Contains(err.Error(), "try again") {
		t.Fatalf("err = %v, want a rate-limit error that says when to retry", err)
	}
}
