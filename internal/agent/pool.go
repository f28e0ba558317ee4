package agent

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
)

// Pool runs local agents in this process (`raibid up`) and changes their
// number on demand. Stopping an agent hands its running job back to the
// queue, as SIGTERM would.
type Pool struct {
	ctx   context.Context
	build func(name string) (*Agent, error)
	log   *slog.Logger
	mu    sync.Mutex
	// members by slot: slot i runs agent local-(i+1); nil is a free slot.
	members []*poolMember
	wg      sync.WaitGroup
}

type poolMember struct {
	cancel context.CancelFunc
}

// NewPool returns an empty pool whose agents stop when ctx ends.
func NewPool(ctx context.Context, build func(name string) (*Agent, error), log *slog.Logger) *Pool {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Pool{ctx: ctx, build: build, log: log}
}

// MaxAgents is how many agents run now.
func (p *Pool) MaxAgents(context.Context) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, m := range p.members {
		if m != nil {
			n++
		}
	}
	return n, nil
}

// SetMaxAgents starts or stops agents until n run; the newest stop first.
func (p *Pool) SetMaxAgents(_ context.Context, n int) error {
	if n < 0 {
		return fmt.Errorf("agents: %d is negative", n)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx.Err() != nil {
		return fmt.Errorf("agents: pool is stopping")
	}
	running := 0
	for _, m := range p.members {
		if m != nil {
			running++
		}
	}
	for i := 0; running < n; i++ {
		if i == len(p.members) {
			p.members = append(p.members, nil)
		}
		if p.members[i] == nil {
			if err := p.start(i); err != nil {
				return err
			}
			running++
		}
	}
	for i := len(p.members) - 1; running > n && i >= 0; i-- {
		if p.members[i] != nil {
			p.members[i].cancel()
			p.members[i] = nil
			running--
		}
	}
	return nil
}

func (p *Pool) start(slot int) error {
	name := fmt.Sprintf("local-%d", slot+1)
	a, err := p.build(name)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(p.ctx)
	p.members[slot] = &poolMember{cancel: cancel}
	p.wg.Go(func() {
		if err := a.Run(ctx); err != nil {
			p.log.Error("agent stopped", "agent", name, "err", err)
		}
	})
	return nil
}

// Wait returns when every agent has stopped (after ctx ended, or all were
// scaled away).
func (p *Pool) Wait() { p.wg.Wait() }
