// Package github understands the GitHub side of mirroring: the REST calls
// that list an organisation's or user's repositories (paged through Link
// headers, waiting out rate limits instead of hammering), and push webhooks
// signed with X-Hub-Signature-256. It knows nothing of Gitea or raibid's queue.
package github

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/forge"
)

// DefaultAPIURL is github.com's REST API; GitHub Enterprise serves it at
// https://<host>/api/v3.
const DefaultAPIURL = "https://api.github.com"

// PerPage is the largest page GitHub's list endpoints serve.
const PerPage = 100

// ErrNotFound is GitHub's 404 (also what it answers for a private repository
// the token cannot see).
var ErrNotFound = errors.New("github: not found")

// Repo is the part of GitHub's repository object mirroring needs.
type Repo struct {
	Name        string `json:"name"`
	FullName    string `json:"full_name"`
	CloneURL    string `json:"clone_url"`
	HTMLURL     string `json:"html_url"`
	Description string `json:"description"`
	Private     bool   `json:"private"`
	Archived    bool   `json:"archived"`
	Fork        bool   `json:"fork"`
	Owner       struct {
		Login string `json:"login"`
	} `json:"owner"`
}

// Client calls GitHub's REST API. The token goes in the Authorization header
// only and never into errors or logs.
type Client struct {
	BaseURL string
	Token   string
	HTTP    *http.Client
	Log     *slog.Logger
	// MaxWait bounds one rate-limit wait; a longer reset is an error that
	// says when to come back (default 1 h).
	MaxWait time.Duration
	// now is time.Now, replaceable in tests.
	now func() time.Time
}

// NewClient returns a client for the API at baseURL (DefaultAPIURL when empty).
func NewClient(baseURL, token string, log *slog.Logger) *Client {
	if baseURL == "" {
		baseURL = DefaultAPIURL
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Token: token,
		HTTP: &http.Client{Timeout: 30 * time.Second}, Log: log, MaxWait: time.Hour, now: time.Now}
}

// GetRepo is GET /repos/{owner}/{repo}.
func (c *Client) GetRepo(ctx context.Context, owner, name string) (*Repo, error) {
	var r Repo
	_, err := c.get(ctx, c.BaseURL+"/repos/"+url.PathEscape(owner)+"/"+url.PathEscape(name), &r)
	if err != nil {
		return nil, fmt.Errorf("github repo %s/%s: %w", owner, name, err)
	}
	return &r, nil
}

// ListRepos lists every repository of owner, an organisation
// (GET /orgs/{org}/repos) or, when no organisation has that name, a user
// (GET /users/{user}/repos), following rel="next" links 100 at a time.
func (c *Client) ListRepos(ctx context.Context, owner string) ([]Repo, error) {
	q := "?per_page=" + strconv.Itoa(PerPage)
	repos, err := c.listAll(ctx, c.BaseURL+"/orgs/"+url.PathEscape(owner)+"/repos"+q+"&type=all")
	if errors.Is(err, ErrNotFound) {
		repos, err = c.listAll(ctx, c.BaseURL+"/users/"+url.PathEscape(owner)+"/repos"+q+"&type=owner")
	}
	if err != nil {
		return nil, fmt.Errorf("github repos of %s: %w", owner, err)
	}
	return repos, nil
}

func (c *Client) listAll(ctx context.Context, next string) ([]Repo, error) {
	var all []Repo
	for next != "" {
		var page []Repo
		h, err := c.get(ctx, next, &page)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		next = nextLink(h.Get("Link"))
	}
	return all, nil
}

var linkNext = regexp.MustCompile(`<([^>]+)>\s*;\s*rel="?next"?`)

// nextLink is the rel="next" target of a Link header, or "".
func nextLink(header string) string {
	for part := range strings.SplitSeq(header, ",") {
		if m := linkNext.FindStringSubmatch(part); m != nil {
			return m[1]
		}
	}
	return ""
}

// get fetches endpoint into out, waiting out rate limits: a 403/429 with
// x-ratelimit-remaining 0 waits for x-ratelimit-reset, a retry-after header
// for its seconds; and a success that spends the last request of the window
// waits before returning, so the next call is not a refused one.
func (c *Client) get(ctx context.Context, endpoint string, out any) (http.Header, error) {
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/vnd.github+json")
		req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
		if c.Token != "" {
			req.Header.Set("Authorization", "Bearer "+c.Token)
		}
		resp, err := c.HTTP.Do(req)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if wait, limited := c.rateLimitWait(resp); limited && attempt < 5 {
			if err := c.sleep(ctx, wait, "refused"); err != nil {
				return nil, err
			}
			continue
		}
		switch {
		case resp.StatusCode == http.StatusNotFound:
			return nil, ErrNotFound
		case resp.StatusCode/100 != 2:
			return nil, fmt.Errorf("github answered %s: %s", resp.Status, forge.APIMessage(body))
		}
		if err := json.Unmarshal(body, out); err != nil {
			return nil, fmt.Errorf("github answered unreadable JSON: %w", err)
		}
		if resp.Header.Get("X-Ratelimit-Remaining") == "0" {
			if err := c.sleep(ctx, c.untilReset(resp.Header), "spent"); err != nil {
				return nil, err
			}
		}
		return resp.Header, nil
	}
}

// rateLimitWait says whether resp is a rate-limit refusal and how long to
// wait, per GitHub's documented headers.
func (c *Client) rateLimitWait(resp *http.Response) (time.Duration, bool) {
	if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusTooManyRequests {
		return 0, false
	}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			return time.Duration(n) * time.Second, true
		}
	}
	if resp.Header.Get("X-Ratelimit-Remaining") == "0" {
		return c.untilReset(resp.Header), true
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		// A secondary limit without headers: GitHub asks for at least a minute.
		return time.Minute, true
	}
	return 0, false
}

func (c *Client) untilReset(h http.Header) time.Duration {
	reset, err := strconv.ParseInt(h.Get("X-Ratelimit-Reset"), 10, 64)
	if err != nil {
		return time.Minute
	}
	// The reset is in whole seconds; wait past it rather than up to it.
	return max(time.Unix(reset, 0).Sub(c.now())+time.Second, 0)
}

func (c *Client) sleep(ctx context.Context, d time.Duration, why string) error {
	if d > c.MaxWait {
		return fmt.Errorf("github rate limit: the window resets in %s, beyond the %s this command waits; try again then", d.Round(time.Second), c.MaxWait)
	}
	c.Log.Warn("github rate limit: waiting for the window to reset", "wait", d.Round(time.Millisecond), "limit", why)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
