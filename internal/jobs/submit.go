package jobs

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/queue"
	"github.com/raibid-labs/raibid-ci/internal/store"
)

// submitScript makes a job durable in one atomic step: dedupe on the webhook
// delivery id, create the consumer group if missing, write the job hash, add it
// to the index and queue it. With appendfsync always, Redis answers only after
// all of it is on disk, so a 202 means the job and its queue entry exist.
//
// KEYS: delivery key, job hash, index, stream, short-id index, and the
// filter indexes (all paged: store.IndexLua): pending status, repository,
// branch, matrix group (a key that is never written when the job has none),
// and the event's, which is only passed for events other than push.
// ARGV: group, job id, delivery TTL s, has delivery, n hash pairs, pairs..., stream pairs...
var submitScript = redis.NewScript(store.IndexLua + `
if ARGV[4] == '1' then
  local existing = redis.call('GET', KEYS[1])
  if existing then return {existing, 0} end
end
local g = redis.pcall('XGROUP', 'CREATE', KEYS[4], ARGV[1], '0', 'MKSTREAM')
if type(g) == 'table' and g.err and not string.find(g.err, 'BUSYGROUP') then
  return redis.error_reply(g.err)
end
local n = tonumber(ARGV[5])
local h = {}
for i = 6, 5 + 2 * n do h[#h + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], unpack(h))
index_add(KEYS[3], ARGV[2])
index_add(KEYS[5], short_member(ARGV[2]))
index_add(KEYS[6], ARGV[2])
index_add(KEYS[7], ARGV[2])
index_add(KEYS[8], ARGV[2])
if redis.call('HEXISTS', KEYS[2], 'group') == 1 then index_add(KEYS[9], ARGV[2]) end
if KEYS[10] then index_add(KEYS[10], ARGV[2]) end
local e = {}
for i = 6 + 2 * n, #ARGV do e[#e + 1] = ARGV[i] end
redis.call('XADD', KEYS[4], '*', unpack(e))
if ARGV[4] == '1' then redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) end
return {ARGV[2], 1}
`)

// EntryFields is what a queue entry carries for a job: its id, and its
// attempt when it is a retry. Everything else is in the job's hash, which
// the claim reads in the same script that marks the job running: a queued
// job pays for its entry until it is acked, so the entry holds no copy.
func EntryFields(j *ci.Job) map[string]string {
	f := map[string]string{queue.FieldJobID: j.ID}
	if j.Attempt > 1 {
		f["attempt"] = strconv.Itoa(j.Attempt)
	}
	return f
}

var (
	groupPattern = regexp.MustCompile(`^[0-9a-f]{20}$`)
)

// maxChanged bounds the changed-file list a job carries; past it, path
// filters use git's diff instead.
const maxChanged = 1000

// CheckInput refuses a job whose commit, branch or clone URL could be read
// by git as an option or an odd transport, and drops credentials from its
// clone URL (a job holds no secret; agents authenticate with their own
// token). Every way into the queue passes here.
func CheckInput(j *ci.Job) error {
	if j.Event == "" {
		j.Event = ci.EventPush
		if j.Trigger == ci.TriggerManual {
			j.Event = ci.EventManual
		}
	}
	if err := ci.CheckRepo(j.Repo); err != nil {
		return err
	}
	if !ci.ValidEvent(j.Event) {
		return fmt.Errorf("event %q is not push, pull_request, tag, manual or cron: %w", ci.Truncate(j.Event, 40), ci.ErrInvalid)
	}
	for what, c := range map[string]string{"commit": j.Commit, "before": j.Before} {
		if c != "" && !ci.ValidCommit(c) {
			return fmt.Errorf("%s %q is not a 40 or 64 hex digit object id: %w", what, ci.Truncate(c, 80), ci.ErrInvalid)
		}
	}
	if j.Event == ci.EventTag {
		// A tag's job builds the tag's commit; it has no branch.
		if err := ci.CheckTag(j.Tag); err != nil {
			return err
		}
		if j.Commit == "" {
			return fmt.Errorf("tag %s has no commit: %w", j.Tag, ci.ErrInvalid)
		}
		if j.Branch != "" {
			if err := ci.CheckBranch(j.Branch); err != nil {
				return err
			}
		}
	} else if err := ci.CheckBranch(j.Branch); err != nil {
		return err
	}
	if pr := j.PullRequest; pr != nil {
		if pr.Number < 1 {
			return fmt.Errorf("pull request number %d: %w", pr.Number, ci.ErrInvalid)
		}
		if err := ci.CheckBranch(pr.BaseBranch); err != nil {
			return err
		}
	}
	if j.Group != "" && !groupPattern.MatchString(j.Group) {
		return fmt.Errorf("group %q is not a job id: %w", ci.Truncate(j.Group, 40), ci.ErrInvalid)
	}
	if err := ci.CheckMatrix(j.Matrix); err != nil {
		return err
	}
	if len(j.Changed) > maxChanged {
		j.Changed = nil
	}
	for _, f := range j.Changed {
		if len(f) > 4096 || strings.ContainsRune(f, 0) {
			j.Changed = nil // not a path list to trust: diff instead
			break
		}
	}
	if err := ci.CheckCloneURL(j.CloneURL); err != nil {
		return err
	}
	j.CloneURL = ci.RedactURL(j.CloneURL)
	return nil
}

// Submit stores a new pending job and queues it, atomically, then runs the
// submit hooks. With a non-empty deliveryID, a delivery seen before returns
// the first job's id and created false, and nothing is written.
func (l *Lifecycle) Submit(ctx context.Context, j *ci.Job, deliveryID string) (id string, created bool, err error) {
	now := l.store.Now()
	if j.ID == "" {
		j.ID = ci.NewID(now)
	}
	if j.CreatedAt.IsZero() {
		j.CreatedAt = ci.IDTime(j.ID) // the id's millisecond: the hash need not hold it twice
	}
	if j.Attempt == 0 {
		j.Attempt = 1
	}
	if err := CheckInput(j); err != nil {
		return "", false, err
	}
	j.Status = ci.StatusPending
	hash := store.JobFields(j)
	entry := EntryFields(j)
	has := "0"
	dkey := l.keys.Delivery("-")
	if deliveryID != "" {
		has, dkey = "1", l.keys.Delivery(deliveryID)
	}
	args := []any{l.qkeys.Group, j.ID, int(l.opts.DeliveryTTL.Seconds()), has, len(hash)}
	for k, v := range hash {
		args = append(args, k, v)
	}
	for k, v := range entry {
		args = append(args, k, v)
	}
	keys := []string{dkey, l.keys.Job(j.ID), l.keys.Index(), l.qkeys.Stream, l.keys.Short(),
		l.keys.Status(ci.StatusPending), l.keys.Repo(j.Repo), l.keys.Branch(j.Branch), l.keys.Group(j.Group)}
	if j.Event != ci.EventPush {
		keys = append(keys, l.keys.Event(j.Event))
	}
	res, err := submitScript.Run(ctx, l.rdb, keys, args...).Slice()
	if err != nil {
		return "", false, store.Wrap("submit job", err)
	}
	if len(res) != 2 {
		return "", false, fmt.Errorf("submit job: unexpected reply %v", res)
	}
	id, _ = res[0].(string)
	created = res[1] == int64(1)
	if created {
		l.submitted(ctx, j)
	}
	return id, created, nil
}
