// Package jobs is the one home of a job's lifecycle: its hash (job:<id>), its
// indexes and its queue entry (ci-jobs) change together, each step one
// atomic Redis script — submit, start (after a claim), progress, finish,
// requeue, release, cancel, dead letter — so no crash between two commands
// can leave a job running with no entry, or an entry for a finished job
// that nobody acks. Retry submits a new job linked to the old one.
//
// The read side of the stream (claim, reclaim, lease heartbeats, trim,
// statistics) is internal/queue; job reads, logs and agents are
// internal/store. Callers see Lifecycle; an agent sees the few methods of a
// Claimed job it holds.
//
// KEDA's redis-streams scaler reads the consumer group's lag (entries added
// but not yet delivered), so the rules here are:
//   - an entry that was not delivered is never deleted, acked or trimmed: a
//     cancelled queued job keeps its entry, and the agent that claims it
//     sees the status, skips it and acks;
//   - a delivered entry is only ever acked together with the write that
//     decides its job (finish, requeue as a new entry, dead letter), so the
//     lag counts every job still to run, and the pending list every job
//     running;
//   - an entry whose holder stopped heartbeating is requeued by the reaper as
//     a new entry (the lag then counts it, and KEDA starts a pod for it even
//     when no agent is left to reclaim it).
package jobs

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/queue"
	"github.com/raibid-labs/raibid-ci/internal/store"
)

// Defaults of Options.
const (
	DefaultMaxDeliveries = 3
	DefaultDeadLetterMax = 10000
	DefaultDeliveryTTL   = 24 * time.Hour
)

// Options configure a Lifecycle; zero values take the defaults.
type Options struct {
	// MaxDeliveries is how often one job may be delivered before it is a
	// dead letter.
	MaxDeliveries int
	// DeadLetterMax is how many dead letters are kept, about.
	DeadLetterMax int64
	// DeliveryTTL is how long a webhook delivery id is remembered.
	DeliveryTTL time.Duration
}

// SubmitHook is told about every job Submit or Retry created, after it is
// queued: counting, launching an agent, posting the pending commit status.
// It runs on the submitting request's goroutine, so slow work belongs in a
// goroutine of its own.
type SubmitHook func(ctx context.Context, j *ci.Job)

// Lifecycle moves jobs through their states. It is safe for concurrent use;
// hooks are added before it is shared.
type Lifecycle struct {
	rdb   redis.UniversalClient
	store *store.Store
	queue *queue.Queue
	keys  store.Keys
	qkeys queue.Keys
	opts  Options
	hooks []SubmitHook
}

// New returns the lifecycle of the jobs in st queued on q (both on the same
// Redis).
func New(st *store.Store, q *queue.Queue, opts Options) *Lifecycle {
	if opts.MaxDeliveries <= 0 {
		opts.MaxDeliveries = DefaultMaxDeliveries
	}
	if opts.DeadLetterMax <= 0 {
		opts.DeadLetterMax = DefaultDeadLetterMax
	}
	if opts.DeliveryTTL <= 0 {
		opts.DeliveryTTL = DefaultDeliveryTTL
	}
	return &Lifecycle{rdb: st.Client(), store: st, queue: q, keys: st.Keys(), qkeys: q.Keys(), opts: opts}
}

// OnSubmit adds a hook run for every job created (see SubmitHook).
func (l *Lifecycle) OnSubmit(h SubmitHook) { l.hooks = append(l.hooks, h) }

// Lease is how long a claimed job stays with its agent without a heartbeat.
func (l *Lifecycle) Lease() time.Duration { return l.queue.Lease() }

func (l *Lifecycle) submitted(ctx context.Context, j *ci.Job) {
	l.store.Publish(ctx, ci.Event{Type: "job", JobID: j.ID, Status: ci.StatusPending, Time: j.CreatedAt})
	for _, h := range l.hooks {
		h(ctx, j)
	}
}

// DeadLetters lists up to n of the stream's dead letters, newest first.
func (l *Lifecycle) DeadLetters(ctx context.Context, n int64) ([]queue.DeadLetter, error) {
	return l.queue.DeadLetters(ctx, n)
}

// RequeueDeadLetter runs the job of dead letter id again (a retry: a new job, in
// this stream) and removes the letter; ok false when there is no such
// letter.
func (l *Lifecycle) RequeueDeadLetter(ctx context.Context, id string) (j *ci.Job, ok bool, err error) {
	d, ok, err := l.queue.DeadLetter(ctx, id)
	if err != nil || !ok {
		return nil, ok, err
	}
	j, err = l.Retry(ctx, d.Fields["job_id"])
	if err != nil {
		return nil, true, err
	}
	return j, true, l.queue.RemoveDeadLetter(ctx, id)
}

// Stream is the queue's stream name ("ci-jobs", "ci-jobs:gpu").
func (l *Lifecycle) Stream() string { return l.qkeys.Stream }
