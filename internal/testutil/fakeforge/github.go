// Package fakeforge holds fakes of GitHub's REST API and Gitea's API for
// tests, because neither service can run here. Each fake follows the
// documented API as far as raibid uses it: request paths and methods, JSON
// field names, auth headers (a request without the right one is refused as
// the real service refuses it), pagination and rate-limit headers. The fakes
// keep state, so a test sees the effect of a call on later calls.
package fakeforge

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// GitHubRepo is a repository the fake GitHub serves.
type GitHubRepo struct {
	Name        string
	Private     bool
	Description string
}

// GitHub is a fake of GitHub's REST API v3 (api.github.com or a GitHub
// Enterprise /api/v3): GET /orgs/{org}/repos, GET /users/{user}/repos and
// GET /repos/{owner}/{repo}, with per_page/page pagination and Link headers.
type GitHub struct {
	URL   string
	Token string // the token requests must carry as "Bearer <token>"

	mu       sync.Mutex
	orgs     map[string][]GitHubRepo // org login → repos
	users    map[string][]GitHubRepo // user login → repos
	requests []string
	// rate limiting: until limitedUntil every request is refused; one made
	// before the reset the fake announced is counted as hammering.
	limitNext    time.Duration
	limitedUntil time.Time
	refused      int
	hammered     int
	// remaining counts down x-ratelimit-remaining.
	remaining int
	// git is the bare repositories served over HTTP: owner/name → dir.
	git map[string]string
}

// NewGitHub starts a fake GitHub that requires token.
func NewGitHub(t testing.TB, token string) *GitHub {
	g := &GitHub{Token: token, orgs: map[string][]GitHubRepo{}, users: map[string][]GitHubRepo{}, remaining: 5000}
	srv := httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(srv.Close)
	g.URL = srv.URL
	return g
}

// AddOrg adds an organisation with repositories.
func (g *GitHub) AddOrg(org string, repos ...GitHubRepo) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.orgs[org] = append(g.orgs[org], repos...)
}

// AddUser adds a user with repositories.
func (g *GitHub) AddUser(user string, repos ...GitHubRepo) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.users[user] = append(g.users[user], repos...)
}

// ServeGit serves the bare repository at dir as owner/name's git over HTTP
// (git's smart protocol, through git http-backend), at the clone_url the
// fake reports: Gitea's migration from the fake really clones.
func (g *GitHub) ServeGit(owner, name, dir string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.git == nil {
		g.git = map[string]string{}
	}
	g.git[strings.ToLower(owner+"/"+name)] = dir
}

// serveGit answers a request under /{owner}/{name}.git/ with git
// http-backend when that repository is served; false when it is not one.
func (g *GitHub) serveGit(w http.ResponseWriter, r *http.Request) bool {
	parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 3)
	if len(parts) < 3 || !strings.HasSuffix(parts[1], ".git") {
		return false
	}
	g.mu.Lock()
	dir, ok := g.git[strings.ToLower(parts[0]+"/"+strings.TrimSuffix(parts[1], ".git"))]
	g.mu.Unlock()
	if !ok {
		http.Error(w, "Repository not found.", http.StatusNotFound)
		return true
	}
	// The repository is GIT_PROJECT_ROOT itself: PATH_INFO is what follows
	// its .git (info/refs, git-upload-pack).
	git, err := exec.LookPath("git")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return true
	}
	h := &cgi.Handler{Path: git, Args: []string{"http-backend"}, Root: "/" + parts[0] + "/" + parts[1],
		Env: []string{"GIT_PROJECT_ROOT=" + dir, "GIT_HTTP_EXPORT_ALL=1"}, InheritEnv: []string{"PATH"}}
	h.ServeHTTP(w, r)
	return true
}

// RateLimitNext makes the next request a primary rate-limit refusal (403,
// x-ratelimit-remaining 0) whose window resets after d.
func (g *GitHub) RateLimitNext(d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.limitNext = d
}

// RateLimitStats says how many requests were refused by the limit and how
// many of those came before the announced reset (hammering).
func (g *GitHub) RateLimitStats() (refused, hammered int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.refused, g.hammered
}

// Requests lists "METHOD path?query" of every request.
func (g *GitHub) Requests() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.requests...)
}

// CloneURL is the clone_url the fake reports for owner/name. Its host is the
// fake's, as a GitHub Enterprise's would be.
func (g *GitHub) CloneURL(owner, name string) string {
	return g.URL + "/" + owner + "/" + name + ".git"
}

func (g *GitHub) serve(w http.ResponseWriter, r *http.Request) {
	if g.serveGit(w, r) {
		return
	}
	// GitHub Enterprise serves the same API under /api/v3 (Gitea's
	// migration calls it there for any host but github.com).
	r.URL.Path = strings.TrimPrefix(r.URL.Path, "/api/v3")
	g.mu.Lock()
	defer g.mu.Unlock()
	g.requests = append(g.requests, r.Method+" "+r.URL.RequestURI())
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	now := time.Now()
	if g.limitNext > 0 {
		g.limitedUntil = now.Add(g.limitNext)
		g.limitNext = 0
	}
	if now.Before(g.limitedUntil) {
		if g.refused > 0 {
			g.hammered++
		}
		g.refused++
		w.Header().Set("X-Ratelimit-Limit", "5000")
		w.Header().Set("X-Ratelimit-Remaining", "0")
		w.Header().Set("X-Ratelimit-Used", "5000")
		// GitHub gives the reset in whole epoch seconds; round up so the
		// client's wait covers the window.
		w.Header().Set("X-Ratelimit-Reset", strconv.FormatInt(g.limitedUntil.Add(999*time.Millisecond).Unix(), 10))
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `{"message":"API rate limit exceeded for user ID 1.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}`)
		return
	}
	if r.Method != http.MethodGet {
		fail(w, http.StatusNotFound, "Not Found")
		return
	}
	if g.Token != "" && r.Header.Get("Authorization") != "Bearer "+g.Token {
		fail(w, http.StatusUnauthorized, "Bad credentials")
		return
	}
	if !strings.Contains(r.Header.Get("Accept"), "application/vnd.github") && r.Header.Get("Accept") != "application/json" {
		fail(w, http.StatusUnsupportedMediaType, "Unsupported 'Accept' header")
		return
	}
	w.Header().Set("X-Ratelimit-Limit", "5000")
	g.remaining--
	w.Header().Set("X-Ratelimit-Remaining", strconv.Itoa(g.remaining))
	w.Header().Set("X-Ratelimit-Reset", strconv.FormatInt(now.Add(time.Hour).Unix(), 10))
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(parts) == 3 && parts[0] == "orgs" && parts[2] == "repos":
		repos, ok := g.orgs[parts[1]]
		if !ok {
			fail(w, http.StatusNotFound, "Not Found")
			return
		}
		g.page(w, r, parts[1], repos)
	case len(parts) == 3 && parts[0] == "users" && parts[2] == "repos":
		repos, ok := g.users[parts[1]]
		if !ok {
			fail(w, http.StatusNotFound, "Not Found")
			return
		}
		g.page(w, r, parts[1], repos)
	case len(parts) == 3 && parts[0] == "repos":
		// Owner and name are case-insensitive on GitHub; the answer has
		// their real spelling.
		for _, set := range []map[string][]GitHubRepo{g.orgs, g.users} {
			for owner, repos := range set {
				if !strings.EqualFold(owner, parts[1]) {
					continue
				}
				for _, repo := range repos {
					if strings.EqualFold(repo.Name, parts[2]) {
						_ = json.NewEncoder(w).Encode(g.repoJSON(owner, repo))
						return
					}
				}
			}
		}
		fail(w, http.StatusNotFound, "Not Found")
	default:
		fail(w, http.StatusNotFound, "Not Found")
	}
}

func (g *GitHub) page(w http.ResponseWriter, r *http.Request, owner string, repos []GitHubRepo) {
	perPage := 30 // GitHub's default
	if s := r.URL.Query().Get("per_page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			fail(w, http.StatusUnprocessableEntity, "per_page is invalid")
			return
		}
		perPage = min(n, 100)
	}
	page := 1
	if s := r.URL.Query().Get("page"); s != "" {
		page, _ = strconv.Atoi(s)
		page = max(page, 1)
	}
	last := max((len(repos)+perPage-1)/perPage, 1)
	from, to := min((page-1)*perPage, len(repos)), min(page*perPage, len(repos))
	out := make([]map[string]any, 0, to-from)
	for _, repo := range repos[from:to] {
		out = append(out, g.repoJSON(owner, repo))
	}
	link := func(p int, rel string) string {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(p))
		return fmt.Sprintf(`<%s%s?%s>; rel="%s"`, g.URL, r.URL.Path, q.Encode(), rel)
	}
	var links []string
	if page < last {
		links = append(links, link(page+1, "next"), link(last, "last"))
	}
	if page > 1 {
		links = append(links, link(1, "first"), link(page-1, "prev"))
	}
	if len(links) > 0 {
		w.Header().Set("Link", strings.Join(links, ", "))
	}
	_ = json.NewEncoder(w).Encode(out)
}

func (g *GitHub) repoJSON(owner string, r GitHubRepo) map[string]any {
	return map[string]any{
		"id": len(r.Name), "name": r.Name, "full_name": owner + "/" + r.Name,
		"private": r.Private, "description": r.Description, "fork": false, "archived": false,
		"owner":     map[string]any{"login": owner},
		"html_url":  g.URL + "/" + owner + "/" + r.Name,
		"clone_url": g.CloneURL(owner, r.Name), "default_branch": "main",
	}
}
