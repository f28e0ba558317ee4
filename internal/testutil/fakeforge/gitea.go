package fakeforge

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// GiteaRepo is a repository held by the fake Gitea.
type GiteaRepo struct {
	Owner, Name    string
	Mirror, Empty  bool
	Private        bool
	OriginalURL    string
	MirrorInterval string
	MirrorUpdated  time.Time
	Description    string
}

// Migration is a POST /api/v1/repos/migrate body the fake received.
type Migration struct {
	CloneAddr      string `json:"clone_addr"`
	RepoName       string `json:"repo_name"`
	RepoOwner      string `json:"repo_owner"`
	Service        string `json:"service"`
	Mirror         bool   `json:"mirror"`
	MirrorInterval string `json:"mirror_interval"`
	Private        bool   `json:"private"`
	Description    string `json:"description"`
	AuthToken      string `json:"auth_token"`
}

// Gitea is a fake of Gitea's API v1 (1.27) for mirroring: repository get,
// list (orgs and users, page/limit), delete, migrate (201 with the repository;
// 409 when the name is taken; a failure that leaves an empty repository
// behind, as a real failed migration does) and mirror-sync (200, empty body,
// 400 for a repository that is not a mirror).
type Gitea struct {
	URL   string
	Token string // requests must carry "token <Token>"

	mu         sync.Mutex
	orgs       map[string]bool
	users      map[string]bool
	repos      map[string]*GiteaRepo // lower-case owner/name
	branches   map[string]string     // lower-case owner/name + "@" + branch → head commit
	files      map[string]string     // lower-case owner/name + "@" + ref + ":" + path → content
	packages   map[string][]byte     // owner/generic/package/version/file → content
	failNext   map[string]string     // lower-case owner/name → error of its next migration
	migrations []Migration
	syncs      []string
	requests   []string
	// SyncDelay, when set, is how long mirror-sync takes to answer.
	SyncDelay time.Duration
	// MigrateDelay, when set, is how long a migration takes (Gitea clones
	// before it answers).
	MigrateDelay time.Duration
	inFlight     int
	maxInFlight  int
}

// MaxConcurrentMigrations is the most migrations that were in progress at once.
func (g *Gitea) MaxConcurrentMigrations() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.maxInFlight
}

// NewGitea starts a fake Gitea that requires token.
func NewGitea(t testing.TB, token string) *Gitea {
	g := &Gitea{Token: token, orgs: map[string]bool{}, users: map[string]bool{},
		repos: map[string]*GiteaRepo{}, failNext: map[string]string{}}
	srv := httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(srv.Close)
	g.URL = srv.URL
	return g
}

// AddOrg and AddUser create owners.
func (g *Gitea) AddOrg(name string) { g.mu.Lock(); g.orgs[strings.ToLower(name)] = true; g.mu.Unlock() }
func (g *Gitea) AddUser(name string) {
	g.mu.Lock()
	g.users[strings.ToLower(name)] = true
	g.mu.Unlock()
}

// AddRepo puts a repository in place.
// SetBranch makes branch of repo (owner/name) point at commit.
func (g *Gitea) SetBranch(repo, branch, commit string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.branches == nil {
		g.branches = map[string]string{}
	}
	g.branches[strings.ToLower(repo)+"@"+branch] = commit
}

// SetFile puts a file into repo (owner/name) at ref (a commit or branch).
func (g *Gitea) SetFile(repo, ref, path, content string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.files == nil {
		g.files = map[string]string{}
	}
	g.files[strings.ToLower(repo)+"@"+ref+":"+path] = content
}

// Packages is what was uploaded to the generic package registry, by
// "owner/package/version/file".
func (g *Gitea) Packages() map[string][]byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string][]byte{}
	for k, v := range g.packages {
		out[k] = v
	}
	return out
}

func (g *Gitea) AddRepo(r GiteaRepo) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := r
	g.repos[strings.ToLower(r.Owner+"/"+r.Name)] = &c
}

// Repo returns a copy of owner/name, if it exists.
func (g *Gitea) Repo(fullName string) (GiteaRepo, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r, ok := g.repos[strings.ToLower(fullName)]
	if !ok {
		return GiteaRepo{}, false
	}
	return *r, true
}

// FailNextMigration makes the next migration of owner/name fail with msg,
// leaving an empty repository behind.
func (g *Gitea) FailNextMigration(fullName, msg string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.failNext[strings.ToLower(fullName)] = msg
}

// Migrations lists the migrate bodies received.
func (g *Gitea) Migrations() []Migration {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Migration(nil), g.migrations...)
}

// Syncs lists the owner/name of every mirror-sync received.
func (g *Gitea) Syncs() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.syncs...)
}

// Requests lists "METHOD path?query" of every request.
func (g *Gitea) Requests() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.requests...)
}

func (g *Gitea) serve(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	g.requests = append(g.requests, r.Method+" "+r.URL.RequestURI())
	g.mu.Unlock()
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	if g.Token != "" && r.Header.Get("Authorization") != "token "+g.Token {
		fail(w, http.StatusUnauthorized, "token is required")
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/api/v1/"), "/")
	if pkg := strings.Split(strings.TrimPrefix(r.URL.Path, "/api/packages/"), "/"); r.Method == http.MethodPut &&
		strings.HasPrefix(r.URL.Path, "/api/packages/") && len(pkg) == 5 && pkg[1] == "generic" {
		// PUT /api/packages/{owner}/generic/{package}/{version}/{file}:
		// 201, or 409 when that version already has the file.
		key := pkg[0] + "/" + pkg[2] + "/" + pkg[3] + "/" + pkg[4]
		body, _ := io.ReadAll(r.Body)
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.packages == nil {
			g.packages = map[string][]byte{}
		}
		if _, dup := g.packages[key]; dup {
			fail(w, http.StatusConflict, "package file already exists")
			return
		}
		g.packages[key] = body
		w.WriteHeader(http.StatusCreated)
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/api/v1/repos/migrate":
		g.migrate(w, r)
	case r.Method == http.MethodPost && len(parts) == 4 && parts[0] == "repos" && parts[3] == "mirror-sync":
		g.mirrorSync(w, parts[1]+"/"+parts[2])
	case len(parts) >= 5 && parts[0] == "repos" && parts[3] == "raw" && r.Method == http.MethodGet:
		g.mu.Lock()
		content, ok := g.files[strings.ToLower(parts[1]+"/"+parts[2])+"@"+r.URL.Query().Get("ref")+":"+strings.Join(parts[4:], "/")]
		g.mu.Unlock()
		if !ok {
			fail(w, http.StatusNotFound, "The target couldn't be found.")
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte(content))
	case len(parts) >= 5 && parts[0] == "repos" && parts[3] == "branches" && r.Method == http.MethodGet:
		branch := strings.Join(parts[4:], "/")
		g.mu.Lock()
		sha, ok := g.branches[strings.ToLower(parts[1]+"/"+parts[2])+"@"+branch]
		g.mu.Unlock()
		if !ok {
			fail(w, http.StatusNotFound, "branch does not exist ["+branch+"]")
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"name": branch, "commit": map[string]any{"id": sha, "message": "head\n"}, "protected": false})
	case len(parts) == 3 && parts[0] == "repos" && r.Method == http.MethodGet:
		g.mu.Lock()
		repo, ok := g.repos[strings.ToLower(parts[1]+"/"+parts[2])]
		var out map[string]any
		if ok {
			out = g.repoJSON(repo)
		}
		g.mu.Unlock()
		if !ok {
			fail(w, http.StatusNotFound, "The target couldn't be found.")
			return
		}
		_ = json.NewEncoder(w).Encode(out)
	case len(parts) == 3 && parts[0] == "repos" && r.Method == http.MethodDelete:
		g.mu.Lock()
		key := strings.ToLower(parts[1] + "/" + parts[2])
		_, ok := g.repos[key]
		delete(g.repos, key)
		g.mu.Unlock()
		if !ok {
			fail(w, http.StatusNotFound, "The target couldn't be found.")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case len(parts) == 3 && (parts[0] == "orgs" || parts[0] == "users") && parts[2] == "repos" && r.Method == http.MethodGet:
		g.list(w, r, parts[0], parts[1])
	case len(parts) == 2 && (parts[0] == "orgs" || parts[0] == "users") && r.Method == http.MethodGet:
		// GET /orgs/{org} knows organisations only; GET /users/{name}
		// answers for users and organisations alike, as Gitea's does.
		g.mu.Lock()
		name := strings.ToLower(parts[1])
		ok := g.orgs[name] || (parts[0] == "users" && g.users[name])
		g.mu.Unlock()
		if !ok {
			fail(w, http.StatusNotFound, "The target couldn't be found.")
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"id": len(name), "username": parts[1], "login": parts[1]})
	case len(parts) == 1 && parts[0] == "orgs" && r.Method == http.MethodPost:
		var body struct {
			Username string `json:"username"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Username == "" {
			fail(w, http.StatusUnprocessableEntity, "[Username]: Required")
			return
		}
		g.mu.Lock()
		name := strings.ToLower(body.Username)
		taken := g.orgs[name] || g.users[name]
		if !taken {
			g.orgs[name] = true
		}
		g.mu.Unlock()
		if taken {
			fail(w, http.StatusUnprocessableEntity, "user already exists [name: "+body.Username+"]")
			return
		}
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"id": len(name), "username": body.Username})
	default:
		fail(w, http.StatusNotFound, "The target couldn't be found.")
	}
}

func (g *Gitea) migrate(w http.ResponseWriter, r *http.Request) {
	var m Migration
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&m); err != nil {
		fail(w, http.StatusUnprocessableEntity, "invalid JSON: "+err.Error())
		return
	}
	if m.CloneAddr == "" || m.RepoName == "" {
		fail(w, http.StatusUnprocessableEntity, "[CloneAddr]: Required; [RepoName]: Required")
		return
	}
	if m.MirrorInterval != "" {
		if d, err := time.ParseDuration(m.MirrorInterval); err != nil || d < 10*time.Minute {
			fail(w, http.StatusUnprocessableEntity, "Invalid mirror interval")
			return
		}
	}
	if g.MigrateDelay > 0 {
		g.mu.Lock()
		g.inFlight++
		g.maxInFlight = max(g.maxInFlight, g.inFlight)
		g.mu.Unlock()
		time.Sleep(g.MigrateDelay)
		g.mu.Lock()
		g.inFlight--
		g.mu.Unlock()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.migrations = append(g.migrations, m)
	owner := strings.ToLower(m.RepoOwner)
	if !g.orgs[owner] && !g.users[owner] {
		fail(w, http.StatusUnprocessableEntity, "user does not exist [uid: 0, name: "+m.RepoOwner+"]")
		return
	}
	key := owner + "/" + strings.ToLower(m.RepoName)
	if _, taken := g.repos[key]; taken {
		fail(w, http.StatusConflict, "The repository with the same name already exists.")
		return
	}
	if msg, ok := g.failNext[key]; ok {
		delete(g.failNext, key)
		// A real failed mirror migration (Gitea 1.27.3) leaves the repository
		// it created behind: a mirror, empty, no interval, never synced, its
		// original_url the source.
		g.repos[key] = &GiteaRepo{Owner: m.RepoOwner, Name: m.RepoName, Empty: true, Mirror: m.Mirror,
			OriginalURL: m.CloneAddr, Private: m.Private}
		fail(w, http.StatusInternalServerError, msg)
		return
	}
	repo := &GiteaRepo{Owner: m.RepoOwner, Name: m.RepoName, Mirror: m.Mirror, Private: m.Private,
		OriginalURL: m.CloneAddr, Description: m.Description, MirrorInterval: m.MirrorInterval}
	if m.Mirror {
		repo.MirrorUpdated = time.Now().UTC()
		if repo.MirrorInterval == "" {
			repo.MirrorInterval = "8h0m0s"
		}
	}
	g.repos[key] = repo
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(g.repoJSON(repo))
}

func (g *Gitea) mirrorSync(w http.ResponseWriter, fullName string) {
	if g.SyncDelay > 0 {
		time.Sleep(g.SyncDelay)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	repo, ok := g.repos[strings.ToLower(fullName)]
	if !ok {
		fail(w, http.StatusNotFound, "The target couldn't be found.")
		return
	}
	// A failed migration's leftover says mirror: true, but Gitea has no
	// mirror record for it (no interval): mirror-sync refuses it as 1.27.3 does.
	if !repo.Mirror || repo.MirrorInterval == "" {
		fail(w, http.StatusBadRequest, "Repository is not a mirror")
		return
	}
	g.syncs = append(g.syncs, fullName)
	repo.MirrorUpdated = time.Now().UTC()
	// Gitea queues the sync and answers 200 with no body.
	w.Header().Del("Content-Type")
	w.WriteHeader(http.StatusOK)
}

func (g *Gitea) list(w http.ResponseWriter, r *http.Request, kind, owner string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	lower := strings.ToLower(owner)
	if (kind == "orgs" && !g.orgs[lower]) || (kind == "users" && !g.users[lower]) {
		fail(w, http.StatusNotFound, "The target couldn't be found.")
		return
	}
	limit, page := 30, 1
	if n, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && n > 0 {
		limit = min(n, 50)
	}
	if n, err := strconv.Atoi(r.URL.Query().Get("page")); err == nil && n > 0 {
		page = n
	}
	var all []*GiteaRepo
	for key, repo := range g.repos {
		if strings.HasPrefix(key, lower+"/") {
			all = append(all, repo)
		}
	}
	sortRepos(all)
	from, to := min((page-1)*limit, len(all)), min(page*limit, len(all))
	out := make([]map[string]any, 0, to-from)
	for _, repo := range all[from:to] {
		out = append(out, g.repoJSON(repo))
	}
	w.Header().Set("X-Total-Count", strconv.Itoa(len(all)))
	_ = json.NewEncoder(w).Encode(out)
}

func sortRepos(rs []*GiteaRepo) {
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && rs[j].Name < rs[j-1].Name; j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
}

func (g *Gitea) repoJSON(r *GiteaRepo) map[string]any {
	out := map[string]any{
		"id": len(r.Name), "name": r.Name, "full_name": r.Owner + "/" + r.Name,
		"owner": map[string]any{"login": r.Owner}, "empty": r.Empty, "mirror": r.Mirror,
		"private": r.Private, "original_url": r.OriginalURL, "mirror_interval": r.MirrorInterval,
		"description": r.Description, "clone_url": fmt.Sprintf("%s/%s/%s.git", g.URL, r.Owner, r.Name),
		"updated_at": time.Now().UTC().Format(time.RFC3339),
		// Gitea sends the zero time for a mirror that never synced.
		"mirror_updated": r.MirrorUpdated.UTC().Format(time.RFC3339),
	}
	return out
}

func fail(w http.ResponseWriter, code int, msg string) {
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"message": msg, "url": "https://gitea.com/api/swagger"})
}
