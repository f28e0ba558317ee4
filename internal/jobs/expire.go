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
// repository, branch, group, event), so no index holds what is gone and a
// filtered list never walks dead entries.
//
// KEYS: expiry schedule. ARGV: key prefix, now ms, how many at most.
var expireScript = redis.NewScript(store.IndexLua + `
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  local key = ARGV[1] .. 'job:' .. id
  local h = redis.call('HMGET', key, 'status', 'repo', 'branch', 'group', 'event', 'trigger')
  if h[1] then index_rem(ARGV[1] .. 'jobs:status:' .. h[1], id) end
  local by_event = event_index(ARGV[1], h[5], h[6])
  if h[1] and by_event then index_rem(by_event, id) end
  if h[2] then index_rem(ARGV[1] .. 'jobs:repo:' .. h[2], id) end
  if h[3] then index_rem(ARGV[1] .. 'jobs:branch:' .. h[3], id) end
  if h[4] then index_rem(ARGV[1] .. 'jobs:group:' .. h[4], id) end
  index_rem(ARGV[1] .. 'jobs', id)
  index_rem(ARGV[1] .. 'jobs:short', short_member(id))
  redis.call('DEL', key, key .. ':log')
  redis.call('ZREM', KEYS[1], id)
end
return #ids
`)

// scriptBatch bounds one call of a script that works through a backlog
// (expiry, the index upgrade), so a backlog never blocks Redis long.
const scriptBatch = 500

// inBatches calls s, whose last argument is scriptBatch, until a call
// handles fewer than that many, and returns how many all calls handled.
func (l *Lifecycle) inBatches(ctx context.Context, op string, s *redis.Script, keys []string, args ...any) (int, error) {
	total := 0
	for {
		n, err := s.Run(ctx, l.rdb, keys, append(args, scriptBatch)...).Int()
		if err != nil {
			return total, store.Wrap(op, err)
		}
		total += n
		if n < scriptBatch {
			return total, nil
		}
	}
}

// Expire removes every finished job whose retention has passed and returns
// how many went.
func (l *Lifecycle) Expire(ctx context.Context) (int, error) {
	return l.inBatches(ctx, "expire jobs", expireScript, []string{l.keys.Expiry()}, l.keys.Prefix(), l.store.Now().UnixMilli())
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
