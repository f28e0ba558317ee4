package testutil

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// pollRedis polls Redis's state every 2 ms (EventuallyEvery), failing the
// test with what after within.
func pollRedis(t testing.TB, within time.Duration, what string, cond func(ctx context.Context) bool) {
	t.Helper()
	if !EventuallyEvery(t, within, 2*time.Millisecond, func() bool { return cond(context.Background()) }) {
		t.Fatalf("%s: not within %s", what, within)
	}
}

// WaitBlocked waits until at least n clients of rdb's server are blocked
// in a command (XREADGROUP BLOCK, XREAD BLOCK…): a consumer is then
// waiting, and an XADD wakes it.
func WaitBlocked(t testing.TB, rdb redis.UniversalClient, n int) {
	t.Helper()
	pollRedis(t, 10*time.Second, strconv.Itoa(n)+" blocked clients", func(ctx context.Context) bool {
		info, err := rdb.Info(ctx, "clients").Result()
		if err != nil {
			return false
		}
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "blocked_clients:"); ok {
				got, _ := strconv.Atoi(v)
				return got >= n
			}
		}
		return false
	})
}

// WaitPendingIdle waits until every entry pending in group of stream has
// been idle at least d by Redis's clock — the clock leases go by — and
// there is at least one.
func WaitPendingIdle(t testing.TB, rdb redis.UniversalClient, stream, group string, d time.Duration) {
	t.Helper()
	pollRedis(t, 10*time.Second+2*d, "pending entries idle "+d.String(), func(ctx context.Context) bool {
		pending, err := rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: stream, Group: group, Start: "-", End: "+", Count: 1000}).Result()
		if err != nil || len(pending) == 0 {
			return false
		}
		for _, p := range pending {
			if p.Idle < d {
				return false
			}
		}
		return true
	})
}

// Subscribers counts the Pub/Sub subscriptions on rdb's server, over
// every channel.
func Subscribers(t testing.TB, rdb redis.UniversalClient) int {
	t.Helper()
	ctx := context.Background()
	channels, err := rdb.PubSubChannels(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(channels) == 0 {
		return 0
	}
	counts, err := rdb.PubSubNumSub(ctx, channels...).Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range counts {
		n += int(c)
	}
	return n
}

// WaitSubscribers waits until rdb's server has at least n Pub/Sub
// subscriptions: a subscriber is then listening, and a publish reaches it.
func WaitSubscribers(t testing.TB, rdb redis.UniversalClient, n int) {
	t.Helper()
	pollRedis(t, 10*time.Second, strconv.Itoa(n)+" subscriptions", func(context.Context) bool { return Subscribers(t, rdb) >= n })
}
