package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/store"
)

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

// pairs is c's fields as script arguments (the status goes separately).
func (c Change) pairs() []any {
	fields := map[string]string{}
	for k, v := range c.Fields {
		fields[k] = v
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
	out := make([]any, 0, 2*len(fields))
	for k, v := range fields {
		if v == "[]" && k == "steps" {
			v = "" // no steps yet: the field goes
		}
		out = append(out, k, v)
	}
	return out
}

func statusList(sts []ci.Status) string {
	s := make([]string, len(sts))
	for i, st := range sts {
		s[i] = string(st)
	}
	return strings.Join(s, ",")
}

// Transition moves job id from one of c.From to c.To (an empty To keeps
// the status and only sets the fields). It returns ci.ErrNotFound for a
// missing job and ci.ErrConflict when the job is in another status (someone
// else decided first). It does not touch the queue: the steps an agent
// takes on a job it holds are Claimed's methods.
func (l *Lifecycle) Transition(ctx context.Context, id string, c Change) (*ci.Job, error) {
	args := append([]any{statusList(c.From), string(c.To)}, c.pairs()...)
	n, err := l.step(ctx, transitionScript, id, c.At, args...).Int()
	if err != nil {
		return nil, store.Wrap("update job", err)
	}
	switch n {
	case -1:
		return nil, fmt.Errorf("job %s: %w", id, ci.ErrNotFound)
	case 0:
		j, err := l.store.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		return j, fmt.Errorf("job %s is %s: %w", id, j.Status, ci.ErrConflict)
	}
	at := c.At
	if at.IsZero() {
		at = l.store.Now()
	}
	l.store.Publish(ctx, ci.Event{Type: "job", JobID: id, Status: c.To, Time: at})
	return l.store.Get(ctx, id)
}

// Cancel ends a pending or running job as cancelled. Its entry stays: a
// queued entry must not vanish from KEDA's lag, so the agent that claims it
// sees the status, skips it and acks; a running job's agent sees the status
// within its cancel poll, stops the steps and acks.
func (l *Lifecycle) Cancel(ctx context.Context, id string) (*ci.Job, error) {
	return l.Transition(ctx, id, Change{
		From: []ci.Status{ci.StatusPending, ci.StatusRunning}, To: ci.StatusCancelled,
		Error: "cancelled by request",
	})
}

// Retry submits a new job with the inputs of a finished one, attempt + 1,
// linked to it by retry_of.
func (l *Lifecycle) Retry(ctx context.Context, id string) (*ci.Job, error) {
	orig, err := l.store.Get(ctx, id)
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
		Event: orig.Event, Tag: orig.Tag, PullRequest: orig.PullRequest, Changed: orig.Changed, Before: orig.Before,
		Matrix: orig.Matrix, Group: orig.Group, GPUs: orig.GPUs, Sidecars: orig.Sidecars,
	}
	if _, _, err := l.Submit(ctx, j, ""); err != nil {
		return nil, err
	}
	return l.store.Get(ctx, j.ID)
}

// replyStrings reads a script's reply of strings (nested lists are left as
// they are for the caller).
func replyStrings(cmd *redis.Cmd) ([]any, error) {
	res, err := cmd.Slice()
	if err != nil {
		return nil, err
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("empty script reply")
	}
	return res, nil
}
