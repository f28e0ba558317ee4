package queue

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// heartbeatScript resets an entry's idle time, but only while the caller still
// holds it: XCLAIM with min-idle 0 would otherwise steal the entry back from a
// consumer that legitimately reclaimed it. JUSTID keeps the delivery counter
// as it is, so a long build does not use up its deliveries.
var heartbeatScript = redis.NewScript(`
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 or p[1][2] ~= ARGV[3] then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, ARGV[2], 'JUSTID')
return 1
`)

// Heartbeat renews consumer's lease on the entry. ErrLeaseLost means another
// consumer reclaimed it (or it was acked): the holder must stop the job.
func (q *Queue) Heartbeat(ctx context.Context, d *Delivery) error {
	ok, err := heartbeatScript.Run(ctx, q.rdb, []string{q.opts.Keys.Stream},
		q.opts.Keys.Group, d.ID, d.Consumer).Int()
	if err != nil {
		return fmt.Errorf("heartbeat %s: %w", d.ID, err)
	}
	if ok == 0 {
		return ErrLeaseLost
	}
	return nil
}
