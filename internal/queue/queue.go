// Package queue is raibid's job queue on a Redis Stream: enqueue, claim with a
// blocking XREADGROUP, leases kept by heartbeats, reclaim of entries whose holder
// died, dead letters and the statistics KEDA and dashboards read.
//
// It owns the stream, its consumer group and the dead-letter stream, and nothing
// else: job state lives in internal/store. It never XDELs or trims an entry that
// was not delivered, because KEDA's redis-streams scaler reads the group's lag
// and a trimmed stream makes that lag unknown, which stops scaling.
package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of Options.
const (
	DefaultStream        = "ci-jobs"
	DefaultGroup         = "ci-workers"
	DefaultLease         = 30 * time.Second
	DefaultMaxDeliveries = 3
)

// Entry fields the queue itself reads or writes; every other field is the
// caller's and is carried unchanged.
const (
	FieldJobID = "job_id"
	// FieldPrior counts deliveries of the same job made through earlier stream
	// entries (a reaped entry is re-added as a new one, whose Redis delivery
	// counter starts again at zero).
	FieldPrior = "prior_deliveries"
	// FieldReason and FieldOriginalID are set on dead letters.
	FieldReason     = "reason"
	FieldOriginalID = "original_id"
)

// Errors of the queue.
var (
	ErrLeaseLost = errors.New("queue: lease lost")
	ErrNoJobID   = errors.New("queue: entry has no job_id")
)

// Keys names the Redis keys of one queue.
type Keys struct {
	Stream string // the jobs stream, "ci-jobs"
	Group  string // its consumer group, "ci-workers"
	Dead   string // dead letters, "ci-jobs:dead"
}

// KeysWithPrefix returns the default key names with prefix in front of each.
func KeysWithPrefix(prefix string) Keys {
	return Keys{
		Stream: prefix + DefaultStream,
		Group:  DefaultGroup,
		Dead:   prefix + DefaultStream + ":dead",
	}
}

// DefaultDeadLetterMax is how many dead letters are kept.
const DefaultDeadLetterMax = 10000

// DeadLetterFunc is told about an entry before it moves to the dead-letter
// stream, so the job's state can end in error. It must be idempotent: if the
// move fails after it ran, the entry is dead-lettered again later.
type DeadLetterFunc func(ctx context.Context, d *Delivery, reason string) error

// Options configure a Queue.
type Options struct {
	Keys Keys
	// Lease is how long a claimed entry stays with its holder without a
	// heartbeat before another consumer may reclaim it.
	Lease time.Duration
	// MaxDeliveries is how often one job may be delivered before it is a
	// dead letter.
	MaxDeliveries int
	OnDeadLetter  DeadLetterFunc
	// DeadLetterMax is how many dead letters are kept, about (default 10,000).
	DeadLetterMax int64
}

// Queue is a Redis Streams job queue. It is safe for concurrent use.
type Queue struct {
	rdb        redis.UniversalClient
	opts       Options
	groupReady atomic.Bool
}

// New returns a queue on rdb; zero options take their defaults.
func New(rdb redis.UniversalClient, opts Options) *Queue {
	if opts.Keys == (Keys{}) {
		opts.Keys = KeysWithPrefix("")
	}
	if opts.Lease <= 0 {
		opts.Lease = DefaultLease
	}
	if opts.MaxDeliveries <= 0 {
		opts.MaxDeliveries = DefaultMaxDeliveries
	}
	if opts.DeadLetterMax <= 0 {
		opts.DeadLetterMax = DefaultDeadLetterMax
	}
	return &Queue{rdb: rdb, opts: opts}
}

// Lease returns the lease duration.
func (q *Queue) Lease() time.Duration { return q.opts.Lease }

// Delivery is an entry handed to one consumer.
type Delivery struct {
	ID     string
	Fields map[string]string
	// Deliveries counts this delivery and every earlier one of the same job.
	Deliveries int
	Consumer   string
}

// JobID is the job the entry is for.
func (d *Delivery) JobID() string { return d.Fields[FieldJobID] }

func (d *Delivery) prior() int {
	n, _ := strconv.Atoi(d.Fields[FieldPrior])
	return n
}

// EnsureGroup creates the consumer group (and the stream) if missing. It is
// idempotent: BUSYGROUP means somebody already did.
func (q *Queue) EnsureGroup(ctx context.Context) error {
	if q.groupReady.Load() {
		return nil
	}
	err := q.rdb.XGroupCreateMkStream(ctx, q.opts.Keys.Stream, q.opts.Keys.Group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("create consumer group: %w", err)
	}
	q.groupReady.Store(true)
	return nil
}

// isNoGroup reports the error Redis gives when the stream or group vanished
// (a FLUSHALL, or a Redis restarted without persistence).
func isNoGroup(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOGROUP")
}

// Enqueue adds an entry for fields (which must hold job_id) and returns its
// stream id.
func (q *Queue) Enqueue(ctx context.Context, fields map[string]string) (string, error) {
	if fields[FieldJobID] == "" {
		return "", ErrNoJobID
	}
	if err := q.EnsureGroup(ctx); err != nil {
		return "", err
	}
	id, err := q.rdb.XAdd(ctx, &redis.XAddArgs{Stream: q.opts.Keys.Stream, Values: fields}).Result()
	if err != nil {
		return "", fmt.Errorf("enqueue: %w", err)
	}
	return id, nil
}

// Ack marks an entry done for the group.
func (q *Queue) Ack(ctx context.Context, id string) error {
	if err := q.rdb.XAck(ctx, q.opts.Keys.Stream, q.opts.Keys.Group, id).Err(); err != nil {
		return fmt.Errorf("ack %s: %w", id, err)
	}
	return nil
}

// Release hands a claimed entry back to the queue at once, as a new entry,
// without counting the interrupted delivery (an agent shutting down is not the
// job's fault). Adding the new entry and acking the old happen in one MULTI, so
// the job is never in neither place nor in both.
func (q *Queue) Release(ctx context.Context, d *Delivery) (string, error) {
	return q.requeue(ctx, d, d.Deliveries-1)
}

// requeue re-adds d's fields as a new entry with prior deliveries set, and acks d.
func (q *Queue) requeue(ctx context.Context, d *Delivery, prior int) (string, error) {
	fields := copyFields(d.Fields)
	fields[FieldPrior] = strconv.Itoa(prior)
	var add *redis.StringCmd
	_, err := q.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		add = p.XAdd(ctx, &redis.XAddArgs{Stream: q.opts.Keys.Stream, Values: fields})
		p.XAck(ctx, q.opts.Keys.Stream, q.opts.Keys.Group, d.ID)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("requeue %s: %w", d.ID, err)
	}
	return add.Val(), nil
}

func copyFields(in map[string]string) map[string]string {
	out := make(map[string]string, len(in)+1)
	for k, v := range in {
		out[k] = v
	}
	return out
}

func toStrings(values map[string]any) map[string]string {
	out := make(map[string]string, len(values))
	for k, v := range values {
		out[k] = fmt.Sprint(v)
	}
	return out
}
