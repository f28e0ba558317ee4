package tui

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/raibid-labs/raibid-ci/internal/api"
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

var tabNames = [...]string{"Jobs", "Agents", "Mirrors", "System"}

type mode int

const (
	modeNormal mode = iota
	modeFilter
	modeConfirmCancel
	modeNewJob
	modeHelp
	modeLogSearch
)

// Depth samples kept for the queue sparkline: one a second for a minute.
const sparkSamples = 60

// jobsFetchLimit is how many recent jobs the dashboard keeps.
const jobsFetchLimit = 200

// mirrorsEvery is how often the open Mirrors tab refreshes (mirrors change
// on Gitea's interval, not by the second).
const mirrorsEvery = 30

// agentsEvery is how often, in seconds, the agents are fetched again.
const agentsEvery = 2

// refetchGap bounds how often job events trigger a fetch: a burst of events
// costs one fetch per gap, and data is never staler than the gap.
const refetchGap = 250 * time.Millisecond

// Options configure the dashboard.
type Options struct {
	Server string // shown in the header
	// Now is the clock (tests fix it).
	Now func() time.Time
}

// Model is the dashboard's state.
type Model struct {
	ctx    context.Context
	src    Source
	in     inbox
	opts   Options
	width  int
	height int

	tab    tab
	mode   mode
	jobs   []ci.Job
	agents []api.Agent
	queue  api.QueueStats
	system *api.System
	// maxAgents is -1 until known, -2 when the server cannot scale.
	maxAgents int
	// scaling: one PUT /scale at a time, so the last key press wins.
	scaling bool
	depth   []int64
	cursor  int
	filter  string
	input   string // the filter being typed

	// Mirrors tab: fetched when the tab opens and every mirrorsEvery on it.
	mirrors        []api.Mirror
	mirrorsEnabled bool
	mirrorsLoaded  bool
	mirrorsErr     string
	mirrorCursor   int

	newRepo, newBranch string
	newField           int
	// newFresh: the focused field holds a suggestion; typing replaces it.
	newFresh bool

	// detail is the job view's job; nil when the list shows.
	detail       *ci.Job
	log          *logView
	stopFollow   context.CancelFunc
	followingJob string

	connected bool
	connErr   string
	status    string // result of the last action, shown in the footer

	fetching     bool
	refetchDue   bool
	lastFetch    time.Time
	refetchTimer bool
}

// New returns the dashboard model; Run starts it.
func New(ctx context.Context, src Source, opts Options) *Model {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Model{ctx: ctx, src: src, in: make(inbox, 256), opts: opts, maxAgents: -1, width: 80, height: 24}
}

// Init starts the event stream and the first fetches.
func (m *Model) Init() tea.Cmd {
	go followEvents(m.ctx, m.src, m.in)
	m.fetching = true
	m.lastFetch = m.opts.Now()
	return tea.Batch(m.in.wait(), fetchJobs(m.ctx, m.src, api.JobFilter{Limit: jobsFetchLimit}),
		fetchAgents(m.ctx, m.src), fetchSystem(m.ctx, m.src), fetchScale(m.ctx, m.src), fetchQueue(m.ctx, m.src), tick())
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
	case jobsMsg:
		m.fetching = false
		if msg.err != nil {
			m.status = "jobs: " + msg.err.Error()
		} else {
			m.jobs = msg.jobs
			m.clampCursor()
		}
		if m.refetchDue {
			return m.scheduleRefetch()
		}
		return nil
	case refetchMsg:
		m.refetchTimer = false
		return m.refetch()
	case jobEventMsg:
		cmds := []tea.Cmd{m.refetch(), fetchAgents(m.ctx, m.src)}
		if m.detail != nil {
			cmds = append(cmds, fetchDetail(m.ctx, m.src, m.detail.ID))
		}
		return tea.Batch(cmds...)
	case queueMsg:
		m.queue = api.QueueStats(msg)
		return nil
	case connMsg:
		m.connected = msg.Connected
		m.connErr = ""
		if msg.Err != nil {
			m.connErr = msg.Err.Error()
		}
		var cmds []tea.Cmd
		if msg.Connected { // catch up on what happened while away
			cmds = append(cmds, m.refetch(), fetchAgents(m.ctx, m.src), fetchQueue(m.ctx, m.src))
		}
		return tea.Batch(cmds...)
	case agentsMsg:
		if msg.err == nil {
			m.agents = msg.agents
			sort.Slice(m.agents, func(i, j int) bool { return m.agents[i].Name < m.agents[j].Name })
		}
		return nil
	case systemMsg:
		if msg.err == nil {
			m.system = msg.sys
		}
		return nil
	case scaleMsg:
		switch {
		case msg.err != nil && strings.Contains(msg.err.Error(), "501"):
			m.maxAgents = -2
		case msg.err != nil:
			m.status = "scale: " + msg.err.Error()
		default:
			if !m.scaling {
				m.maxAgents = msg.max
			}
		}
		return nil
	case scaledMsg:
		m.scaling = false
		if msg.err != nil {
			m.status = "scale: " + msg.err.Error()
			return fetchScale(m.ctx, m.src)
		}
		if msg.max != m.maxAgents {
			return m.sendScale()
		}
		return nil
	case detailMsg:
		if msg.err == nil && m.detail != nil && msg.job.ID == m.detail.ID {
			m.detail = msg.job
		}
		return nil
	case logLineMsg:
		if m.detail != nil && msg.jobID == m.detail.ID {
			m.log.add(msg.line.Text)
		}
		return nil
	case retriedMsg:
		m.status = "retrying as job " + msg.job.ID
		return tea.Batch(m.openDetail(msg.job), m.refetch())
	case actionMsg:
		m.status = msg.text
		if msg.err != nil {
			m.status = msg.err.Error()
		}
		return m.refetch()
	case mirrorsMsg:
		m.mirrorsLoaded = true
		m.mirrorsErr = ""
		if msg.err != nil {
			m.mirrorsErr = msg.err.Error()
			return nil
		}
		m.mirrorsEnabled, m.mirrors = msg.enabled, msg.mirrors
		m.mirrorCursor = max(min(m.mirrorCursor, len(m.mirrors)-1), 0)
		return nil
	case mirrorSyncedMsg:
		if msg.err != nil {
			m.status = "sync " + msg.target + ": " + msg.err.Error()
		} else {
			m.status = "sync of " + msg.target + " queued in Gitea"
		}
		return fetchMirrors(m.ctx, m.src)
	case tickMsg:
		m.depth = append(m.depth, m.queue.Lag)
		if len(m.depth) > sparkSamples {
			m.depth = m.depth[len(m.depth)-sparkSamples:]
		}
		cmds := []tea.Cmd{tick()}
		if time.Time(msg).Second()%5 == 0 {
			cmds = append(cmds, fetchSystem(m.ctx, m.src))
		}
		// Agents change with their heartbeats, not only with job events
		// (an agent turns busy after the event that queued its job): a
		// short poll keeps the panel true.
		if time.Time(msg).Second()%agentsEvery == 0 {
			cmds = append(cmds, fetchAgents(m.ctx, m.src))
		}
		if m.tab == tabMirrors && time.Time(msg).Second()%mirrorsEvery == 0 {
			cmds = append(cmds, fetchMirrors(m.ctx, m.src))
		}
		return tea.Batch(cmds...)
	}
	return nil
}

// refetch fetches jobs now, or once the running fetch returns, at most once
// per refetchGap.
func (m *Model) refetch() tea.Cmd {
	if m.fetching || m.refetchTimer {
		m.refetchDue = true
		return nil
	}
	if wait := refetchGap - m.opts.Now().Sub(m.lastFetch); wait > 0 {
		m.refetchDue = true
		return m.scheduleRefetch()
	}
	m.refetchDue = false
	m.fetching = true
	m.lastFetch = m.opts.Now()
	return fetchJobs(m.ctx, m.src, api.JobFilter{Limit: jobsFetchLimit})
}

func (m *Model) scheduleRefetch() tea.Cmd {
	if m.refetchTimer {
		return nil
	}
	m.refetchTimer = true
	m.refetchDue = false
	return tea.Tick(refetchGap, func(time.Time) tea.Msg { return refetchMsg{} })
}

// visibleJobs applies the filter: a status name selects that status, any
// other text matches repositories containing it.
func (m *Model) visibleJobs() []ci.Job {
	if m.filter == "" {
		return m.jobs
	}
	var out []ci.Job
	st := ci.Status(m.filter)
	for _, j := range m.jobs {
		// "failed" covers error too: both are a red build to look at.
		if (st.Valid() && (j.Status == st || st == ci.StatusFailed && j.Status == ci.StatusError)) ||
			(!st.Valid() && strings.Contains(j.Repo, m.filter)) {
			out = append(out, j)
		}
	}
	return out
}

func (m *Model) clampCursor() {
	n := len(m.visibleJobs())
	if m.cursor >= n {
		m.cursor = n - 1
	}
	if m.cursor < 0 {
		m.cursor = 0
	}
}

func (m *Model) selected() *ci.Job {
	jobs := m.visibleJobs()
	if m.cursor < len(jobs) {
		j := jobs[m.cursor]
		return &j
	}
	return nil
}

func (m *Model) key(k tea.KeyPressMsg) tea.Cmd {
	key := k.String()
	if key == "ctrl+c" {
		return m.quit()
	}
	m.status = "" // a key press dismisses the last message
	switch m.mode {
	case modeHelp:
		m.mode = modeNormal
		return nil
	case modeFilter:
		return m.filterKey(k)
	case modeConfirmCancel:
		return m.confirmKey(key)
	case modeNewJob:
		return m.newJobKey(k)
	case modeLogSearch:
		return m.searchKey(k)
	}
	if m.detail != nil {
		return m.detailKey(key)
	}
	switch key {
	case "q":
		return m.quit()
	case "?":
		m.mode = modeHelp
	case "up", "k":
		if m.tab == tabMirrors {
			m.mirrorCursor = max(m.mirrorCursor-1, 0)
		} else if m.cursor > 0 {
			m.cursor--
		}
	case "down", "j":
		if m.tab == tabMirrors {
			m.mirrorCursor = max(min(m.mirrorCursor+1, len(m.mirrors)-1), 0)
		} else if m.cursor < len(m.visibleJobs())-1 {
			m.cursor++
		}
	case "s":
		if m.tab == tabMirrors && m.mirrorCursor < len(m.mirrors) {
			target := m.mirrors[m.mirrorCursor].Target
			m.status = "asking Gitea to sync " + target
			return syncMirror(m.ctx, m.src, target)
		}
	case "pgup", "ctrl+u", "pgdown", "ctrl+d":
		page := max(m.height-12, 1)
		if key == "pgup" || key == "ctrl+u" {
			page = -page
		}
		m.cursor = max(min(m.cursor+page, len(m.visibleJobs())-1), 0)
	case "home", "g":
		m.cursor = 0
	case "end", "G":
		m.cursor = max(len(m.visibleJobs())-1, 0)
	case "tab":
		m.tab = (m.tab + 1) % tabCount
		return m.enterTab()
	case "shift+tab":
		m.tab = (m.tab + tabCount - 1) % tabCount
		return m.enterTab()
	case "/":
		m.mode, m.input = modeFilter, m.filter
	case "esc":
		m.filter = ""
		m.clampCursor()
	case "r":
		m.status = "refreshing"
		return tea.Batch(m.refetch(), fetchAgents(m.ctx, m.src), fetchSystem(m.ctx, m.src), fetchScale(m.ctx, m.src), fetchQueue(m.ctx, m.src), m.enterTab())
	case "enter":
		if j := m.selected(); j != nil && m.tab == tabJobs {
			return m.openDetail(j)
		}
	case "c":
		if j := m.selected(); j != nil && m.tab == tabJobs {
			if j.Status.Final() {
				m.status = "job " + j.ID + " is already " + string(j.Status)
				return nil
			}
			m.mode = modeConfirmCancel
		}
	case "n":
		m.mode, m.newRepo, m.newBranch, m.newField, m.newFresh = modeNewJob, "", "main", 0, false
	case "+", "=":
		return m.scale(+1)
	case "-", "_":
		return m.scale(-1)
	}
	return nil
}

// detailKey handles the job view's keys: the log view's own (scroll,
// follow, n/N), then search, cancel, retry and leaving.
func (m *Model) detailKey(key string) tea.Cmd {
	if m.log.key(key) {
		return nil
	}
	switch key {
	case "esc", "backspace", "left", "h":
		if m.log.query != "" {
			m.log.search("")
			return nil
		}
		m.closeDetail()
	case "/":
		m.mode, m.input = modeLogSearch, m.log.query
	case "c":
		if !m.detail.Status.Final() {
			m.mode = modeConfirmCancel
		} else {
			m.status = "job " + m.detail.ID + " is already " + string(m.detail.Status) + "; r retries it"
		}
	case "r":
		if !m.detail.Status.Final() {
			m.status = "job " + m.detail.ID + " is still " + string(m.detail.Status) + "; c cancels it"
			return nil
		}
		return m.retry(m.detail.ID)
	case "q":
		return m.quit()
	case "?":
		m.mode = modeHelp
	}
	return nil
}

// searchKey edits the log search; enter searches from the end backwards.
func (m *Model) searchKey(k tea.KeyPressMsg) tea.Cmd {
	switch k.String() {
	case "enter":
		m.mode = modeNormal
		if !m.log.search(m.input) && m.input != "" {
			m.status = "no line matches " + strconv.Quote(m.input)
		}
	default:
		m.editInput(k)
	}
	return nil
}

// editInput is what the one-line inputs (filter, log search) share: esc
// leaves the input, backspace deletes a character, text is typed.
func (m *Model) editInput(k tea.KeyPressMsg) {
	switch k.String() {
	case "esc":
		m.mode = modeNormal
	case "backspace":
		if r := []rune(m.input); len(r) > 0 {
			m.input = string(r[:len(r)-1])
		}
	default:
		m.input += k.Text
	}
}

// retry queues the job again and opens the new job's view.
func (m *Model) retry(id string) tea.Cmd {
	ctx, src := m.ctx, m.src
	m.status = "retrying " + id
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		defer cancel()
		j, err := src.RetryJob(ctx, id)
		if err != nil {
			return actionMsg{err: fmt.Errorf("retry %s: %w", id, err)}
		}
		return retriedMsg{job: j}
	}
}

func (m *Model) quit() tea.Cmd {
	m.closeDetail()
	return tea.Quit
}

func (m *Model) filterKey(k tea.KeyPressMsg) tea.Cmd {
	switch k.String() {
	case "enter":
		m.filter, m.mode = strings.TrimSpace(m.input), modeNormal
		m.cursor = 0
	default:
		m.editInput(k)
	}
	return nil
}

func (m *Model) confirmKey(key string) tea.Cmd {
	m.mode = modeNormal
	if key != "y" && key != "Y" {
		m.status = "not cancelled"
		return nil
	}
	target := m.selected()
	if m.detail != nil {
		target = m.detail
	}
	if target == nil {
		return nil
	}
	id, ctx, src := target.ID, m.ctx, m.src
	m.status = "cancelling " + id
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		defer cancel()
		j, err := src.CancelJob(ctx, id)
		if err != nil {
			return actionMsg{err: fmt.Errorf("cancel %s: %w", id, err)}
		}
		return actionMsg{text: "job " + j.ID + " " + string(j.Status)}
	}
}

func (m *Model) newJobKey(k tea.KeyPressMsg) tea.Cmd {
	field := &m.newRepo
	if m.newField == 1 {
		field = &m.newBranch
	}
	switch k.String() {
	case "esc":
		m.mode = modeNormal
		m.status = "no job started"
	case "tab", "shift+tab":
		m.newField, m.newFresh = 1-m.newField, true
	case "enter":
		if m.newField == 0 {
			m.newField, m.newFresh = 1, true
			return nil
		}
		n, err := m.newJobRequest()
		if err != nil {
			m.status = err.Error()
			return nil
		}
		m.mode = modeNormal
		ctx, src := m.ctx, m.src
		m.status = "starting " + n.Repo + "@" + n.Branch
		return func() tea.Msg {
			ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
			defer cancel()
			j, err := src.CreateJob(ctx, n)
			if err != nil {
				return actionMsg{err: fmt.Errorf("start %s@%s: %w", n.Repo, n.Branch, err)}
			}
			return actionMsg{text: "started job " + j.ID}
		}
	case "backspace":
		if m.newFresh {
			*field, m.newFresh = "", false
		} else if r := []rune(*field); len(r) > 0 {
			*field = string(r[:len(r)-1])
		}
	default:
		if k.Text != "" {
			if m.newFresh {
				*field, m.newFresh = "", false
			}
			*field += k.Text
		}
	}
	return nil
}

// newJobRequest is the job the prompt asks for. The repo field takes
// owner/name (a repository seen in earlier jobs is cloned from where they
// were; others from the server's Gitea) or a local path, which raibid up
// builds directly.
func (m *Model) newJobRequest() (api.NewJob, error) {
	repo, branch := strings.TrimSpace(m.newRepo), strings.TrimSpace(m.newBranch)
	if repo == "" || branch == "" {
		return api.NewJob{}, fmt.Errorf("repo and branch are both needed")
	}
	n := api.NewJob{Repo: repo, Branch: branch}
	if strings.HasPrefix(repo, "/") {
		path := filepath.Clean(repo)
		name := strings.Trim(regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(filepath.Base(path), "-"), "-.")
		n.Repo, n.CloneURL = "local/"+name, path
		return n, nil
	}
	for _, j := range m.jobs {
		if j.Repo == repo && j.CloneURL != "" {
			n.CloneURL = j.CloneURL
			break
		}
	}
	return n, nil
}

func (m *Model) scale(delta int) tea.Cmd {
	switch {
	case m.maxAgents == -2:
		m.status = "this server does not manage agents"
		return nil
	case m.maxAgents < 0:
		m.status = "agent count not known yet"
		return fetchScale(m.ctx, m.src)
	}
	n := m.maxAgents + delta
	if n < 0 {
		return nil
	}
	m.maxAgents = n
	// The count lives in the running server: say so, it is not saved.
	m.status = fmt.Sprintf("max agents → %d (until the server restarts; --agents / --max-agents set it for good)", n)
	return m.sendScale()
}

// sendScale asks the server for maxAgents unless a request is on its way;
// the answer to that one sends again if the wish changed meanwhile.
func (m *Model) sendScale() tea.Cmd {
	if m.scaling {
		return nil
	}
	m.scaling = true
	n, ctx, src := m.maxAgents, m.ctx, m.src
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		defer cancel()
		got, err := src.SetMaxAgents(ctx, n)
		return scaledMsg{max: got, err: err}
	}
}

func (m *Model) openDetail(j *ci.Job) tea.Cmd {
	m.closeDetail()
	m.detail, m.log = j, newLogView()
	ctx, cancel := context.WithCancel(m.ctx)
	m.stopFollow, m.followingJob = cancel, j.ID
	id, src, in := j.ID, m.src, m.in
	go func() {
		_, _ = src.FollowLogs(ctx, id, func(l ci.LogLine) {
			select {
			case in <- logLineMsg{jobID: id, line: l}:
			case <-ctx.Done():
			}
		})
	}()
	return fetchDetail(m.ctx, m.src, id)
}

func (m *Model) closeDetail() {
	if m.stopFollow != nil {
		m.stopFollow()
		m.stopFollow = nil
	}
	m.detail, m.log, m.followingJob = nil, nil, ""
}

// enterTab fetches what a tab shows only there (the mirrors, from Gitea
// through the server) when it opens.
func (m *Model) enterTab() tea.Cmd {
	if m.tab == tabMirrors {
		return fetchMirrors(m.ctx, m.src)
	}
	return nil
}
