package gitea

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/forge"
)

// ErrNotFound is Gitea's 404.
var ErrNotFound = errors.New("gitea: not found")

// ErrConflict is Gitea's 409: a repository of that name already exists (for a
// failed migration, until it is deleted).
var ErrConflict = errors.New("gitea: a repository of that name already exists")

// ErrStillRunning means a migration did not answer within its timeout:
// Gitea is most likely still cloning, and finishes on its own.
var ErrStillRunning = errors.New("gitea: the migration is still running in Gitea")

// Repo is the part of Gitea's repository object mirroring needs.
type Repo struct {
	Name           string    `json:"name"`
	FullName       string    `json:"full_name"`
	Empty          bool      `json:"empty"`
	Mirror         bool      `json:"mirror"`
	Private        bool      `json:"private"`
	OriginalURL    string    `json:"original_url"`
	MirrorInterval string    `json:"mirror_interval"`
	MirrorUpdated  time.Time `json:"mirror_updated"`
	UpdatedAt      time.Time `json:"updated_at"`
	Owner          struct {
		Login string `json:"login"`
	} `json:"owner"`
}

// MigrateOptions is the body of POST /api/v1/repos/migrate.
type MigrateOptions struct {
	CloneAddr      string `json:"clone_addr"`
	RepoName       string `json:"repo_name"`
	RepoOwner      string `json:"repo_owner"`
	Service        string `json:"service"`
	Mirror         bool   `json:"mirror"`
	MirrorInterval string `json:"mirror_interval,omitempty"`
	Private        bool   `json:"private"`
	Description    string `json:"description,omitempty"`
	// AuthToken is the source forge's token: Gitea uses it to clone and,
	// for service github, to call the source's API. Never logged.
	AuthToken string `json:"auth_token,omitempty"`
}

// GetRepo is GET /api/v1/repos/{owner}/{repo}.
func (c *Client) GetRepo(ctx context.Context, owner, name string) (*Repo, error) {
	var r Repo
	if _, err := c.call(ctx, http.MethodGet, repoPath(owner, name), nil, &r); err != nil {
		return nil, fmt.Errorf("gitea repo %s/%s: %w", owner, name, err)
	}
	return &r, nil
}

// BranchHead is the commit at the head of a branch (GET
// /api/v1/repos/{owner}/{repo}/branches/{branch}); ErrNotFound when the
// repository or the branch does not exist.
func (c *Client) BranchHead(ctx context.Context, repo, branch string) (string, error) {
	owner, name, ok := strings.Cut(repo, "/")
	if !ok {
		return "", fmt.Errorf("gitea branch: repository %q is not owner/name", repo)
	}
	segs := strings.Split(branch, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	var out struct {
		Commit struct {
			ID string `json:"id"`
		} `json:"commit"`
	}
	path := repoPath(owner, name) + "/branches/" + strings.Join(segs, "/")
	// Gitea 1.27 answers 500 for a branch of a repository whose first push
	// it is still processing (it reads empty for a moment, test/forge):
	// a server error is asked again, for up to about 5 s.
	for attempt := 1; ; attempt++ {
		code, err := c.call(ctx, http.MethodGet, path, nil, &out)
		if err == nil {
			return out.Commit.ID, nil
		}
		if code < 500 || attempt == 6 {
			return "", fmt.Errorf("gitea branch %s of %s: %w", branch, repo, err)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("gitea branch %s of %s: %w", branch, repo, ctx.Err())
		case <-time.After(time.Duration(attempt) * 250 * time.Millisecond):
		}
	}
}

// PutPackage uploads a file to Gitea's generic package registry (PUT
// /api/packages/{owner}/generic/{package}/{version}/{file}); ErrConflict
// when that version already has the file.
func (c *Client) PutPackage(ctx context.Context, owner, pkg, version, file string, body io.Reader, size int64) error {
	u := c.BaseURL + "/api/packages/" + url.PathEscape(owner) + "/generic/" + url.PathEscape(pkg) + "/" +
		url.PathEscape(version) + "/" + url.PathEscape(file)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, body)
	if err != nil {
		return err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	if c.Token != "" {
		req.Header.Set("Authorization", "token "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("gitea package %s/%s/%s: %w", pkg, version, file, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	switch {
	case resp.StatusCode == http.StatusConflict:
		return fmt.Errorf("gitea package %s/%s/%s: %w", pkg, version, file, ErrConflict)
	case resp.StatusCode/100 != 2:
		return fmt.Errorf("gitea package %s/%s/%s: gitea answered %s: %s", pkg, version, file, resp.Status, forge.APIMessage(data))
	}
	return nil
}

// OwnerExists reports whether Gitea has a user or organisation called owner
// (GET /api/v1/users/{name} answers for both).
func (c *Client) OwnerExists(ctx context.Context, owner string) (bool, error) {
	_, err := c.call(ctx, http.MethodGet, "/api/v1/users/"+url.PathEscape(owner), nil, nil)
	switch {
	case errors.Is(err, ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("gitea owner %s: %w", owner, err)
	}
	return true, nil
}

// CreateOrg creates an organisation (POST /api/v1/orgs).
func (c *Client) CreateOrg(ctx context.Context, name string) error {
	if _, err := c.call(ctx, http.MethodPost, "/api/v1/orgs", map[string]string{"username": name}, nil); err != nil {
		return fmt.Errorf("gitea create organisation %s: %w", name, err)
	}
	return nil
}

// ListRepos lists the repositories of owner, an organisation
// (GET /api/v1/orgs/{org}/repos) or else a user (GET /api/v1/users/{user}/repos),
// page by page until a short page.
func (c *Client) ListRepos(ctx context.Context, owner string) ([]Repo, error) {
	const limit = 50 // Gitea's default MAX_RESPONSE_ITEMS
	list := func(base string) ([]Repo, error) {
		var all []Repo
		for page := 1; ; page++ {
			var batch []Repo
			q := "?limit=" + strconv.Itoa(limit) + "&page=" + strconv.Itoa(page)
			if _, err := c.call(ctx, http.MethodGet, base+q, nil, &batch); err != nil {
				return nil, err
			}
			all = append(all, batch...)
			if len(batch) < limit {
				return all, nil
			}
		}
	}
	repos, err := list("/api/v1/orgs/" + url.PathEscape(owner) + "/repos")
	if errors.Is(err, ErrNotFound) {
		repos, err = list("/api/v1/users/" + url.PathEscape(owner) + "/repos")
	}
	if err != nil {
		return nil, fmt.Errorf("gitea repos of %s: %w", owner, err)
	}
	return repos, nil
}

// Migrate creates a repository from another forge (POST /api/v1/repos/migrate).
// Gitea clones before it answers, so this can take minutes for a big repository.
func (c *Client) Migrate(ctx context.Context, opts MigrateOptions) (*Repo, error) {
	var r Repo
	timeout := c.MigrateTimeout
	if timeout <= 0 {
		timeout = DefaultMigrateTimeout
	}
	// A client of its own: the shared one's timeout is for quick calls.
	long := *c
	long.HTTP = &http.Client{Transport: c.HTTP.Transport, Timeout: timeout}
	if _, err := long.call(ctx, http.MethodPost, "/api/v1/repos/migrate", opts, &r); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, fmt.Errorf("gitea migrate %s/%s: no answer within %s: %w", opts.RepoOwner, opts.RepoName, timeout, ErrStillRunning)
		}
		return nil, fmt.Errorf("gitea migrate %s/%s: %w", opts.RepoOwner, opts.RepoName, err)
	}
	return &r, nil
}

// MirrorSync asks Gitea to fetch a pull mirror now
// (POST /api/v1/repos/{owner}/{repo}/mirror-sync). Gitea only queues the
// sync and answers 200 with an empty body.
func (c *Client) MirrorSync(ctx context.Context, owner, name string) error {
	if _, err := c.call(ctx, http.MethodPost, repoPath(owner, name)+"/mirror-sync", nil, nil); err != nil {
		return fmt.Errorf("gitea mirror-sync %s/%s: %w", owner, name, err)
	}
	return nil
}

// DeleteRepo is DELETE /api/v1/repos/{owner}/{repo}.
func (c *Client) DeleteRepo(ctx context.Context, owner, name string) error {
	if _, err := c.call(ctx, http.MethodDelete, repoPath(owner, name), nil, nil); err != nil {
		return fmt.Errorf("gitea delete %s/%s: %w", owner, name, err)
	}
	return nil
}

func repoPath(owner, name string) string {
	return "/api/v1/repos/" + url.PathEscape(owner) + "/" + url.PathEscape(name)
}

// call sends one request with the token and decodes a JSON answer into out
// (when out is not nil and the body is not empty). 404 and 409 come back as
// ErrNotFound and ErrConflict; other failures carry Gitea's message.
func (c *Client) call(ctx context.Context, method, path string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return 0, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "token "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return resp.StatusCode, ErrNotFound
	case resp.StatusCode == http.StatusConflict:
		return resp.StatusCode, ErrConflict
	case resp.StatusCode/100 != 2:
		return resp.StatusCode, fmt.Errorf("gitea answered %s: %s", resp.Status, forge.APIMessage(data))
	}
	if out != nil && len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("gitea answered unreadable JSON: %w", err)
		}
	}
	return resp.StatusCode, nil
}
