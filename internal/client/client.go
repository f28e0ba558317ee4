// Package client is the typed Go client of raibid's HTTP API and its SSE
// streams, used by `raibid job`, the dashboard and tests. It imports only the
// domain package: a client never reaches Redis.
package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/api"
	"github.com/raibid-labs/raibid-ci/internal/ci"
)

// Client calls one raibid server.
type Client struct {
	base  string
	token string
	// TokenSource says where the token came from ("RAIBID_TOKEN",
	// "/path/api-token", "none"), for the message of a 401.
	TokenSource string
	http        *http.Client
	// stream has no overall timeout: SSE responses last as long as needed.
	stream *http.Client
}

// New returns a client for the server at baseURL, sending token as a bearer
// token when it is not empty.
func New(baseURL, token string) *Client {
	return &Client{
		base: strings.TrimRight(baseURL, "/"), token: token,
		http:   &http.Client{Timeout: 30 * time.Second},
		stream: &http.Client{},
	}
}

// BaseURL is the server's URL.
func (c *Client) BaseURL() string { return c.base }

// APIError is an answer other than 2xx, with the server's one-line message.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status) }

// IsNotFound reports whether err is a 404 from the server.
func IsNotFound(err error) bool {
	var a *APIError
	return errors.As(err, &a) && a.Status == http.StatusNotFound
}

func (c *Client) newRequest(ctx context.Context, method, path string, body any) (*http.Request, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// do sends a request and decodes a JSON answer into out (when not nil).
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	req, err := c.newRequest(ctx, method, path, body)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.unreachable(fmt.Errorf("%s %s: %w", method, path, unwrapURLError(err)))
	}
	defer resp.Body.Close()
	if err := c.checkStatus(resp); err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// unwrapURLError drops the "Get "url":" prefix; the caller names the path.
func unwrapURLError(err error) error {
	var u *url.Error
	if errors.As(err, &u) {
		return u.Err
	}
	return err
}

// unreachable names the server a request could not reach.
func (c *Client) unreachable(err error) error {
	return fmt.Errorf("%w (is raibid running at %s? --server or RAIBID_SERVER names another)", err, c.base)
}

// checkStatus turns an answer other than 2xx into an APIError; a 401 says
// which server refused which token.
func (c *Client) checkStatus(resp *http.Response) error {
	err := checkStatus(resp)
	var a *APIError
	if errors.As(err, &a) && a.Status == http.StatusUnauthorized {
		src := c.TokenSource
		if src == "" {
			src = "none"
		}
		a.Message = fmt.Sprintf("%s: %s refused the token (token from %s; raibid up writes it to <data-dir>/api-token)", a.Message, c.base, src)
	}
	return err
}

func checkStatus(resp *http.Response) error {
	if resp.StatusCode/100 == 2 {
		return nil
	}
	var e api.Error
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if json.Unmarshal(b, &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(string(b))
		if e.Error == "" {
			e.Error = http.StatusText(resp.StatusCode)
		}
	}
	return &APIError{Status: resp.StatusCode, Message: e.Error}
}

// ListJobs lists jobs, newest first.
func (c *Client) ListJobs(ctx context.Context, f api.JobFilter) (*api.JobPage, error) {
	path := "/jobs"
	if q := f.Query(); len(q) > 0 {
		path += "?" + q.Encode()
	}
	var p api.JobPage
	return &p, c.do(ctx, "GET", path, nil, &p)
}

// GetJob returns one job.
func (c *Client) GetJob(ctx context.Context, id string) (*ci.Job, error) {
	var j ci.Job
	return &j, c.do(ctx, "GET", "/jobs/"+url.PathEscape(id), nil, &j)
}

// CreateJob starts a job by hand.
func (c *Client) CreateJob(ctx context.Context, n api.NewJob) (*ci.Job, error) {
	var j ci.Job
	return &j, c.do(ctx, "POST", "/jobs", n, &j)
}

// CancelJob cancels a pending or running job.
func (c *Client) CancelJob(ctx context.Context, id string) (*ci.Job, error) {
	var j ci.Job
	return &j, c.do(ctx, "POST", "/jobs/"+url.PathEscape(id)+"/cancel", nil, &j)
}

// RetryJob runs a finished job again as a new job.
func (c *Client) RetryJob(ctx context.Context, id string) (*ci.Job, error) {
	var j ci.Job
	return &j, c.do(ctx, "POST", "/jobs/"+url.PathEscape(id)+"/retry", nil, &j)
}

// DeadLetters lists up to limit dead letters, newest first.
func (c *Client) DeadLetters(ctx context.Context, limit int) ([]api.DeadLetter, error) {
	var out api.DeadLetterList
	return out.DeadLetters, c.do(ctx, "GET", "/dead-letters?limit="+strconv.Itoa(limit), nil, &out)
}

// RequeueDeadLetter runs a dead letter's job again and returns the new job.
func (c *Client) RequeueDeadLetter(ctx context.Context, id string) (*ci.Job, error) {
	var j ci.Job
	return &j, c.do(ctx, "POST", "/dead-letters/"+url.PathEscape(id)+"/requeue", nil, &j)
}

// Agents lists live agents.
func (c *Client) Agents(ctx context.Context) ([]api.Agent, error) {
	var out api.AgentList
	return out.Agents, c.do(ctx, "GET", "/agents", nil, &out)
}

// Queue returns the queue's figures.
func (c *Client) Queue(ctx context.Context) (*api.QueueStats, error) {
	var q api.QueueStats
	return &q, c.do(ctx, "GET", "/queue", nil, &q)
}

// Logs writes a job's whole log to w, or with step only that step's lines.
func (c *Client) Logs(ctx context.Context, id, step string, w io.Writer) error {
	path := "/jobs/" + url.PathEscape(id) + "/logs"
	if step != "" {
		path += "?step=" + url.QueryEscape(step)
	}
	req, err := c.newRequest(ctx, "GET", path, nil)
	if err != nil {
		return err
	}
	resp, err := c.stream.Do(req)
	if err != nil {
		return c.unreachable(fmt.Errorf("logs: %w", unwrapURLError(err)))
	}
	defer resp.Body.Close()
	if err := c.checkStatus(resp); err != nil {
		return err
	}
	_, err = io.Copy(w, resp.Body)
	return err
}

// System returns the server's system figures.
func (c *Client) System(ctx context.Context) (*api.System, error) {
	var s api.System
	return &s, c.do(ctx, "GET", "/system", nil, &s)
}

// MaxAgents returns the maximum number of agents the server manages.
func (c *Client) MaxAgents(ctx context.Context) (int, error) {
	var out api.Scale
	if err := c.do(ctx, "GET", "/scale", nil, &out); err != nil || out.MaxAgents == nil {
		return 0, err
	}
	return *out.MaxAgents, nil
}

// SetMaxAgents changes the maximum number of agents.
func (c *Client) SetMaxAgents(ctx context.Context, n int) (int, error) {
	var out api.Scale
	if err := c.do(ctx, "PUT", "/scale", api.Scale{MaxAgents: &n}, &out); err != nil || out.MaxAgents == nil {
		return 0, err
	}
	return *out.MaxAgents, nil
}

// Mirrors is GET /mirrors: enabled is false when the server has no mirrors file.
func (c *Client) Mirrors(ctx context.Context) (enabled bool, mirrors []api.Mirror, err error) {
	var out api.MirrorList
	err = c.do(ctx, "GET", "/mirrors", nil, &out)
	return out.Enabled, out.Mirrors, err
}

// SyncMirror asks the server to make Gitea sync target (owner/name) now.
func (c *Client) SyncMirror(ctx context.Context, target string) error {
	owner, name, ok := strings.Cut(target, "/")
	if !ok {
		return fmt.Errorf("mirror %q: want owner/name", target)
	}
	return c.do(ctx, "POST", "/mirrors/"+url.PathEscape(owner)+"/"+url.PathEscape(name)+"/sync", nil, nil)
}

// Schedules lists the cron schedules.
func (c *Client) Schedules(ctx context.Context) ([]api.Schedule, error) {
	var out struct {
		Schedules []api.Schedule `json:"schedules"`
	}
	return out.Schedules, c.do(ctx, "GET", "/schedules", nil, &out)
}

// AddSchedule adds a cron schedule.
func (c *Client) AddSchedule(ctx context.Context, n api.NewSchedule) (*api.Schedule, error) {
	var s api.Schedule
	return &s, c.do(ctx, "POST", "/schedules", n, &s)
}

// RemoveSchedule removes a cron schedule.
func (c *Client) RemoveSchedule(ctx context.Context, id string) error {
	return c.do(ctx, "DELETE", "/schedules/"+url.PathEscape(id), nil, nil)
}

// CancelGroup cancels every pending or running job of a matrix and returns
// their ids.
func (c *Client) CancelGroup(ctx context.Context, group string) ([]string, error) {
	var out struct {
		Cancelled []string `json:"cancelled"`
	}
	return out.Cancelled, c.do(ctx, "POST", "/groups/"+url.PathEscape(group)+"/cancel", nil, &out)
}

// RetryGroup runs a finished matrix's combinations that did not pass again
// (all when all passed) and returns the new jobs.
func (c *Client) RetryGroup(ctx context.Context, group string) ([]ci.Job, error) {
	var out struct {
		Jobs []ci.Job `json:"jobs"`
	}
	return out.Jobs, c.do(ctx, "POST", "/groups/"+url.PathEscape(group)+"/retry", nil, &out)
}

// Artifacts lists a job's artifacts.
func (c *Client) Artifacts(ctx context.Context, id string) ([]api.Artifact, error) {
	var out struct {
		Artifacts []api.Artifact `json:"artifacts"`
	}
	return out.Artifacts, c.do(ctx, "GET", "/jobs/"+url.PathEscape(id)+"/artifacts", nil, &out)
}

// DownloadArtifact writes a job's artifact to w and returns the sha256 of
// what it wrote; ErrChecksum when that is not the server's.
func (c *Client) DownloadArtifact(ctx context.Context, id, name string, w io.Writer) (string, error) {
	req, err := c.newRequest(ctx, "GET", "/jobs/"+url.PathEscape(id)+"/artifacts/"+url.PathEscape(name), nil)
	if err != nil {
		return "", err
	}
	resp, err := c.stream.Do(req)
	if err != nil {
		return "", c.unreachable(fmt.Errorf("artifact: %w", unwrapURLError(err)))
	}
	defer resp.Body.Close()
	if err := c.checkStatus(resp); err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(w, h), resp.Body); err != nil {
		return "", fmt.Errorf("artifact %s: %w", name, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if want := resp.Header.Get("X-Checksum-Sha256"); want != "" && want != sum {
		return sum, fmt.Errorf("artifact %s: sha256 %s, the server recorded %s: %w", name, sum, want, ErrChecksum)
	}
	return sum, nil
}

// ErrChecksum is a download whose sha256 is not the one recorded.
var ErrChecksum = errors.New("checksum mismatch")
