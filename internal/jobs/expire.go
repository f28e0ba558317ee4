package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raibid-labs/raibid-ci/internal/store"
	"github.com/raibid-labs/raibid-ci/internal/ticker"
)

// expireScript removes the finished jobs whose time has come, in one step
// each: the hash, the log, and every index entry (main, short ids, status,
// repository, branch), so no index holds what is gone and a filtered list
// never walks dead entries.
//
// KEYS: expiry schedule. ARGV: key prefix, now ms, how many at most.
var expireScript = redis.NewScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  local key = ARGV[1] .. 'job:' .. id
  local h = redis.call('HMGET', key, 'status', 'repo', 'branch', 'group')
  if h[1] then redis.call('ZREM', ARGV[1] .. 'jobs:status:' .. h[1], id) end
  if h[2] then redis.call('ZREM', ARGV[1] .. 'jobs:repo:' .. h[2], id) end
  if h[3] then redis.call('ZREM', ARGV[1] .. 'jobs:branch:' .. h[3], id) end
  if h[4] then redis.call('ZREM', ARGV[1] .. 'jobs:group:' .. h[4], id) end
  redis.call('ZREM', ARGV[1] .. 'jobs', id)
  redis.call('ZREM', ARGV[1] .. 'jobs:short', string.sub(id, -8) .. ':' .. id)
  redis.call('DEL', key, key .. ':log')
  redis.call('ZREM', KEYS[1], id)
end
return #ids
`)

// expireBatch bounds one script call, so a backlog never blocks Redis long.
const expireBatch = 500

// Expire removes every finished job whose retention has passed and returns
// how many went.
func (l *Lifecycle) Expire(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := expireScript.Run(ctx, l.rdb, []string{l.keys.Expiry()}, l.keys.Prefix(), l.store.Now().UnixMilli(), expireBatch).Int()
		if err != nil {
			return total, store.Wrap("expire jobs", err)
		}
		total += n
		if n < expireBatch {
			return total, nil
		}
	}
}

// RunExpiry calls Expire every interval until ctx ends.
func (l *Lifecycle) RunExpiry(ctx context.Context, interval time.Duration, log *slog.Logger) {
	ticker.Every(ctx, interval, func() {
		if n, err := l.Expire(ctx); err != nil && ctx.Err() == nil {
			log.Warn("expire jobs", "err", err)
		} else if n > 0 {
			log.Debug("jobs expired", "jobs", n)
		}
	})
}
