package jobs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/queue"
	"github.com/raibid-labs/raibid-ci/internal/store"
)

// ErrLeaseLost means another agent holds the job's entry now: the step was
// not taken, and the holder must stop the job without writing anything.
var ErrLeaseLost = queue.ErrLeaseLost

// Claimed is one delivery of a job to an agent, as Claim returns it: what
// the agent holds while the job runs, and the steps it may take on it.
type Claimed struct {
	Job   *ci.Job
	Entry *queue.Delivery
	l     *Lifecycle
}

// Skipped is told why a claimed entry was not started (its job ended or
// expired while queued, or it was delivered too often); may be nil.
type Skipped func(entry *queue.Delivery, why string)

// Claim waits up to block for a job and marks it running on agent. Entries
// whose job ended or expired while queued are acked and skipped, entries
// delivered more than MaxDeliveries times are dead letters; both are told to
// skipped and the wait goes on. It returns nil, nil when nothing came.
func (l *Lifecycle) Claim(ctx context.Context, agent string, block time.Duration, skipped Skipped) (*Claimed, error) {
	deadline := time.Now().Add(block)
	for {
		d, err := l.queue.Claim(ctx, agent, time.Until(deadline))
		if err != nil || d == nil {
			return nil, err
		}
		run, why, err := l.start(ctx, d, agent)
		if err != nil {
			// The entry stays pending with this agent; the reaper hands it
			// on after the lease.
			return nil, fmt.Errorf("start job %s: %w", d.JobID(), err)
		}
		if run != nil {
			return run, nil
		}
		if skipped != nil {
			skipped(d, why)
		}
		if time.Until(deadline) <= 0 {
			return nil, nil
		}
	}
}

// start marks the job of a claimed entry running (see startScript).
func (l *Lifecycle) start(ctx context.Context, d *queue.Delivery, agent string) (*Claimed, string, error) {
	dead := ""
	switch {
	case d.Reclaimed && d.Deliveries > l.opts.MaxDeliveries:
		dead = fmt.Sprintf("delivered %d times without finishing (limit %d); the last holder stopped heartbeating", d.Deliveries-1, l.opts.MaxDeliveries)
	case d.Deliveries > l.opts.MaxDeliveries:
		dead = fmt.Sprintf("delivered %d times, more than the limit of %d", d.Deliveries, l.opts.MaxDeliveries)
	}
	attempt, err := strconv.Atoi(d.Fields["attempt"])
	if err != nil || attempt < 1 {
		attempt = 1
	}
	attempt += d.Deliveries - 1
	res, err := l.step(ctx, startScript, d.JobID(), time.Time{},
		d.ID, d.Consumer, d.Deliveries, dead, agent, attempt).Slice()
	if err != nil {
		return nil, "", store.Wrap("start job", err)
	}
	if len(res) != 2 {
		return nil, "", fmt.Errorf("start job: unexpected reply %v", res)
	}
	if res[0] != "started" {
		why, _ := res[1].(string)
		return nil, why, nil
	}
	pairs, _ := res[1].([]any)
	h := make(map[string]string, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		k, _ := pairs[i].(string)
		v, _ := pairs[i+1].(string)
		h[k] = v
	}
	job := store.JobFromHash(d.JobID(), h)
	l.store.Publish(ctx, ci.Event{Type: "job", JobID: job.ID, Status: ci.StatusRunning, Agent: agent, Time: l.store.Now()})
	return &Claimed{Job: job, Entry: d, l: l}, "", nil
}

// Heartbeat renews the run's lease. ErrLeaseLost means another agent holds
// the job now.
func (r *Claimed) Heartbeat(ctx context.Context) error { return r.l.queue.Heartbeat(ctx, r.Entry) }

// Cancelled reports whether someone cancelled the job.
func (r *Claimed) Cancelled(ctx context.Context) (bool, error) {
	st, err := r.l.rdb.HGet(ctx, r.l.keys.Job(r.Job.ID), "status").Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	return ci.Status(st) == ci.StatusCancelled, store.Wrap("job status", err)
}

// Progress records the steps so far, while the job is running.
func (r *Claimed) Progress(ctx context.Context, steps []ci.Step) error {
	_, err := r.l.Transition(ctx, r.Job.ID, Change{From: []ci.Status{ci.StatusRunning}, Steps: steps})
	return err
}

// Peeled records the commit a tag's job builds when the event named the
// tag object (an annotated tag): the job's commit, RAIBID_COMMIT, its page
// and its statuses all name the commit.
func (r *Claimed) Peeled(ctx context.Context, commit string) error {
	if !ci.ValidCommit(commit) {
		return fmt.Errorf("peeled commit %q: %w", ci.Truncate(commit, 80), ci.ErrInvalid)
	}
	_, err := r.l.Transition(ctx, r.Job.ID, Change{From: []ci.Status{ci.StatusRunning}, Fields: map[string]string{"commit": commit, "tag_object": r.Job.Commit}})
	if err == nil {
		r.Job.TagObject, r.Job.Commit = r.Job.Commit, commit
	}
	return err
}

// AllowUploads records the hash of the token the agent uploads this run's
// artifacts with (the token itself stays with the agent, never the build).
func (r *Claimed) AllowUploads(ctx context.Context, tokenHash string) error {
	_, err := r.l.Transition(ctx, r.Job.ID, Change{From: []ci.Status{ci.StatusRunning}, Fields: map[string]string{"upload_token": tokenHash}})
	return err
}

// Verdict is how a run ended.
type Verdict struct {
	Status ci.Status
	Error  string
	Steps  []ci.Step
	// Fields are recorded with it (cache figures).
	Fields map[string]string
}

// Finish records the verdict and acks the entry, in one step. ci.ErrConflict
// means the job had been decided meanwhile (a cancel): the entry is acked
// and the verdict dropped. ErrLeaseLost means nothing was written.
func (r *Claimed) Finish(ctx context.Context, v Verdict) (*ci.Job, error) {
	c := Change{Error: v.Error, Steps: v.Steps, Fields: v.Fields}
	return r.end(ctx, ci.StatusRunning, v.Status, c)
}

// EndCancelled acks the run of a job that was cancelled while it ran,
// recording how far its steps got.
func (r *Claimed) EndCancelled(ctx context.Context, steps []ci.Step) error {
	_, err := r.end(ctx, ci.StatusCancelled, "", Change{Steps: steps})
	return err
}

func (r *Claimed) end(ctx context.Context, from, to ci.Status, c Change) (*ci.Job, error) {
	args := append([]any{r.Entry.ID, r.Entry.Consumer, string(from), string(to)}, c.pairs()...)
	res, err := replyStrings(r.l.step(ctx, finishScript, r.Job.ID, time.Time{}, args...))
	if err != nil {
		return nil, store.Wrap("finish job", err)
	}
	switch res[0] {
	case "lost":
		return nil, fmt.Errorf("finish job %s: %w", r.Job.ID, ErrLeaseLost)
	case "gone":
		return nil, fmt.Errorf("job %s: %w", r.Job.ID, ci.ErrNotFound)
	case "conflict":
		return nil, fmt.Errorf("job %s is %v: %w", r.Job.ID, res[1], ci.ErrConflict)
	}
	r.l.store.Publish(ctx, ci.Event{Type: "job", JobID: r.Job.ID, Status: to, Agent: r.Job.Agent, Time: r.l.store.Now()})
	return r.l.store.Get(ctx, r.Job.ID)
}

// Requeue gives this delivery up because the system failed (the clone
// failed, the forge was down): the job goes back to pending, with the reason
// as its error, in a new entry counted as a delivery — or it ends as a
// dead letter when it has had MaxDeliveries. It reports the dead letter.
func (r *Claimed) Requeue(ctx context.Context, reason string) (dead bool, err error) {
	d := r.Entry
	deadReason := ""
	if d.Deliveries >= r.l.opts.MaxDeliveries {
		deadReason = fmt.Sprintf("%s (delivered %d times, limit %d)", reason, d.Deliveries, r.l.opts.MaxDeliveries)
	}
	out, err := r.l.requeue(ctx, d, deadReason, d.Deliveries,
		"agent", "", "steps", "", "error", fmt.Sprintf("attempt %d: %s", r.Job.Attempt, reason))
	return out == "dead", err
}

// Release hands the job back at once (the agent is shutting down: not the
// job's fault, so the delivery is not counted): pending again, in a new
// entry, in one step.
func (r *Claimed) Release(ctx context.Context) error {
	_, err := r.l.requeue(ctx, r.Entry, "", r.Entry.Deliveries-1, "agent", "", "error", "", "steps", "")
	return err
}

// requeue runs requeueScript for d and returns its outcome.
func (l *Lifecycle) requeue(ctx context.Context, d *queue.Delivery, deadReason string, carry int, pending ...any) (string, error) {
	args := append([]any{d.ID, d.Consumer, d.Deliveries, deadReason, carry}, pending...)
	res, err := replyStrings(l.step(ctx, requeueScript, d.JobID(), time.Time{}, args...))
	if err != nil {
		return "", store.Wrap("requeue job", err)
	}
	out, _ := res[0].(string)
	switch out {
	case "lost":
		return out, fmt.Errorf("requeue job %s: %w", d.JobID(), ErrLeaseLost)
	case "requeued":
		l.store.Publish(ctx, ci.Event{Type: "job", JobID: d.JobID(), Status: ci.StatusPending, Time: l.store.Now()})
	case "dead":
		l.store.Publish(ctx, ci.Event{Type: "job", JobID: d.JobID(), Status: ci.StatusError, Time: l.store.Now()})
	}
	return out, nil
}
