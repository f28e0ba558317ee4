package gitea

import (
	"context"
	"errors"
	"fmt"
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

// StatusContext is the prefix of every context raibid's statuses carry in
// Gitea (see ContextOf).
const StatusContext = "raibid-ci"

// ContextOf is the status context of a job of event (push, pull_request,
// tag, manual, cron) and of the matrix combination labelled label
// ("toolchain=stable,target=x86_64"): raibid-ci/push,
// raibid-ci/pr/toolchain=stable. One commit's push, pull request, tag and
// cron builds keep statuses of their own, as Woodpecker and Gitea Actions
// keep them apart; a matrix's aggregate is its event's context without a
// label.
func ContextOf(event, label string) string {
	name := StatusContext + "/" + eventContextName(event)
	if label != "" {
		name += "/" + label
	}
	return name
}

// eventContextName is an event's part of a status context.
func eventContextName(event string) string {
	switch event {
	case "", "push":
		return "push"
	case "pull_request":
		return "pr"
	}
	return event
}

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
	// MigrateTimeout bounds one migration (default DefaultMigrateTimeout):
	// Gitea clones the whole source before it answers, which takes minutes
	// for a large repository — far past HTTP's timeout for other calls.
	MigrateTimeout time.Duration
}

// DefaultMigrateTimeout is how long a migration may take before it is
// reported as still running in Gitea.
const DefaultMigrateTimeout = 30 * time.Minute

// NewClient returns a client for the Gitea at baseURL.
func NewClient(baseURL, token string, log *slog.Logger) *Client {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Token: token,
		HTTP: &http.Client{Timeout: 15 * time.Second}, Log: log}
}

// ErrRejected means Gitea refused a commit status for good (a bad token,
// an unknown repository or commit): posting it again will not help.
var ErrRejected = errors.New("gitea refused the commit status")

// PostStatus sets the commit status of repo (owner/name) at sha, once:
// POST /api/v1/repos/{owner}/{repo}/statuses/{sha}. A refusal that no retry
// can fix wraps ErrRejected; network failures, server errors and
// throttling do not (internal/statuses retries them).
func (c *Client) PostStatus(ctx context.Context, repo, sha string, st CommitStatus) error {
	owner, name, ok := strings.Cut(repo, "/")
	if !ok || owner == "" || name == "" || sha == "" {
		return fmt.Errorf("commit status: repo %q and commit %q are needed: %w", repo, sha, ErrRejected)
	}
	if st.Context == "" {
		st.Context = ContextOf("", "")
	}
	path := fmt.Sprintf("/api/v1/repos/%s/%s/statuses/%s", url.PathEscape(owner), url.PathEscape(name), url.PathEscape(sha))
	code, err := c.call(ctx, http.MethodPost, path, st, nil)
	if err == nil {
		return nil
	}
	if code != 0 && code < 500 && code != http.StatusTooManyRequests && code != http.StatusRequestTimeout {
		return fmt.Errorf("commit status %s@%.12s: %w: %w", repo, sha, ErrRejected, err)
	}
	return fmt.Errorf("commit status %s@%.12s: %w", repo, sha, err)
}
