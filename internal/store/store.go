// Package store reads raibid's state in Redis and keeps what is not a job's
// lifecycle: job hashes and their indexes (read: get, list, resolve a short
// id), log streams (job:<id>:log), agent heartbeats (agent:<name>), web
// sessions and the event channel dashboards follow.
//
// It names every key (keys.go) and holds the hash form of a job, which
// internal/jobs writes: a job's status, indexes and queue entry change only
// there, in one script per lifecycle step.
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
	// FinishedTTL is how long a job's summary lives after it finishes.
	FinishedTTL time.Duration
	// LogTTL is how long its log lives after it finishes (at most FinishedTTL).
	LogTTL time.Duration
	// MaxLogBytes is the server-wide maximum of one job's log text: lines
	// past it are counted, not stored (default 1 GiB). Agents cap their
	// jobs' logs lower (--max-log-bytes) and keep the tail.
	MaxLogBytes int64
	// Now is the clock of job ids, creation and heartbeat times (default
	// time.Now): tests move it instead of sleeping. Redis's own clock
	// (TTLs, stream ids, idle times) is not this one.
	Now func() time.Time
}

// Store reads and writes job state. It is safe for concurrent use.
type Store struct {
	rdb  redis.UniversalClient
	opts Options
	keys Keys
	now  func() time.Time
}

// New returns a Store on rdb.
func New(rdb redis.UniversalClient, opts Options) *Store {
	if opts.FinishedTTL <= 0 {
		opts.FinishedTTL = DefaultFinishedTTL
	}
	if opts.LogTTL <= 0 {
		opts.LogTTL = DefaultLogTTL
	}
	opts.LogTTL = min(opts.LogTTL, opts.FinishedTTL)
	if opts.MaxLogBytes <= 0 {
		opts.MaxLogBytes = DefaultMaxLogBytes
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Store{rdb: rdb, opts: opts, keys: Keys{opts.Prefix}, now: now}
}

// Wrap turns a Redis error into a ci error callers can branch on:
// ci.ErrUnavailable unless it already is a ci error.
func Wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ci.ErrNotFound) || errors.Is(err, ci.ErrConflict) || errors.Is(err, ci.ErrInvalid) {
		return fmt.Errorf("%s: %w", op, err)
	}
	return fmt.Errorf("%s: %w: %w", op, ci.ErrUnavailable, err)
}

const timeLayout = time.RFC3339Nano

func FormatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

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

// JobFields is the hash form of a job. What the hash's key or other fields
// already say is left out: the id (it is in the key), the creation time
// when it is the id's, the event when it is the trigger's default, attempt
// 1, and every empty field — a queued job pays for each field it holds
// (see docs/operations.md, "Redis memory").
func JobFields(j *ci.Job) map[string]string {
	steps, _ := json.Marshal(j.Steps)
	f := map[string]string{
		"repo": j.Repo, "clone_url": j.CloneURL, "branch": j.Branch,
		"commit": j.Commit, "author": j.Author, "message": j.Message,
		"status": string(j.Status), "attempt": strconv.Itoa(j.Attempt),
		"retry_of": j.RetryOf, "agent": j.Agent, "trigger": j.Trigger,
		"created_at": FormatTime(j.CreatedAt), "error": j.Error, "steps": string(steps),
		"cache_artifacts": strconv.Itoa(j.CacheArtifacts), "cache_fresh": strconv.Itoa(j.CacheFresh),
		"event": j.Event, "tag": j.Tag, "before": j.Before, "gpus": strconv.Itoa(j.GPUs), "tag_object": j.TagObject,
	}
	if j.PullRequest != nil {
		b, _ := json.Marshal(j.PullRequest)
		f["pull_request"] = string(b)
	}
	if len(j.Changed) > 0 {
		b, _ := json.Marshal(j.Changed)
		f["changed"] = string(b)
	}
	if len(j.Matrix) > 0 {
		b, _ := json.Marshal(j.Matrix)
		f["matrix"] = string(b)
	}
	if j.Group != "" {
		f["group"] = j.Group
	}
	if len(j.Sidecars) > 0 {
		b, _ := json.Marshal(j.Sidecars)
		f["sidecars"] = string(b)
	}
	if j.CreatedAt.Equal(ci.IDTime(j.ID)) {
		delete(f, "created_at")
	}
	if j.Event == defaultEvent(j.Trigger) {
		delete(f, "event")
	}
	if j.Attempt == 1 {
		delete(f, "attempt")
	}
	for k, v := range f {
		if v == "" || v == "0" || v == "[]" || v == "null" {
			delete(f, k)
		}
	}
	if j.StartedAt != nil {
		f["started_at"] = FormatTime(*j.StartedAt)
	}
	if j.FinishedAt != nil {
		f["finished_at"] = FormatTime(*j.FinishedAt)
	}
	return f
}

// defaultEvent is the event a job of trigger has when its hash names none.
func defaultEvent(trigger string) string {
	if trigger == ci.TriggerManual {
		return ci.EventManual
	}
	return ci.EventPush
}

// JobFromHash reads job id from its hash form (see JobFields).
func JobFromHash(id string, h map[string]string) *ci.Job {
	j := &ci.Job{
		ID: id, Repo: h["repo"], CloneURL: ci.RedactURL(h["clone_url"]), Branch: h["branch"],
		Commit: h["commit"], Author: h["author"], Message: h["message"],
		Status: ci.Status(h["status"]), RetryOf: h["retry_of"], Agent: h["agent"],
		Trigger: h["trigger"], Error: h["error"], Event: h["event"], Tag: h["tag"], Before: h["before"], TagObject: h["tag_object"],
		StartedAt: parseTime(h["started_at"]), FinishedAt: parseTime(h["finished_at"]),
	}
	j.Attempt = 1
	if n, err := strconv.Atoi(h["attempt"]); err == nil {
		j.Attempt = n
	}
	j.CacheArtifacts, _ = strconv.Atoi(h["cache_artifacts"])
	j.CacheFresh, _ = strconv.Atoi(h["cache_fresh"])
	j.GPUs, _ = strconv.Atoi(h["gpus"])
	j.CreatedAt = ci.IDTime(id)
	if t := parseTime(h["created_at"]); t != nil {
		j.CreatedAt = *t
	}
	if h["steps"] != "" {
		_ = json.Unmarshal([]byte(h["steps"]), &j.Steps)
	}
	if h["pull_request"] != "" {
		j.PullRequest = &ci.PullRequest{}
		_ = json.Unmarshal([]byte(h["pull_request"]), j.PullRequest)
	}
	if h["changed"] != "" {
		_ = json.Unmarshal([]byte(h["changed"]), &j.Changed)
	}
	if h["matrix"] != "" {
		_ = json.Unmarshal([]byte(h["matrix"]), &j.Matrix)
	}
	if h["artifacts"] != "" {
		_ = json.Unmarshal([]byte(h["artifacts"]), &j.Artifacts)
	}
	j.Group = h["group"]
	if h["phases"] != "" {
		_ = json.Unmarshal([]byte(h["phases"]), &j.Phases)
	}
	if h["sidecars"] != "" {
		_ = json.Unmarshal([]byte(h["sidecars"]), &j.Sidecars)
	}
	if j.Event == "" {
		j.Event = defaultEvent(j.Trigger)
	}
	if j.Steps == nil {
		j.Steps = []ci.Step{} // the API's steps is a list, empty before any step
	}
	return j
}

// Get returns one job, or ci.ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (*ci.Job, error) {
	h, err := s.rdb.HGetAll(ctx, s.keys.Job(id)).Result()
	if err != nil {
		return nil, Wrap("get job", err)
	}
	if len(h) == 0 {
		return nil, fmt.Errorf("job %s: %w", id, ci.ErrNotFound)
	}
	return JobFromHash(id, h), nil
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	return Wrap("ping", s.rdb.Ping(ctx).Err())
}

// RevokeSession records a logged-out web session until it would have
// expired, so its cookie is refused by every server.
func (s *Store) RevokeSession(ctx context.Context, id string, ttl time.Duration) error {
	if ttl <= 0 {
		return nil
	}
	return Wrap("revoke session", s.rdb.Set(ctx, s.opts.Prefix+"session:revoked:"+id, "1", ttl).Err())
}

// SessionRevoked reports whether a web session was logged out. When Redis
// cannot say, the session is treated as revoked: a page then asks to log in
// again rather than trusting a cookie it cannot check.
func (s *Store) SessionRevoked(ctx context.Context, id string) bool {
	n, err := s.rdb.Exists(ctx, s.opts.Prefix+"session:revoked:"+id).Result()
	return err != nil || n > 0
}

// Client is the Redis client the store uses.
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// Keys names the store's Redis keys.
func (s *Store) Keys() Keys { return s.keys }

// Now is the store's clock.
func (s *Store) Now() time.Time { return s.now() }

// LogTTL is how long a finished job's log is kept.
func (s *Store) LogTTL() time.Duration { return s.opts.LogTTL }

// JobTTL is how long a finished job's summary is kept.
func (s *Store) JobTTL() time.Duration { return s.opts.FinishedTTL }
