package tui

import (
	"context"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/raibid-labs/raibid-ci/internal/ci"
)

type tab int

const (
	tabJobs tab = iota
	tabAgents
	tabMirrors
	tabSystem
	tabCount
)

// Depth samples kept for the queue sparkline: one a second for a minute.
const sparkSamples = 60

// jobsFetchLimit is how many recent jobs the dashboard keeps.
const jobsFetchLimit = 200

// mirrorsEvery is how often, in seconds, the open Mirrors tab refreshes
// (mirrors change on Gitea's interval, not by the second).
const mirrorsEvery = 30

// agentsEvery is how often, in seconds, the agents are fetched again.
const agentsEvery = 2

// refetchGap bounds how often job events trigger a fetch: a burst of events
// costs one fetch per gap, and data is never staler than the gap.
const refetchGap = 250 * time.Millisecond

// Options configure the dashboard.
type Options struct {
	Server string // shown in the header
	// Branch is what the new-job prompt (n) suggests: the branch checked
	// out where the dashboard was started (default main).
	Branch string
	// Now is the clock (tests fix it).
	Now func() time.Time
}

// Model is the dashboard: the header's fleet figures (shared by every
// tab), one component per tab, the help screen and the footer. It routes
// keys to the shown tab first, then handles the global ones; background
// messages go to whichever part they are for.
type Model struct {
	*shared
	src Source
	in  inbox

	tab        tab
	tabs       [tabCount]tabComponent
	jobsTab    *jobsTab
	agentsTab  *agentsTab
	mirrorsTab *mirrorsTab
	systemTab  *systemTab
	help       bool

	connected bool
	connErr   string
}

// New returns the dashboard model; Run starts it.
func New(ctx context.Context, src Source, opts Options) *Model {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	sh := &shared{ctx: ctx, opts: opts, width: 80, height: 24, src: src}
	m := &Model{shared: sh, src: src, in: make(inbox, 256)}
	m.jobsTab = &jobsTab{shared: sh, src: src, in: m.in}
	m.agentsTab = &agentsTab{shared: sh}
	m.mirrorsTab = &mirrorsTab{shared: sh, src: src}
	m.systemTab = &systemTab{shared: sh}
	m.tabs = [tabCount]tabComponent{m.jobsTab, m.agentsTab, m.mirrorsTab, m.systemTab}
	return m
}

func (m *Model) current() tabComponent { return m.tabs[m.tab] }

// Init starts the event stream and the first fetches.
func (m *Model) Init() tea.Cmd {
	go followEvents(m.ctx, m.src, m.in)
	return tea.Batch(m.in.wait(), m.jobsTab.fetchNow(), fetchAgents(m.ctx, m.src), fetchSystem(m.ctx, m.src),
		fetchScale(m.ctx, m.src), fetchQueue(m.ctx, m.src), tick())
}

// Update handles one message.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if in, ok := msg.(inboxMsg); ok {
		cmd := m.update(in.msg)
		return m, tea.Batch(cmd, m.in.wait())
	}
	return m, m.update(msg)
}

func (m *Model) update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		return nil
	case tea.KeyPressMsg:
		return m.key(msg)
	case connMsg:
		m.connected = msg.Connected
		m.connErr = ""
		if msg.Err != nil {
			m.connErr = msg.Err.Error()
		}
		if msg.Connected { // catch up on what happened while away
			return tea.Batch(m.jobsTab.refetch(), fetchAgents(m.ctx, m.src), fetchQueue(m.ctx, m.src))
		}
		return nil
	case jobEventMsg:
		m.agentEvent(ci.Event(msg))
		return tea.Batch(m.jobsTab.update(msg), fetchAgents(m.ctx, m.src))
	case tickMsg:
		cmd := m.fleetTick(time.Time(msg))
		if m.tab == tabMirrors && time.Time(msg).Second()%mirrorsEvery == 0 {
			cmd = tea.Batch(cmd, m.mirrorsTab.enter())
		}
		return cmd
	}
	if cmd, ok := m.fleetUpdate(msg); ok {
		return cmd
	}
	var cmds []tea.Cmd
	for _, t := range m.tabs {
		cmds = append(cmds, t.update(msg))
	}
	return tea.Batch(cmds...)
}

// key routes a key press: the shown tab first (its inputs and its job view
// take what they use), then the keys of every tab.
func (m *Model) key(k tea.KeyPressMsg) tea.Cmd {
	key := k.String()
	if key == "ctrl+c" {
		return m.quit()
	}
	m.status = "" // a key press dismisses the last message
	if m.help {
		m.help = false
		return nil
	}
	if cmd, handled := m.current().key(k); handled {
		return cmd
	}
	switch key {
	case "q":
		return m.quit()
	case "?":
		m.help = true
	case "tab":
		m.tab = (m.tab + 1) % tabCount
		return m.current().enter()
	case "shift+tab":
		m.tab = (m.tab + tabCount - 1) % tabCount
		return m.current().enter()
	case "r":
		m.status = "refreshing"
		return tea.Batch(m.jobsTab.refetch(), fetchAgents(m.ctx, m.src), fetchSystem(m.ctx, m.src),
			fetchScale(m.ctx, m.src), fetchQueue(m.ctx, m.src), m.current().enter())
	case "+", "=":
		return m.scaleBy(+1)
	case "-", "_":
		return m.scaleBy(-1)
	}
	return nil
}

func (m *Model) quit() tea.Cmd {
	m.jobsTab.closeDetail()
	return tea.Quit
}
