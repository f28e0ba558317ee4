package store

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Agent is an agent's heartbeat record.
type Agent struct {
	Name       string    `json:"name"`
	Status     string    `json:"status"` // idle or busy
	CurrentJob string    `json:"current_job,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	LastSeen   time.Time `json:"last_seen"`
	Host       string    `json:"host,omitempty"`
	// Sandbox is how the agent isolates steps: "bwrap", or "off" when an
	// operator turned it off (dashboards show such agents as unsandboxed).
	Sandbox string `json:"sandbox,omitempty"`
	// GPUs is the GPU slots of the agent's machine, GPUsBusy those held
	// (shared by the machine's agents).
	GPUs     int `json:"gpus,omitempty"`
	GPUsBusy int `json:"gpus_busy,omitempty"`
}

// AgentHeartbeat writes agent:<name> with a TTL: an agent that stops
// heartbeating disappears from the list by itself.
func (s *Store) AgentHeartbeat(ctx context.Context, a Agent, ttl time.Duration) error {
	if a.LastSeen.IsZero() {
		a.LastSeen = s.now()
	}
	key := s.keys.Agent(a.Name)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, "name", a.Name, "status", a.Status, "current_job", a.CurrentJob,
			"started_at", FormatTime(a.StartedAt), "last_seen", FormatTime(a.LastSeen), "host", a.Host, "sandbox", a.Sandbox,
			"gpus", a.GPUs, "gpus_busy", a.GPUsBusy)
		p.PExpire(ctx, key, ttl)
		// The index of live agents, scored by when the record expires.
		p.ZAdd(ctx, s.keys.Agents(), redis.Z{Score: float64(a.LastSeen.Add(ttl).UnixMilli()), Member: a.Name})
		return nil
	})
	return Wrap("agent heartbeat", err)
}

// RemoveAgent deletes an agent's record (on clean exit).
func (s *Store) RemoveAgent(ctx context.Context, name string) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, s.keys.Agent(name))
		p.ZRem(ctx, s.keys.Agents(), name)
		return nil
	})
	return Wrap("remove agent", err)
}

// Agents lists live agents from the agents index: its cost grows with the
// number of agents, never with the keyspace (no SCAN). Members whose record
// expired are dropped from the index on the way.
func (s *Store) Agents(ctx context.Context) ([]Agent, error) {
	now := strconv.FormatInt(s.now().UnixMilli(), 10)
	if err := s.rdb.ZRemRangeByScore(ctx, s.keys.Agents(), "-inf", "("+now).Err(); err != nil {
		return nil, Wrap("list agents", err)
	}
	names, err := s.rdb.ZRange(ctx, s.keys.Agents(), 0, -1).Result()
	if err != nil {
		return nil, Wrap("list agents", err)
	}
	keys := make([]string, len(names))
	for i, n := range names {
		keys[i] = s.keys.Agent(n)
	}
	out := make([]Agent, 0, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	p := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(keys))
	for i, k := range keys {
		cmds[i] = p.HGetAll(ctx, k)
	}
	if _, err := p.Exec(ctx); err != nil {
		return nil, Wrap("list agents", err)
	}
	for _, c := range cmds {
		h := c.Val()
		if len(h) == 0 {
			continue
		}
		a := Agent{Name: h["name"], Status: h["status"], CurrentJob: h["current_job"], Host: h["host"], Sandbox: h["sandbox"]}
		a.GPUs, _ = strconv.Atoi(h["gpus"])
		a.GPUsBusy, _ = strconv.Atoi(h["gpus_busy"])
		if t := parseTime(h["started_at"]); t != nil {
			a.StartedAt = *t
		}
		if t := parseTime(h["last_seen"]); t != nil {
			a.LastSeen = *t
		}
		out = append(out, a)
	}
	return out, nil
}
