// Package queue is the read side of raibid's job queue on a Redis Stream:
// claim with a blocking XREADGROUP, reclaim of entries whose holder stopped
// heartbeating, leases kept by heartbeats, the trim of acked entries, and the
// statistics KEDA and dashboards read.
//
// It knows streams, not jobs: it never writes an entry, acks one or decides a
// job's fate. Every write that moves a job on (submit, finish, requeue,
// release, dead letter) changes the job's hash and its entry together, in
// one script of internal/jobs. It never XDELs or trims an entry that was
// not delivered, because KEDA's redis-streams scaler reads the group's lag
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
	DefaultStream = "ci-jobs"
	DefaultGroup  = "ci-workers"
	DefaultLease  = 30 * time.Second
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

// ErrLeaseLost means another consumer holds the entry now (it reclaimed it
// after the lease, or the entry was acked): its old holder must stop.
var ErrLeaseLost = errors.New("queue: lease lost")

// Keys names the Redis keys of one queue.
type Keys struct {
	Stream string // the jobs stream, "ci-jobs"
	Group  string // its consumer group, "ci-workers"
	Dead   string // dead letters, "ci-jobs:dead"
}

// GPUStream is the stream of jobs that need a GPU: only agents with a free
// GPU slot claim from it, and a second ScaledJob scales on its lag.
const GPUStream = DefaultStream + ":gpu"

// GPUKeysWithPrefix names the GPU queue's keys (same consumer group name).
func GPUKeysWithPrefix(prefix string) Keys {
	return Keys{Stream: prefix + GPUStream, Group: DefaultGroup, Dead: prefix + GPUStream + ":dead"}
}

// KeysWithPrefix returns the default key names with prefix in front of each.
func KeysWithPrefix(prefix string) Keys {
	return Keys{
		Stream: prefix + DefaultStream,
		Group:  DefaultGroup,
		Dead:   prefix + DefaultStream + ":dead",
	}
}

// Options configure a Queue.
type Options struct {
	Keys Keys
	// Lease is how long a claimed entry stays with its holder without a
	// heartbeat before another consumer may reclaim it.
	Lease time.Duration
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
	return &Queue{rdb: rdb, opts: opts}
}

// Lease returns the lease duration.
func (q *Queue) Lease() time.Duration { return q.opts.Lease }

// Keys returns the names of the queue's keys.
func (q *Queue) Keys() Keys { return q.opts.Keys }

// Delivery is an entry handed to one consumer.
type Delivery struct {
	ID     string
	Fields map[string]string
	// Deliveries counts this delivery and every earlier one of the same job.
	Deliveries int
	Consumer   string
	// Reclaimed: taken over from a holder that stopped heartbeating.
	Reclaimed bool
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

func toStrings(values map[string]any) map[string]string {
	out := make(map[string]string, len(values))
	for k, v := range values {
		out[k] = fmt.Sprint(v)
	}
	return out
}
