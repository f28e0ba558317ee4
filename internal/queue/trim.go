package queue

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// trimScript drops the entries every consumer is done with: those below the
// oldest entry that is still pending or not yet delivered. Never an entry
// an agent holds or one no agent has seen — KEDA's lag (entries-added minus
// entries-read) stays what it was, and nothing queued is lost. XTRIM MINID
// removes entries whose id is below the one given.
//
// KEYS: stream. ARGV: group. Returns the number of entries removed.
var trimScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])
if not ok then return 0 end
local last
for _, g in ipairs(groups) do
  local f = {}
  for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
  if f['name'] == ARGV[1] then last = f['last-delivered-id'] end
end
if not last or last == '0-0' then return 0 end
local minid
local pending = redis.call('XPENDING', KEYS[1], ARGV[1])
if pending[1] > 0 then
  minid = pending[2]
else
  local ms, seq = string.match(last, '^(%d+)-(%d+)$')
  minid = ms .. '-' .. (tonumber(seq) + 1)
end
return redis.call('XTRIM', KEYS[1], 'MINID', minid)
`)

// Trim removes acked entries from the stream (see trimScript) and returns
// how many went.
func (q *Queue) Trim(ctx context.Context) (int64, error) {
	n, err := trimScript.Run(ctx, q.rdb, []string{q.opts.Keys.Stream}, q.opts.Keys.Group).Int64()
	if err != nil {
		return 0, fmt.Errorf("trim: %w", err)
	}
	return n, nil
}
