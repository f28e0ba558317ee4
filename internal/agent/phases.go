package agent

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// phaseNames are a job's phases on the agent, in order; overhead is the
// sum of all but steps.
var phaseNames = []string{"workspace", "clone", "plan", "prepare", "steps"}

// phases times a job's run on the agent: each mark ends the phase named
// and starts the next. The breakdown goes in the job's log, with the
// verdict (GET /jobs/{id} phases) and from there into the server's
// /metrics, so where a job's time beyond its steps goes is measured, not
// guessed.
type phases struct {
	last time.Time
	ms   map[string]float64
}

func startPhases() *phases { return &phases{last: time.Now(), ms: map[string]float64{}} }

// mark ends phase name now.
func (p *phases) mark(name string) {
	now := time.Now()
	p.ms[name] += float64(now.Sub(p.last).Microseconds()) / 1000
	p.last = now
}

// overhead is the time that was not the steps', in ms.
func (p *phases) overhead() float64 {
	total := 0.0
	for k, v := range p.ms {
		if k != "steps" && k != "overhead" {
			total += v
		}
	}
	return total
}

// field is the breakdown as the job's phases field (JSON, ms), overhead
// included.
func (p *phases) field() string {
	out := make(map[string]float64, len(p.ms)+1)
	for k, v := range p.ms {
		out[k] = round2(v)
	}
	out["overhead"] = round2(p.overhead())
	b, _ := json.Marshal(out)
	return string(b)
}

// String is the log line's form: "overhead 12.3 ms (workspace 0.4, ...); steps 301.2 ms".
func (p *phases) String() string {
	var parts []string
	for _, n := range phaseNames {
		if v, ok := p.ms[n]; ok && n != "steps" {
			parts = append(parts, fmt.Sprintf("%s %.1f", n, v))
		}
	}
	return fmt.Sprintf("overhead %.1f ms (%s); steps %.1f ms", p.overhead(), strings.Join(parts, ", "), p.ms["steps"])
}

func round2(v float64) float64 { return float64(int64(v*100+0.5)) / 100 }
