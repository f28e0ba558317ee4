package testutil

import (
	"context"
	"sync"
)

// Scaler is an agent scaler that only remembers the number it was given,
// for tests of the /scale endpoint and the dashboard's +/- keys.
type Scaler struct {
	mu sync.Mutex
	N  int
}

// MaxAgents returns the number.
func (c *Scaler) MaxAgents(context.Context) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.N, nil
}

// SetMaxAgents remembers n.
func (c *Scaler) SetMaxAgents(_ context.Context, n int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.N = n
	return nil
}
