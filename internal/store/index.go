package store

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// Job indexes are paged. An index (every job, one status, repository,
// branch or matrix group, the short ids) is a set of members in byte order,
// kept as sorted sets of at most PageSize members so that each stays a
// listpack, Redis's compact encoding: about 24 bytes a member instead of
// about 130 in the skiplist a sorted set of a million members becomes.
//
// The pages of index I are the sorted sets "I#<bound>" (score 0, so ordered
// by member); "I:pages" lists the bounds the same way. A page holds the
// members from its bound up to the next bound; a member below every bound
// lives in the page whose bound is "". Adding to a full page splits it: an
// id newer than the page's newest (the common case: ids start with their
// creation time) opens a page of its own, any other splits the page in
// half. A page emptied by removals leaves the directory.
//
// IndexLua holds the helpers, for every script that writes an index (the
// lifecycle scripts of internal/jobs prepend it); the reads below use it too.
const IndexLua = `
local PAGE_SIZE = 128 -- PageSize

-- page_bound is the bound of the page that holds (or would hold) member.
local function page_bound(index, member)
  return redis.call('ZREVRANGEBYLEX', index .. ':pages', '[' .. member, '-', 'LIMIT', 0, 1)[1] or ''
end

-- index_add puts member in index, splitting the page it lands in when
-- that page reaches PAGE_SIZE (so no page passes the listpack limit).
local function index_add(index, member)
  local bound = page_bound(index, member)
  local page = index .. '#' .. bound
  if bound == '' then redis.call('ZADD', index .. ':pages', 0, '') end
  if redis.call('ZADD', page, 0, member) == 0 then return end
  local n = redis.call('ZCARD', page)
  if n < PAGE_SIZE then return end
  -- Split from the member when it is the page's newest, else at the middle.
  local from = member
  if redis.call('ZREVRANGEBYLEX', page, '+', '-', 'LIMIT', 0, 1)[1] ~= member then
    from = redis.call('ZRANGEBYLEX', page, '-', '+', 'LIMIT', math.floor(n / 2), 1)[1]
  end
  local moved = redis.call('ZRANGEBYLEX', page, '[' .. from, '+')
  local scored = {}
  for _, m in ipairs(moved) do scored[#scored + 1] = 0; scored[#scored + 1] = m end
  redis.call('ZADD', index .. '#' .. from, unpack(scored))
  redis.call('ZREMRANGEBYLEX', page, '[' .. from, '+')
  redis.call('ZADD', index .. ':pages', 0, from)
end

-- index_rem takes member out of index; an emptied page leaves the directory.
local function index_rem(index, member)
  local bound = page_bound(index, member)
  local page = index .. '#' .. bound
  if redis.call('ZREM', page, member) == 1 and redis.call('EXISTS', page) == 0 then
    redis.call('ZREM', index .. ':pages', bound)
  end
end

-- event_index is the index of a job's event, from its hash's event and
-- trigger fields (the hash leaves out the event its trigger implies:
-- store.JobFields), or nil for a push, which has none (store.Keys.Event).
local function event_index(prefix, event, trigger)
  if not event then
    event = 'push'
    if trigger == 'manual' then event = 'manual' end
  end
  if event == 'push' then return nil end
  return prefix .. 'jobs:event:' .. event
end

-- short_member is how the short-id index holds an id: its last 8
-- characters (the random part people copy) first, so a prefix finds it.
local function short_member(id)
  return string.sub(id, -8) .. string.sub(id, 1, -9)
end
`

// PageSize is the most members an index page holds: Redis keeps a sorted
// set of up to zset-max-listpack-entries (128 by default, and in the
// configurations raibid writes) members as a listpack.
const PageSize = 128

// ShortMember is id as the short-id index holds it (see IndexLua's
// short_member); IDOfShortMember reverses it.
func ShortMember(id string) string {
	if len(id) < 8 {
		return id
	}
	return id[len(id)-8:] + id[:len(id)-8]
}

// IDOfShortMember is the id a short-id index member stands for.
func IDOfShortMember(m string) string {
	if len(m) < 8 {
		return m
	}
	return m[8:] + m[:8]
}

// indexRangeScript reads up to ARGV[3] members of index KEYS[1] between two
// lexical bounds, walking its pages: ARGV[1] 'rev' (newest first, from
// ARGV[2] down) or 'fwd' (from ARGV[2] up to ARGV[4]). Read only.
var indexRangeScript = redis.NewScript(IndexLua + `
local index, dir, from, n, to = KEYS[1], KEYS[1] .. ':pages', ARGV[2], tonumber(ARGV[3]), ARGV[4]
local rev = ARGV[1] == 'rev'
local out = {}
-- The first page: the one holding 'from' (or, going up from below every
-- bound, the lowest).
local bound
if from == '+' then
  bound = redis.call('ZREVRANGEBYLEX', dir, '+', '-', 'LIMIT', 0, 1)[1]
elseif from == '-' then
  bound = redis.call('ZRANGEBYLEX', dir, '-', '+', 'LIMIT', 0, 1)[1]
else
  bound = redis.call('ZREVRANGEBYLEX', dir, '[' .. string.sub(from, 2), '-', 'LIMIT', 0, 1)[1]
  if not bound and not rev then bound = redis.call('ZRANGEBYLEX', dir, '-', '+', 'LIMIT', 0, 1)[1] end
end
while bound and #out < n do
  local got
  if rev then
    got = redis.call('ZREVRANGEBYLEX', index .. '#' .. bound, from, '-', 'LIMIT', 0, n - #out)
    bound = redis.call('ZREVRANGEBYLEX', dir, '(' .. bound, '-', 'LIMIT', 0, 1)[1]
  else
    got = redis.call('ZRANGEBYLEX', index .. '#' .. bound, from, to, 'LIMIT', 0, n - #out)
    bound = redis.call('ZRANGEBYLEX', dir, '(' .. bound, to, 'LIMIT', 0, 1)[1]
  end
  for _, m in ipairs(got) do out[#out + 1] = m end
end
return out
`)

// indexRemoveScript takes ARGV's members out of index KEYS[1].
var indexRemoveScript = redis.NewScript(IndexLua + `
for _, m in ipairs(ARGV) do index_rem(KEYS[1], m) end
return #ARGV
`)

// indexNewest returns up to n members of index below max ("+": from the
// newest; "(id": below id), newest first: a page's worth costs one round
// trip whatever the index's size.
func (s *Store) indexNewest(ctx context.Context, index, max string, n int) ([]string, error) {
	return indexRangeScript.Run(ctx, s.rdb, []string{index}, "rev", max, n, "-").StringSlice()
}

// indexRange returns up to n members of index from min up to max (lexical
// bounds: "[x" inclusive, "(x" exclusive).
func (s *Store) indexRange(ctx context.Context, index, min, max string, n int) ([]string, error) {
	return indexRangeScript.Run(ctx, s.rdb, []string{index}, "fwd", min, n, max).StringSlice()
}

// indexRemove takes members out of index.
func (s *Store) indexRemove(ctx context.Context, index string, members ...string) error {
	if len(members) == 0 {
		return nil
	}
	args := make([]any, len(members))
	for i, m := range members {
		args[i] = m
	}
	return indexRemoveScript.Run(ctx, s.rdb, []string{index}, args...).Err()
}

// IndexSize counts an index's members (all its pages): for operators and
// tests, not for a request path (it reads every page's size).
func (s *Store) IndexSize(ctx context.Context, index string) (int64, error) {
	bounds, err := s.rdb.ZRange(ctx, index+":pages", 0, -1).Result()
	if err != nil {
		return 0, Wrap("index size", err)
	}
	p := s.rdb.Pipeline()
	cards := make([]*redis.IntCmd, len(bounds))
	for i, b := range bounds {
		cards[i] = p.ZCard(ctx, index+"#"+b)
	}
	if len(bounds) > 0 {
		if _, err := p.Exec(ctx); err != nil {
			return 0, Wrap("index size", err)
		}
	}
	var n int64
	for _, c := range cards {
		n += c.Val()
	}
	return n, nil
}
