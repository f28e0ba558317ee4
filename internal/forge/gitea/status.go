package gitea

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Commit status states Gitea accepts.
const (
	StatePending = "pending"
	StateSuccess = "success"
	StateFailure = "failure"
	StateError   = "error"
)

// StatusContext is the context name raibid's statuses carry in Gitea.
const StatusContext = "raibid-ci"

// CommitStatus is the body of Gitea's create-commit-status call.
type CommitStatus struct {
	State       string `json:"state"`
	TargetURL   string `json:"target_url,omitempty"`
	Description string `json:"description"`
	Context     string `json:"context"`
}

// Client talks to Gitea's REST API with a token. The token is sent in the
// Authorization header only, and never appears in errors or logs.
type Client struct {
	BaseURL string
	Token   string
	HTTP    *http.Client
	Log     *slog.Logger
	// Backoff is the first retry delay; it doubles up to 5 tries.
	Backoff time.Duration
}

// NewClient returns a client for the Gitea at baseURL.
func NewClient(baseURL, token string, log *slog.Logger) *Client {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Token: token,
		HTTP: &http.Client{Timeout: 15 * time.Second}, Log: log, Backoff: 500 * time.Millisecond}
}

// PostStatus sets the commit status of repo (owner/name) at sha:
// POST /api/v1/repos/{owner}/{repo}/statuses/{sha}. Server errors and network
// failures are retried with backoff; a forge outage costs a status, never a job.
func (c *Client) PostStatus(ctx context.Context, repo, sha string, st CommitStatus) error {
	owner, name, ok := strings.Cut(repo, "/")
	if !ok || owner == "" || name == "" || sha == "" {
		return fmt.Errorf("commit status: repo %q and commit %q are needed", repo, sha)
	}
	if st.Context == "" {
		st.Context = StatusContext
	}
	body, _ := json.Marshal(st)
	endpoint := fmt.Sprintf("%s/api/v1/repos/%s/%s/statuses/%s", c.BaseURL, url.PathEscape(owner), url.PathEscape(name), url.PathEscape(sha))
	delay := c.Backoff
	var lastErr error
	for attempt := 1; attempt <= 5; attempt++ {
		retry, err := c.post(ctx, endpoint, body)
		if err == nil {
			return nil
		}
		lastErr = err
		if !retry {
			break
		}
		c.Log.Warn("gitea commit status: retrying", "repo", repo, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("commit status %s@%.12s: %w", repo, sha, ctx.Err())
		case <-time.After(delay):
		}
		delay *= 2
	}
	return fmt.Errorf("commit status %s@%.12s: %w", repo, sha, lastErr)
}

func (c *Client) post(ctx context.Context, endpoint string, body []byte) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "token "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		// url.Error holds the URL, which holds no secret; the token is a header.
		return true, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	switch {
	case resp.StatusCode/100 == 2:
		return false, nil
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return true, fmt.Errorf("gitea answered %s", resp.Status)
	default:
		return false, fmt.Errorf("gitea answered %s", resp.Status)
	}
}
