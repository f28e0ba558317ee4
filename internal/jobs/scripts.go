package jobs

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raibid-labs/raibid-ci/internal/store"
)

// prelude is the head of every lifecycle step script: the names of its keys
// and arguments, and the helpers the steps share. Redis runs a script
// whole or not at all, which is what makes each step atomic.
//
// KEYS: 1 job hash, 2 its log stream, 3 expiry schedule, 4 jobs stream,
// 5 dead-letter stream. ARGV: 1 key prefix, 2 now (ms), 3 the step's time
// (RFC 3339), 4 job TTL (s), 5 log TTL (s), 6 job id, 7 consumer group,
// 8 dead letters kept; the step's own arguments follow from ARGV[9].
const prelude = store.IndexLua + `
local P, NOW, AT = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local JOB_TTL, LOG_TTL, ID, GROUP, DEAD_MAX = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6], ARGV[7], ARGV[8]
local JOB, LOG, EXPIRY, STREAM, DEAD = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local FINAL = {success = true, failed = true, error = true, cancelled = true}

-- move sets fields on the job if its status is one of allowed (comma
-- separated), and changes the status to 'to' unless that is ''. An empty
-- value deletes its field: a queued job pays for every field it holds.
-- The job moves between the status indexes with it, and a final status
-- schedules the job's expiry (Expire removes it and its index entries; the
-- key's own TTL, a day later, is the safety net should no server run it)
-- and starts its log's. Returns the status it had (false: no such job) and
-- whether it moved.
local function move(allowed, to, fields)
  local cur = redis.call('HGET', JOB, 'status')
  if not cur then return false, false end
  if not string.find(',' .. allowed .. ',', ',' .. cur .. ',', 1, true) then return cur, false end
  local set, del = {}, {}
  local function put(k, v)
    if v == '' then del[#del + 1] = k else set[#set + 1] = k; set[#set + 1] = v end
  end
  for i = 1, #fields, 2 do put(fields[i], fields[i + 1]) end
  if to ~= '' then
    put('status', to)
    if to == 'running' then put('started_at', AT) end
    if FINAL[to] then put('finished_at', AT) end
    if to ~= cur then
      index_rem(P .. 'jobs:status:' .. cur, ID)
      index_add(P .. 'jobs:status:' .. to, ID)
    end
  end
  if #set > 0 then redis.call('HSET', JOB, unpack(set)) end
  if #del > 0 then redis.call('HDEL', JOB, unpack(del)) end
  if FINAL[to] then
    redis.call('ZADD', EXPIRY, NOW + 1000 * JOB_TTL, ID)
    redis.call('EXPIRE', JOB, JOB_TTL + 86400)
    redis.call('EXPIRE', LOG, LOG_TTL)
  end
  return cur, true
end

-- holds reports whether consumer holds the entry: a step taken by an agent
-- whose lease was lost (reclaimed by another) must change nothing.
local function holds(entry, consumer)
  local p = redis.call('XPENDING', STREAM, GROUP, entry, entry, 1)
  return #p > 0 and p[1][2] == consumer
end

-- entry_fields is the entry's fields with extra ones set.
local function entry_fields(entry, extra)
  local r = redis.call('XRANGE', STREAM, entry, entry)
  local f = {}
  if #r > 0 then f = r[1][2] end
  for k, v in pairs(extra) do
    local found = false
    for i = 1, #f, 2 do if f[i] == k then f[i + 1] = v; found = true end end
    if not found then f[#f + 1] = k; f[#f + 1] = v end
  end
  return f
end

-- dead_letter ends the job in error (unless it already ended), copies the
-- entry to the dead-letter stream (which keeps about DEAD_MAX) and acks it.
-- The letter names the job's repository, branch and commit, which the entry
-- does not carry, so it still says what failed once the job has expired.
local function dead_letter(entry, reason, deliveries)
  move('pending,running', 'error', {'error', 'dead letter: ' .. reason})
  local extra = {reason = reason, original_id = entry, deliveries = deliveries}
  local h = redis.call('HMGET', JOB, 'repo', 'branch', 'commit')
  if h[1] then extra.repo = h[1] end
  if h[2] then extra.branch = h[2] end
  if h[3] then extra.commit = h[3] end
  redis.call('XADD', DEAD, 'MAXLEN', '~', DEAD_MAX, '*', unpack(entry_fields(entry, extra)))
  redis.call('XACK', STREAM, GROUP, entry)
end

local function rest(from)
  local f = {}
  for i = from, #ARGV do f[#f + 1] = ARGV[i] end
  return f
end
`

// transitionScript: ARGV 9 allowed statuses, 10 new status (” keeps it),
// field/value pairs from 11. Returns -1 (no job), 0 (another status), 1.
var transitionScript = redis.NewScript(prelude + `
local cur, moved = move(ARGV[9], ARGV[10], rest(11))
if not cur then return -1 end
if not moved then return 0 end
return 1
`)

// startScript runs after a claim: a job that ended or expired while queued
// is skipped (acked), one delivered too often is a dead letter, any other
// is marked running on this agent. ARGV 9 entry id, 10 consumer, 11
// deliveries, 12 dead-letter reason (” when within the limit), 13 agent
// name, 14 attempt. Returns {'started', hash pairs} or {'skipped', why}.
var startScript = redis.NewScript(prelude + `
local entry, consumer = ARGV[9], ARGV[10]
if not holds(entry, consumer) then return {'skipped', 'lease lost'} end
local cur = redis.call('HGET', JOB, 'status')
if not cur then
  redis.call('XACK', STREAM, GROUP, entry)
  return {'skipped', 'job not found (expired?)'}
end
if FINAL[cur] then
  redis.call('XACK', STREAM, GROUP, entry)
  return {'skipped', 'job already ' .. cur}
end
if ARGV[12] ~= '' then
  dead_letter(entry, ARGV[12], ARGV[11])
  return {'skipped', 'dead letter: ' .. ARGV[12]}
end
move('pending,running', 'running', {'agent', ARGV[13], 'attempt', ARGV[14], 'error', '', 'steps', ''})
return {'started', redis.call('HGETALL', JOB)}
`)

// finishScript records a verdict and acks the entry, together. ARGV 9
// entry id, 10 consumer, 11 allowed statuses, 12 new status (” keeps it),
// field/value pairs from 13. Returns {'done'}, {'lost'} (nothing written:
// another agent holds the entry), {'gone'} or {'conflict', status} (acked:
// the job was decided by someone else, a cancel).
var finishScript = redis.NewScript(prelude + `
local entry = ARGV[9]
if not holds(entry, ARGV[10]) then return {'lost'} end
redis.call('HDEL', JOB, 'upload_token') -- uploads end with the run
local cur, moved = move(ARGV[11], ARGV[12], rest(13))
redis.call('XACK', STREAM, GROUP, entry)
if not cur then return {'gone'} end
if not moved then return {'conflict', cur} end
return {'done'}
`)

// requeueScript puts a job back in the queue as a new entry and acks the
// old one, or dead-letters it, together with the job's move to pending.
// ARGV 9 entry id, 10 consumer, 11 deliveries so far, 12 dead-letter reason
// (” to requeue), 13 deliveries the new entry carries over, field/value
// pairs for the pending job from 14. Returns {'requeued', new entry id},
// {'dead'}, {'ended'} (the job had ended: just acked) or {'lost'}.
var requeueScript = redis.NewScript(prelude + `
local entry = ARGV[9]
if not holds(entry, ARGV[10]) then return {'lost'} end
redis.call('HDEL', JOB, 'upload_token') -- uploads end with the run
local cur = redis.call('HGET', JOB, 'status')
if not cur or FINAL[cur] then
  redis.call('XACK', STREAM, GROUP, entry)
  return {'ended'}
end
if ARGV[12] ~= '' then
  dead_letter(entry, ARGV[12], ARGV[11])
  return {'dead'}
end
move('pending,running', 'pending', rest(14))
local sid = redis.call('XADD', STREAM, '*', unpack(entry_fields(entry, {prior_deliveries = ARGV[13]})))
redis.call('XACK', STREAM, GROUP, entry)
return {'requeued', sid}
`)

// step runs a lifecycle script for job id with the shared keys and
// arguments (see prelude) and the step's own.
func (l *Lifecycle) step(ctx context.Context, s *redis.Script, id string, at time.Time, args ...any) *redis.Cmd {
	return l.stepWith(ctx, s, nil, id, at, args...)
}

// stepWith is step for a script with keys of its own after the prelude's.
func (l *Lifecycle) stepWith(ctx context.Context, s *redis.Script, extra []string, id string, at time.Time, args ...any) *redis.Cmd {
	keys := append([]string{l.keys.Job(id), l.keys.Log(id), l.keys.Expiry(), l.qkeys.Stream, l.qkeys.Dead}, extra...)
	now := l.store.Now()
	if at.IsZero() {
		at = now
	}
	head := []any{l.keys.Prefix(), now.UnixMilli(), store.FormatTime(at),
		int(l.store.JobTTL().Seconds()), int(l.store.LogTTL().Seconds()), id, l.qkeys.Group, l.opts.DeadLetterMax}
	return s.Run(ctx, l.rdb, keys, append(head, args...)...)
}
