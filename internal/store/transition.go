package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/queue"
)

// transitionScript changes a job's status only from one of the allowed ones,
// so two writers (an agent finishing, a user cancelling) cannot overwrite each
// other's verdict. In the same step it moves the job between the status
// indexes, and a final status schedules the job's expiry (its summary is
// kept 30 days by default; Expire removes it and its index entries then)
// and starts its log's (24 hours).
//
// KEYS: job hash, log stream, expiry schedule. ARGV: allowed statuses (comma
// separated), job ttl s, final ('1'/'0'), log ttl s, key prefix, now ms, job
// id, field/value pairs...
var transitionScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return -1 end
local ok = false
for s in string.gmatch(ARGV[1], '[^,]+') do if s == cur then ok = true end end
if not ok then return 0 end
local f = {}
local to
for i = 8, #ARGV, 2 do
  f[#f + 1] = ARGV[i]
  f[#f + 1] = ARGV[i + 1]
  if ARGV[i] == 'status' then to = ARGV[i + 1] end
end
if #f > 0 then redis.call('HSET', KEYS[1], unpack(f)) end
if to and to ~= cur then
  redis.call('ZREM', ARGV[5] .. 'jobs:status:' .. cur, ARGV[7])
  redis.call('ZADD', ARGV[5] .. 'jobs:status:' .. to, 0, ARGV[7])
end
if ARGV[3] == '1' then
  -- Expire deletes the job on schedule, index entries and all; the key's
  -- own TTL, a day later, is the safety net should no server run it.
  redis.call('ZADD', KEYS[3], tonumber(ARGV[6]) + 1000 * tonumber(ARGV[2]), ARGV[7])
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]) + 86400)
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
return 1
`)

// Change describes a status change and the fields set with it.
type Change struct {
	From   []ci.Status
	To     ci.Status
	Agent  string
	Error  string
	Steps  []ci.Step
	At     time.Time
	Fields map[string]string
}

// Transition moves job id from one of c.From to c.To. It returns
// ci.ErrNotFound for a missing job and ci.ErrConflict when the job is in
// another status (someone else decided first).
func (s *Store) Transition(ctx context.Context, id string, c Change) (*ci.Job, error) {
	if c.At.IsZero() {
		c.At = s.now()
	}
	from := make([]string, len(c.From))
	for i, st := range c.From {
		from[i] = string(st)
	}
	fields := map[string]string{"status": string(c.To)}
	for k, v := range c.Fields {
		fields[k] = v
	}
	switch {
	case c.To == ci.StatusRunning:
		fields["started_at"] = formatTime(c.At)
	case c.To.Final():
		fields["finished_at"] = formatTime(c.At)
	}
	if c.Agent != "" {
		fields["agent"] = c.Agent
	}
	if c.Error != "" {
		fields["error"] = c.Error
	}
	if c.Steps != nil {
		b, _ := json.Marshal(c.Steps)
		fields["steps"] = string(b)
	}
	final := "0"
	if c.To.Final() {
		final = "1"
	}
	args := []any{strings.Join(from, ","), int(s.opts.FinishedTTL.Seconds()), final, int(s.opts.LogTTL.Seconds()),
		s.opts.Prefix, s.now().UnixMilli(), id}
	for k, v := range fields {
		args = append(args, k, v)
	}
	n, err := transitionScript.Run(ctx, s.rdb, []string{s.jobKey(id), s.logKey(id), s.expiryKey()}, args...).Int()
	if err != nil {
		return nil, wrap("update job", err)
	}
	switch n {
	case -1:
		return nil, fmt.Errorf("job %s: %w", id, ci.ErrNotFound)
	case 0:
		j, err := s.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		return j, fmt.Errorf("job %s is %s: %w", id, j.Status, ci.ErrConflict)
	}
	s.publish(ctx, ci.Event{Type: "job", JobID: id, Status: c.To, Time: c.At})
	return s.Get(ctx, id)
}

// Cancel ends a pending or running job as cancelled. An agent that later
// claims the pending job's queue entry sees the status, skips it and acks.
func (s *Store) Cancel(ctx context.Context, id string) (*ci.Job, error) {
	return s.Transition(ctx, id, Change{
		From: []ci.Status{ci.StatusPending, ci.StatusRunning}, To: ci.StatusCancelled,
		Error: "cancelled by request",
	})
}

// Retry submits a new job with the inputs of a finished one, attempt + 1,
// linked to it by retry_of.
func (s *Store) Retry(ctx context.Context, id string) (*ci.Job, error) {
	orig, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if !orig.Status.Final() {
		return nil, fmt.Errorf("job %s is %s, retry needs a finished job: %w", id, orig.Status, ci.ErrConflict)
	}
	j := &ci.Job{
		Repo: orig.Repo, CloneURL: orig.CloneURL, Branch: orig.Branch, Commit: orig.Commit,
		Author: orig.Author, Message: orig.Message, Attempt: orig.Attempt + 1,
		RetryOf: orig.ID, Trigger: ci.TriggerRetry,
	}
	if _, _, err := s.Submit(ctx, j, ""); err != nil {
		return nil, err
	}
	return s.Get(ctx, j.ID)
}

// EndDeadLetter is the queue's DeadLetterFunc: the job ends in error with the
// reason. A job already finished (or expired) is left as it is.
func (s *Store) EndDeadLetter(ctx context.Context, d *queue.Delivery, reason string) error {
	_, err := s.Transition(ctx, d.JobID(), Change{
		From:  []ci.Status{ci.StatusPending, ci.StatusRunning},
		To:    ci.StatusError,
		Error: "dead letter: " + reason,
	})
	if err == nil || errors.Is(err, ci.ErrConflict) || errors.Is(err, ci.ErrNotFound) {
		return nil
	}
	return err
}

// UpdateSteps records a job's steps while the job is in one of the given
// statuses (normally running), without touching its status or times.
func (s *Store) UpdateSteps(ctx context.Context, id string, steps []ci.Step, while ...ci.Status) error {
	from := make([]string, len(while))
	for i, st := range while {
		from[i] = string(st)
	}
	b, _ := json.Marshal(steps)
	n, err := transitionScript.Run(ctx, s.rdb, []string{s.jobKey(id), s.logKey(id), s.expiryKey()},
		strings.Join(from, ","), 0, "0", 0, s.opts.Prefix, 0, id, "steps", string(b)).Int()
	if err != nil {
		return wrap("update steps", err)
	}
	switch n {
	case -1:
		return fmt.Errorf("job %s: %w", id, ci.ErrNotFound)
	case 0:
		return fmt.Errorf("job %s changed status: %w", id, ci.ErrConflict)
	}
	s.publish(ctx, ci.Event{Type: "job", JobID: id, Time: s.now()})
	return nil
}
