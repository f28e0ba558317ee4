// Package store keeps raibid's state in Redis: job hashes (job:<id>), the jobs
// index, log streams (job:<id>:log), agent heartbeats (agent:<name>), webhook
// delivery dedupe and the event channel dashboards follow.
//
// It owns the atomic submission of a job (hash, index, dedupe and queue entry
// in one script) because "a push that got 202 has its job and its queue entry"
// must hold even when Redis dies between two commands. It does not claim or ack
// queue entries: that is internal/queue.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/queue"
)

// DefaultFinishedTTL is how long a finished job's summary is kept (what the
// commit status links to); DefaultLogTTL how long its log is.
const (
	DefaultFinishedTTL = 30 * 24 * time.Hour
	DefaultLogTTL      = 24 * time.Hour
)

// DefaultMaxLogBytes is the server-wide maximum of one job's log.
const DefaultMaxLogBytes = 1 << 30

// Options configure a Store.
type Options struct {
	// Prefix goes in front of every key (default none).
	Prefix string
	// Queue names the stream that Submit adds entries to.
	Queue queue.Keys
	// FinishedTTL is how long a job's summary lives after it finishes.
	FinishedTTL time.Duration
	// LogTTL is how long its log lives after it finishes (at most FinishedTTL).
	LogTTL time.Duration
	// DeliveryTTL is how long a webhook delivery id is remembered.
	DeliveryTTL time.Duration
	// MaxLogBytes is the server-wide maximum of one job's log text: lines
	// past it are counted, not stored (default 1 GiB). Agents cap their
	// jobs' logs lower (--max-log-bytes) and keep the tail.
	MaxLogBytes int64
}

// Store reads and writes job state. It is safe for concurrent use.
type Store struct {
	rdb  redis.UniversalClient
	opts Options
	now  func() time.Time
}

// New returns a Store on rdb.
func New(rdb redis.UniversalClient, opts Options) *Store {
	if opts.Queue == (queue.Keys{}) {
		opts.Queue = queue.KeysWithPrefix(opts.Prefix)
	}
	if opts.FinishedTTL <= 0 {
		opts.FinishedTTL = DefaultFinishedTTL
	}
	if opts.LogTTL <= 0 {
		opts.LogTTL = DefaultLogTTL
	}
	opts.LogTTL = min(opts.LogTTL, opts.FinishedTTL)
	if opts.DeliveryTTL <= 0 {
		opts.DeliveryTTL = 24 * time.Hour
	}
	if opts.MaxLogBytes <= 0 {
		opts.MaxLogBytes = DefaultMaxLogBytes
	}
	return &Store{rdb: rdb, opts: opts, now: time.Now}
}

func (s *Store) jobKey(id string) string { return s.opts.Prefix + "job:" + id }
func (s *Store) logKey(id string) string { return s.opts.Prefix + "job:" + id + ":log" }
func (s *Store) indexKey() string        { return s.opts.Prefix + "jobs" }
func (s *Store) shortKey() string        { return s.opts.Prefix + "jobs:short" }

// The filter indexes (ids with score 0, ordered by id = by creation time)
// and the expiry schedule of finished jobs. Their names are built the same
// way in the Lua scripts (transition, expire).
func (s *Store) statusKey(st ci.Status) string { return s.opts.Prefix + "jobs:status:" + string(st) }
func (s *Store) repoKey(repo string) string    { return s.opts.Prefix + "jobs:repo:" + repo }
func (s *Store) branchKey(b string) string     { return s.opts.Prefix + "jobs:branch:" + b }
func (s *Store) expiryKey() string             { return s.opts.Prefix + "jobs:expiry" }
func (s *Store) agentKey(name string) string   { return s.opts.Prefix + "agent:" + name }
func (s *Store) agentsKey() string             { return s.opts.Prefix + "agents" }
func (s *Store) deliveryKey(id string) string  { return s.opts.Prefix + "delivery:" + id }
func (s *Store) eventsChannel() string         { return s.opts.Prefix + "events" }

// wrap turns Redis errors into ci errors callers can branch on.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ci.ErrNotFound) || errors.Is(err, ci.ErrConflict) || errors.Is(err, ci.ErrInvalid) {
		return fmt.Errorf("%s: %w", op, err)
	}
	return fmt.Errorf("%s: %w: %w", op, ci.ErrUnavailable, err)
}

const timeLayout = time.RFC3339Nano

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s string) *time.Time {
	if s == "" {
		return nil
	}
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return nil
	}
	return &t
}

// jobFields is the hash form of a job.
func jobFields(j *ci.Job) map[string]string {
	steps, _ := json.Marshal(j.Steps)
	f := map[string]string{
		"id": j.ID, "repo": j.Repo, "clone_url": j.CloneURL, "branch": j.Branch,
		"commit": j.Commit, "author": j.Author, "message": j.Message,
		"status": string(j.Status), "attempt": strconv.Itoa(j.Attempt),
		"retry_of": j.RetryOf, "agent": j.Agent, "trigger": j.Trigger,
		"created_at": formatTime(j.CreatedAt), "error": j.Error, "steps": string(steps),
		"cache_artifacts": strconv.Itoa(j.CacheArtifacts), "cache_fresh": strconv.Itoa(j.CacheFresh),
	}
	// Empty and zero fields are left out (jobFromHash reads them as such):
	// every queued job pays for each field it holds.
	for k, v := range f {
		if v == "" || v == "0" || v == "[]" || v == "null" {
			delete(f, k)
		}
	}
	if j.StartedAt != nil {
		f["started_at"] = formatTime(*j.StartedAt)
	}
	if j.FinishedAt != nil {
		f["finished_at"] = formatTime(*j.FinishedAt)
	}
	return f
}

func jobFromHash(h map[string]string) *ci.Job {
	j := &ci.Job{
		ID: h["id"], Repo: h["repo"], CloneURL: ci.RedactURL(h["clone_url"]), Branch: h["branch"],
		Commit: h["commit"], Author: h["author"], Message: h["message"],
		Status: ci.Status(h["status"]), RetryOf: h["retry_of"], Agent: h["agent"],
		Trigger: h["trigger"], Error: h["error"],
		StartedAt: parseTime(h["started_at"]), FinishedAt: parseTime(h["finished_at"]),
	}
	j.Attempt, _ = strconv.Atoi(h["attempt"])
	j.CacheArtifacts, _ = strconv.Atoi(h["cache_artifacts"])
	j.CacheFresh, _ = strconv.Atoi(h["cache_fresh"])
	if t := parseTime(h["created_at"]); t != nil {
		j.CreatedAt = *t
	}
	if h["steps"] != "" {
		_ = json.Unmarshal([]byte(h["steps"]), &j.Steps)
	}
	if j.Steps == nil {
		j.Steps = []ci.Step{} // the API's steps is a list, empty before any step
	}
	if j.Steps == nil {
		j.Steps = []ci.Step{}
	}
	return j
}

// Get returns one job, or ci.ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (*ci.Job, error) {
	h, err := s.rdb.HGetAll(ctx, s.jobKey(id)).Result()
	if err != nil {
		return nil, wrap("get job", err)
	}
	if len(h) == 0 {
		return nil, fmt.Errorf("job %s: %w", id, ci.ErrNotFound)
	}
	return jobFromHash(h), nil
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	return wrap("ping", s.rdb.Ping(ctx).Err())
}

// RevokeSession records a logged-out web session until it would have
// expired, so its cookie is refused by every server.
func (s *Store) RevokeSession(ctx context.Context, id string, ttl time.Duration) error {
	if ttl <= 0 {
		return nil
	}
	return wrap("revoke session", s.rdb.Set(ctx, s.opts.Prefix+"session:revoked:"+id, "1", ttl).Err())
}

// SessionRevoked reports whether a web session was logged out. When Redis
// cannot say, the session is treated as revoked: a page then asks to log in
// again rather than trusting a cookie it cannot check.
func (s *Store) SessionRevoked(ctx context.Context, id string) bool {
	n, err := s.rdb.Exists(ctx, s.opts.Prefix+"session:revoked:"+id).Result()
	return err != nil || n > 0
}

// LogTTL is how long a finished job's log is kept.
func (s *Store) LogTTL() time.Duration { return s.opts.LogTTL }

// JobTTL is how long a finished job's summary is kept.
func (s *Store) JobTTL() time.Duration { return s.opts.FinishedTTL }
