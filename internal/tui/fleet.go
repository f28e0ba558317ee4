package tui

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/raibid-labs/raibid-ci/internal/api"
	"github.com/raibid-labs/raibid-ci/internal/ci"
)

// shared is what every part of the dashboard reads: the context and
// options, the screen size, the footer's status line (any part may set
// it), and the fleet — agents, queue, host, agent limit — which the header
// and several tabs show.
type shared struct {
	ctx    context.Context
	opts   Options
	src    FleetSource
	width  int
	height int
	status string // result of the last action, shown in the footer

	agents []api.Agent
	// agentNews is the latest job event of each agent: what it is doing
	// now, ahead of its next heartbeat (a fetched record older than the
	// event does not undo it).
	agentNews map[string]ci.Event
	queue     api.QueueStats
	system    *api.System
	depth     []int64 // queue lag, one sample a second
	scale     agentScale
}

// agentScale is what the dashboard knows of the server's agent limit.
type agentScale struct {
	known bool // the server said
	// fixed: the server does not manage agents (501): +/- cannot scale.
	fixed bool
	max   int
	// sending: one PUT /scale at a time, so the last key press wins.
	sending bool
}

// label is the agents panel's note on the limit.
func (s agentScale) label() string {
	if s.known && !s.fixed {
		return fmt.Sprintf(" · max %d (+/-)", s.max)
	}
	return ""
}

// agentEvent shows at once what a job's event says of its agent: busy with
// the job it started, idle when the job it held ended.
func (s *shared) agentEvent(ev ci.Event) {
	if ev.Agent == "" {
		return
	}
	if s.agentNews == nil {
		s.agentNews = map[string]ci.Event{}
	}
	s.agentNews[ev.Agent] = ev
	for i := range s.agents {
		if s.agents[i].Name == ev.Agent {
			applyJobEvent(&s.agents[i], ev)
			return
		}
	}
	if ev.Status == ci.StatusRunning { // an agent new since the last fetch
		a := api.Agent{Name: ev.Agent, StartedAt: ev.Time, LastSeen: ev.Time}
		applyJobEvent(&a, ev)
		s.agents = append(s.agents, a)
		sort.Slice(s.agents, func(i, j int) bool { return s.agents[i].Name < s.agents[j].Name })
	}
}

// applyJobEvent sets a's state from a job event of its own.
func applyJobEvent(a *api.Agent, ev ci.Event) {
	switch {
	case ev.Status == ci.StatusRunning:
		a.Status, a.CurrentJob = "busy", ev.JobID
	case ev.Status.Final() && a.CurrentJob == ev.JobID:
		a.Status, a.CurrentJob = "idle", ""
	}
}

// fleetUpdate takes the fleet's messages; ok is false for any other.
func (s *shared) fleetUpdate(msg tea.Msg) (tea.Cmd, bool) {
	switch msg := msg.(type) {
	case queueMsg:
		s.queue = api.QueueStats(msg)
	case agentsMsg:
		if msg.err == nil {
			s.agents = msg.agents
			for i := range s.agents {
				a := &s.agents[i]
				if ev, ok := s.agentNews[a.Name]; ok {
					if ev.Time.After(a.LastSeen) {
						applyJobEvent(a, ev)
					} else {
						delete(s.agentNews, a.Name) // the record has caught up
					}
				}
			}
			sort.Slice(s.agents, func(i, j int) bool { return s.agents[i].Name < s.agents[j].Name })
		}
	case systemMsg:
		if msg.err == nil {
			s.system = msg.sys
		}
	case scaleMsg:
		switch {
		case msg.err != nil && strings.Contains(msg.err.Error(), "501"):
			s.scale.known, s.scale.fixed = true, true
		case msg.err != nil:
			s.status = "scale: " + msg.err.Error()
		case !s.scale.sending:
			s.scale = agentScale{known: true, max: msg.max}
		}
	case scaledMsg:
		s.scale.sending = false
		if msg.err != nil {
			s.status = "scale: " + msg.err.Error()
			return fetchScale(s.ctx, s.src), true
		}
		if msg.max != s.scale.max {
			return s.sendScale(), true
		}
	default:
		return nil, false
	}
	return nil, true
}

// fleetTick samples the queue for the sparkline and keeps the figures
// fresh: agents every agentsEvery seconds (they change with heartbeats,
// not only with job events), the host every 5.
func (s *shared) fleetTick(now time.Time) tea.Cmd {
	s.depth = append(s.depth, s.queue.Lag)
	if len(s.depth) > sparkSamples {
		s.depth = s.depth[len(s.depth)-sparkSamples:]
	}
	cmds := []tea.Cmd{tick()}
	if now.Second()%5 == 0 {
		cmds = append(cmds, fetchSystem(s.ctx, s.src))
	}
	if now.Second()%agentsEvery == 0 {
		cmds = append(cmds, fetchAgents(s.ctx, s.src))
	}
	return tea.Batch(cmds...)
}

// scaleBy asks for delta more (or fewer) agents.
func (s *shared) scaleBy(delta int) tea.Cmd {
	switch {
	case s.scale.fixed:
		s.status = "this server does not manage agents"
		return nil
	case !s.scale.known:
		s.status = "agent count not known yet"
		return fetchScale(s.ctx, s.src)
	}
	n := s.scale.max + delta
	if n < 0 {
		return nil
	}
	s.scale.max = n
	// The count lives in the running server: say so, it is not saved.
	s.status = fmt.Sprintf("max agents → %d (until the server restarts; --agents / --max-agents set it for good)", n)
	return s.sendScale()
}

// sendScale asks the server for scale.max unless a request is on its way;
// the answer to that one sends again if the wish changed meanwhile.
func (s *shared) sendScale() tea.Cmd {
	if s.scale.sending {
		return nil
	}
	s.scale.sending = true
	n, ctx, src := s.scale.max, s.ctx, s.src
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		defer cancel()
		got, err := src.SetMaxAgents(ctx, n)
		return scaledMsg{max: got, err: err}
	}
}

// agentLines is the agents panel (full: with host, pod phase and uptime).
func (s *shared) agentLines(w, rows int, full bool) []string {
	out := []string{faint.Render(fmt.Sprintf(" AGENTS (%d)%s", len(s.agents), s.scale.label()))}
	if len(s.agents) == 0 {
		out = append(out, faint.Render("  no agent is running"))
	}
	for _, a := range s.agents {
		dot, what := green.Render("●"), "idle"
		if a.Status == "busy" {
			dot, what = yellow.Render("●"), "busy "+shortID(a.CurrentJob)
		}
		line := fmt.Sprintf(" %s %s %s", dot, pad(a.Name, 14), what)
		if a.Sandbox == "off" {
			line += " " + red.Render("unsandboxed")
		}
		if a.GPUs > 0 {
			line += faint.Render(fmt.Sprintf(" gpu %d/%d", a.GPUsBusy, a.GPUs))
		}
		if full {
			where := "host " + a.Host
			if a.Phase != "" {
				where = "pod " + a.Phase + " on " + a.Host
			}
			line += faint.Render(fmt.Sprintf("   %s, up %s", where, s.opts.Now().Sub(a.StartedAt).Round(time.Second)))
		}
		out = append(out, line)
	}
	return fit(out, rows)
}

var sparkBlocks = []rune("▁▂▃▄▅▆▇█")

// sparkView is the queue panel: a minute of lag as a sparkline.
func (s *shared) sparkView(w, rows int) []string {
	var peak int64
	for _, d := range s.depth {
		peak = max(peak, d)
	}
	out := []string{faint.Render(fmt.Sprintf(" QUEUE now %d · peak %d · 60s", s.queue.Lag, peak))}
	n := min(len(s.depth), max(w-2, 0))
	var b strings.Builder
	b.WriteString(" ")
	for _, d := range s.depth[len(s.depth)-n:] {
		i := 0
		if peak > 0 {
			i = int(d * int64(len(sparkBlocks)-1) / peak)
		}
		b.WriteRune(sparkBlocks[i])
	}
	out = append(out, b.String(),
		faint.Render(fmt.Sprintf(" running %d · dead letters %d", s.queue.Pending, s.queue.Dead)))
	return fit(out, rows)
}
