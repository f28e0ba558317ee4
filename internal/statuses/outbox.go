// Package statuses is the durable outbox of commit statuses: the one way
// raibid reports to the forge. A status is written to Redis first (the
// caller never waits for Gitea) and posted by a poster loop — in the server
// and in every agent that has a token — which retries with backoff across
// outages and restarts until Gitea takes it, for up to a day.
//
// Only the newest status of a (repository, commit, context) matters: a
// newer one replaces an older one not yet posted, and a status being posted
// while a newer one arrives is followed by the newer, never overtaken by
// it. Posters claim a status with a lease (its due time pushed forward), so
// several processes share one outbox without two posting one status at
// once.
//
// Keys: <prefix>statuses (hash: key → the status and its attempts, as
// JSON) and <prefix>statuses:due (sorted set: key → when it is due, ms).
package statuses

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
)

// Poster posts one status to the forge, once (gitea.Client).
type Poster interface {
	PostStatus(ctx context.Context, repo, sha string, st gitea.CommitStatus) error
}

// Defaults of Options.
const (
	DefaultLease  = 30 * time.Second
	DefaultMaxAge = 24 * time.Hour
)

// Options configure an Outbox; zero values take the defaults.
type Options struct {
	// Prefix goes in front of the outbox's keys (the jobs' key prefix).
	Prefix string
	// Lease is how long a poster holds a status it claimed.
	Lease time.Duration
	// MaxAge is how long a status is retried before it is dropped.
	MaxAge time.Duration
	// Backoff is the first retry delay (default 1 s); it doubles to a
	// minute.
	Backoff time.Duration
	Log     *slog.Logger
}

// Outbox is the durable queue of commit statuses. It is a Poster itself:
// PostStatus stores and returns.
type Outbox struct {
	rdb     redis.UniversalClient
	post    Poster
	opts    Options
	hash    string
	due     string
	wake    chan struct{}
	mu      sync.Mutex
	lastSeq int64
}

// New returns the outbox in rdb; post, when not nil, is what its Run loop
// posts with (a process without a forge token only writes).
func New(rdb redis.UniversalClient, post Poster, opts Options) *Outbox {
	if opts.Lease <= 0 {
		opts.Lease = DefaultLease
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = DefaultMaxAge
	}
	if opts.Backoff <= 0 {
		opts.Backoff = time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Outbox{rdb: rdb, post: post, opts: opts, hash: opts.Prefix + "statuses",
		due: opts.Prefix + "statuses:due", wake: make(chan struct{}, 1)}
}

// entry is one stored status.
type entry struct {
	Repo     string             `json:"repo"`
	SHA      string             `json:"sha"`
	Status   gitea.CommitStatus `json:"status"`
	Added    int64              `json:"added"` // ms
	Attempts int                `json:"attempts,omitempty"`
	Seq      int64              `json:"seq"` // when it was decided (µs): the newer wins
}

func key(repo, sha, context string) string { return repo + "\x00" + sha + "\x00" + context }

// addScript stores a status, replacing one of the same key unless that
// one is newer or as new (its seq, the time it was decided, is not
// smaller: a pending status stored late never replaces the verdict, even
// one decided in the same microsecond — a webhook's pending and a quick
// verdict can be), and makes it due now
// unless it is due or held already (a poster holding the older one makes
// it due when it is done, so the newer never overtakes it).
// KEYS: hash, due. ARGV: key, entry, now (ms), seq.
var addScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local ok, e = pcall(cjson.decode, cur)
  if ok and type(e) == 'table' and tonumber(e.seq) and tonumber(e.seq) >= tonumber(ARGV[4]) then
    return 0
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[1])
return 1
`)

// PostStatus stores st for repo@sha in the outbox, decided now, and wakes
// this process's poster; it fails only when Redis does.
func (o *Outbox) PostStatus(ctx context.Context, repo, sha string, st gitea.CommitStatus) error {
	o.mu.Lock()
	seq := max(time.Now().UnixMicro(), o.lastSeq+1) // later calls here, larger seqs
	o.lastSeq = seq
	o.mu.Unlock()
	return o.add(ctx, repo, sha, st, seq)
}

// PostStatusDecided is PostStatus for a status decided at decided and
// stored later (the server's pending status, stored after the webhook's
// answer): whatever was decided after it for the same context — the
// job's verdict — is never replaced by it.
func (o *Outbox) PostStatusDecided(ctx context.Context, repo, sha string, st gitea.CommitStatus, decided time.Time) error {
	return o.add(ctx, repo, sha, st, decided.UnixMicro())
}

func (o *Outbox) add(ctx context.Context, repo, sha string, st gitea.CommitStatus, seq int64) error {
	if st.Context == "" {
		st.Context = gitea.ContextOf("", "")
	}
	now := time.Now().UnixMilli()
	b, _ := json.Marshal(entry{Repo: repo, SHA: sha, Status: st, Added: now, Seq: seq})
	if err := addScript.Run(ctx, o.rdb, []string{o.hash, o.due}, key(repo, sha, st.Context), string(b), now, seq).Err(); err != nil {
		return fmt.Errorf("store commit status: %w", err)
	}
	select {
	case o.wake <- struct{}{}:
	default:
	}
	return nil
}

// claimScript takes up to ARGV[3] statuses due at ARGV[1] (ms) and holds
// each until ARGV[2]. Returns key, entry pairs.
var claimScript = redis.NewScript(`
local keys = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, k in ipairs(keys) do
  local v = redis.call('HGET', KEYS[1], k)
  if v then
    redis.call('ZADD', KEYS[2], 'XX', ARGV[2], k)
    out[#out + 1] = k
    out[#out + 1] = v
  else
    redis.call('ZREM', KEYS[2], k)
  end
end
return out
`)

// doneScript ends a claimed status: when the stored entry is still the one
// posted (ARGV[2]), it is removed (posted, or dropped) or, with ARGV[3]
// set, replaced by ARGV[3] and due at ARGV[4] (a retry); when a newer one
// replaced it meanwhile, that one is due now (ARGV[5]).
var doneScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur == ARGV[2] then
  if ARGV[3] == '' then
    redis.call('HDEL', KEYS[1], ARGV[1])
    redis.call('ZREM', KEYS[2], ARGV[1])
  else
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
    redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
  end
elseif cur then
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
end
return 1
`)

// Run posts due statuses until ctx ends: at once when this process stored
// one, else every poll (default a second) for those of other processes and
// retries. Without a poster it returns at once.
func (o *Outbox) Run(ctx context.Context, poll time.Duration) {
	if o.post == nil {
		return
	}
	if poll <= 0 {
		poll = time.Second
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		for ctx.Err() == nil {
			n, err := o.Drain(ctx)
			if err != nil && ctx.Err() == nil {
				o.opts.Log.Warn("commit statuses: read the outbox", "err", err)
			}
			if n == 0 || err != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-o.wake:
		case <-t.C:
		}
	}
}

// Drain posts one batch of due statuses (at most 16, in parallel) and
// returns how many it took.
func (o *Outbox) Drain(ctx context.Context) (int, error) {
	if o.post == nil {
		return 0, nil
	}
	now := time.Now()
	res, err := claimScript.Run(ctx, o.rdb, []string{o.hash, o.due}, now.UnixMilli(), now.Add(o.opts.Lease).UnixMilli(), 16).StringSlice()
	if err != nil {
		return 0, fmt.Errorf("claim commit statuses: %w", err)
	}
	var wg sync.WaitGroup
	for i := 0; i+1 < len(res); i += 2 {
		k, raw := res[i], res[i+1]
		wg.Go(func() { o.send(ctx, k, raw) })
	}
	wg.Wait()
	return len(res) / 2, nil
}

// send posts one claimed status and records the outcome.
func (o *Outbox) send(ctx context.Context, k, raw string) {
	var e entry
	if json.Unmarshal([]byte(raw), &e) != nil {
		o.done(ctx, k, raw, "", 0)
		return
	}
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	err := o.post.PostStatus(pctx, e.Repo, e.SHA, e.Status)
	cancel()
	log := o.opts.Log.With("repo", e.Repo, "commit", short(e.SHA), "context", e.Status.Context, "state", e.Status.State)
	switch {
	case err == nil:
		if e.Attempts > 0 {
			log.Info("commit status posted after retries", "attempts", e.Attempts+1)
		}
		o.done(ctx, k, raw, "", 0)
	case ctx.Err() != nil:
		// Shutting down: the lease runs out and another poster (or this
		// one, restarted) posts it.
	case errors.Is(err, gitea.ErrRejected):
		log.Warn("commit status refused; dropped", "err", err)
		o.done(ctx, k, raw, "", 0)
	case time.Since(time.UnixMilli(e.Added)) > o.opts.MaxAge:
		log.Warn("commit status not posted for too long; dropped", "attempts", e.Attempts+1, "err", err)
		o.done(ctx, k, raw, "", 0)
	default:
		e.Attempts++
		delay := min(o.opts.Backoff<<min(e.Attempts-1, 6), time.Minute)
		log.Warn("commit status not posted; will retry", "attempt", e.Attempts, "in", delay, "err", err)
		b, _ := json.Marshal(e)
		o.done(ctx, k, raw, string(b), time.Now().Add(delay).UnixMilli())
	}
}

func (o *Outbox) done(ctx context.Context, k, raw, retry string, at int64) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := doneScript.Run(dctx, o.rdb, []string{o.hash, o.due}, k, raw, retry, strconv.FormatInt(at, 10), time.Now().UnixMilli()).Err(); err != nil {
		o.opts.Log.Warn("commit statuses: record a post", "err", err)
	}
}

// Waiting is how many statuses are not posted yet.
func (o *Outbox) Waiting(ctx context.Context) (int64, error) {
	return o.rdb.HLen(ctx, o.hash).Result()
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}
