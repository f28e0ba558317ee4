package cli

import (
	"context"
	"sync/atomic"
)

// agentCap is the executor's "at most this many agents", set by PUT /scale.
type agentCap struct{ n atomic.Int64 }

func (c *agentCap) MaxAgents(context.Context) (int, error) { return int(c.n.Load()), nil }

func (c *agentCap) SetMaxAgents(_ context.Context, n int) error { c.n.Store(int64(n)); return nil }
