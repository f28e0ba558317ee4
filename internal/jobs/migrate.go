package jobs

import (
	"context"
	"log/slog"

	"github.com/redis/go-redis/v9"

	"github.com/raibid-labs/raibid-ci/internal/store"
)

// upgradeScript moves a batch of jobs from the indexes written before they
// were paged (one plain sorted set each: "jobs", "jobs:short" with
// "tail:id" members, "jobs:status:<s>", "jobs:repo:<r>", "jobs:branch:<b>",
// "jobs:group:<g>") into the paged ones, taking each out of the old sets.
// The old filter sets are found from the job's hash; an id whose hash is
// gone leaves only "jobs" and "jobs:short". The new indexes never use those
// names (their keys end in ":pages" or "#<bound>"), so both can coexist
// while this runs. ARGV: key prefix, batch size. Returns the batch's size
// (fewer than the batch: nothing left to move).
var upgradeScript = redis.NewScript(store.IndexLua + `
local P, n = ARGV[1], tonumber(ARGV[2])
local old = P .. 'jobs'
if redis.call('TYPE', old)['ok'] ~= 'zset' then return 0 end
local ids = redis.call('ZRANGE', old, 0, n - 1)
for _, id in ipairs(ids) do
  redis.call('ZREM', P .. 'jobs:short', string.sub(id, -8) .. ':' .. id)
  local h = redis.call('HMGET', P .. 'job:' .. id, 'status', 'repo', 'branch', 'group', 'event', 'trigger')
  if h[1] then
    index_add(old, id)
    index_add(P .. 'jobs:short', short_member(id))
    local by_event = event_index(P, h[5], h[6])
    if by_event then index_add(by_event, id) end
    local filters = {'jobs:status:', 'jobs:repo:', 'jobs:branch:', 'jobs:group:'}
    for i, f in ipairs(filters) do
      if h[i] then
        redis.call('ZREM', P .. f .. h[i], id)
        index_add(P .. f .. h[i], id)
      end
    end
  end
  redis.call('ZREM', old, id)
end
return #ids
`)

// UpgradeIndexes moves jobs indexed before indexes were paged into the
// paged indexes, so an upgraded server lists every job it kept. It returns
// how many it moved; with nothing to move it costs one command.
func (l *Lifecycle) UpgradeIndexes(ctx context.Context) (int, error) {
	return l.inBatches(ctx, "upgrade job indexes", upgradeScript, nil, l.keys.Prefix())
}

// RunIndexUpgrade upgrades the indexes once and logs what it did.
func (l *Lifecycle) RunIndexUpgrade(ctx context.Context, log *slog.Logger) {
	n, err := l.UpgradeIndexes(ctx)
	switch {
	case err != nil && ctx.Err() == nil:
		log.Warn("upgrade job indexes", "err", err, "moved", n)
	case n > 0:
		log.Info("job indexes upgraded to pages", "jobs", n)
	}
}
