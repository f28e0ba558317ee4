package runner

import (
	"encoding/json"
	"strings"
	"sync"
)

// CacheCount is what cargo said about its artifacts: how many there were and
// how many were fresh (reused from the cache, not compiled).
type CacheCount struct {
	Fresh, Total int
}

// cargoCounter reads cargo's JSON lines out of a step's stdout, counting
// compiler-artifact messages, and lets every other line through to the log
// (test output, build script output).
type cargoCounter struct {
	mu sync.Mutex
	CacheCount
}

// keep counts a JSON message and reports whether the line is for people.
func (c *cargoCounter) keep(line string) bool {
	if !strings.HasPrefix(line, "{") || !strings.Contains(line, `"reason"`) {
		return true
	}
	var m struct {
		Reason string `json:"reason"`
		Fresh  bool   `json:"fresh"`
	}
	if json.Unmarshal([]byte(line), &m) != nil || m.Reason == "" {
		return true
	}
	if m.Reason == "compiler-artifact" {
		c.mu.Lock()
		c.Total++
		if m.Fresh {
			c.Fresh++
		}
		c.mu.Unlock()
	}
	return false
}

func (c *cargoCounter) count() CacheCount {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.CacheCount
}
