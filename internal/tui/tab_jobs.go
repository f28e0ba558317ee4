package tui

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/raibid-labs/raibid-ci/internal/api"
	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/termtext"
)

// jobsMode is what the Jobs tab's keys do: move in the list, or type into
// one of its inputs.
type jobsMode int

const (
	modeNormal jobsMode = iota
	modeFilter
	modeConfirmCancel
	modeNewJob
	modeLogSearch
)

// jobsTab is the Jobs tab: the recent jobs (filtered), the agents and queue
// panels under them, and the job view (steps, error, live log) a job opens
// into. It owns its inputs: the filter, the cancel question, the new-job
// prompt and the log search.
type jobsTab struct {
	*shared
	src JobsSource
	in  inbox

	mode   jobsMode
	jobs   []ci.Job
	cursor int
	filter string
	input  string // the filter or log search being typed

	newRepo, newBranch string
	newField           int
	// newFresh: the focused field holds a suggestion; typing replaces it.
	newFresh bool

	// detail is the job view's job; nil when the list shows.
	detail       *ci.Job
	log          *logView
	logStep      string // the step of the last log line shown
	stopFollow   context.CancelFunc
	followingJob string

	fetching     bool
	refetchDue   bool
	lastFetch    time.Time
	refetchTimer bool
}

func (t *jobsTab) name() string { return "Jobs" }

func (t *jobsTab) enter() tea.Cmd { return nil }

func (t *jobsTab) update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case jobsMsg:
		t.fetching = false
		if msg.err != nil {
			t.status = "jobs: " + msg.err.Error()
		} else {
			t.jobs = msg.jobs
			t.clampCursor()
		}
		if t.refetchDue {
			return t.scheduleRefetch()
		}
	case refetchMsg:
		t.refetchTimer = false
		return t.refetch()
	case jobEventMsg:
		cmds := []tea.Cmd{t.refetch()}
		if t.detail != nil {
			cmds = append(cmds, fetchDetail(t.ctx, t.src, t.detail.ID))
		}
		return tea.Batch(cmds...)
	case detailMsg:
		if msg.err == nil && t.detail != nil && msg.job.ID == t.detail.ID {
			t.detail = msg.job
		}
	case logLineMsg:
		if t.detail != nil && msg.jobID == t.detail.ID {
			// Steps of a graph run at once: a header marks each change of
			// step, so no line reads as another step's.
			if msg.line.Step != t.logStep {
				t.log.add(faint.Render("── " + termtext.Field(msg.line.Step)))
				t.logStep = msg.line.Step
			}
			t.log.add(termtext.Log(msg.line.Text)) // colours only: a step never drives the terminal
		}
	case retriedMsg:
		t.status = "retrying as job " + msg.job.ID
		return tea.Batch(t.openDetail(msg.job), t.refetch())
	case actionMsg:
		t.status = msg.text
		if msg.err != nil {
			t.status = msg.err.Error()
		}
		return t.refetch()
	}
	return nil
}

// fetchNow fetches the jobs at once (the first fetch).
func (t *jobsTab) fetchNow() tea.Cmd {
	t.fetching = true
	t.lastFetch = t.opts.Now()
	return fetchJobs(t.ctx, t.src, api.JobFilter{Limit: jobsFetchLimit})
}

// refetch fetches jobs now, or once the running fetch returns, at most once
// per refetchGap.
func (t *jobsTab) refetch() tea.Cmd {
	if t.fetching || t.refetchTimer {
		t.refetchDue = true
		return nil
	}
	if wait := refetchGap - t.opts.Now().Sub(t.lastFetch); wait > 0 {
		t.refetchDue = true
		return t.scheduleRefetch()
	}
	t.refetchDue = false
	return t.fetchNow()
}

func (t *jobsTab) scheduleRefetch() tea.Cmd {
	if t.refetchTimer {
		return nil
	}
	t.refetchTimer = true
	t.refetchDue = false
	return tea.Tick(refetchGap, func(time.Time) tea.Msg { return refetchMsg{} })
}

// visibleJobs applies the filter: a status name selects that status, any
// other text matches repositories containing it.
func (t *jobsTab) visibleJobs() []ci.Job {
	if t.filter == "" {
		return t.jobs
	}
	var out []ci.Job
	st := ci.Status(t.filter)
	for _, j := range t.jobs {
		// "failed" covers error too: both are a red build to look at.
		if (st.Valid() && (j.Status == st || st == ci.StatusFailed && j.Status == ci.StatusError)) ||
			(!st.Valid() && strings.Contains(j.Repo, t.filter)) {
			out = append(out, j)
		}
	}
	return out
}

func (t *jobsTab) clampCursor() {
	t.cursor = max(min(t.cursor, len(t.visibleJobs())-1), 0)
}

func (t *jobsTab) selected() *ci.Job {
	jobs := t.visibleJobs()
	if t.cursor < len(jobs) {
		j := jobs[t.cursor]
		return &j
	}
	return nil
}

func (t *jobsTab) key(k tea.KeyPressMsg) (tea.Cmd, bool) {
	key := k.String()
	switch t.mode {
	case modeFilter:
		if key == "enter" {
			t.filter, t.mode = strings.TrimSpace(t.input), modeNormal
			t.cursor = 0
		} else {
			t.editInput(k)
		}
		return nil, true
	case modeConfirmCancel:
		return t.confirmKey(key), true
	case modeNewJob:
		return t.newJobKey(k), true
	case modeLogSearch:
		if key == "enter" {
			t.mode = modeNormal
			if !t.log.search(t.input) && t.input != "" {
				t.status = "no line matches " + strconv.Quote(t.input)
			}
		} else {
			t.editInput(k)
		}
		return nil, true
	}
	if t.detail != nil {
		return t.detailKey(key)
	}
	switch key {
	case "up", "k":
		t.cursor = max(t.cursor-1, 0)
	case "down", "j":
		t.cursor = max(min(t.cursor+1, len(t.visibleJobs())-1), 0)
	case "pgup", "ctrl+u", "pgdown", "ctrl+d":
		page := max(t.height-12, 1)
		if key == "pgup" || key == "ctrl+u" {
			page = -page
		}
		t.cursor = max(min(t.cursor+page, len(t.visibleJobs())-1), 0)
	case "home", "g":
		t.cursor = 0
	case "end", "G":
		t.cursor = max(len(t.visibleJobs())-1, 0)
	case "/":
		t.mode, t.input = modeFilter, t.filter
	case "esc":
		t.filter = ""
		t.clampCursor()
	case "enter":
		if j := t.selected(); j != nil {
			return t.openDetail(j), true
		}
	case "c":
		if j := t.selected(); j != nil {
			if j.Status.Final() {
				t.status = "job " + j.ID + " is already " + string(j.Status)
			} else {
				t.mode = modeConfirmCancel
			}
		}
	case "n":
		t.mode, t.newRepo, t.newBranch, t.newField, t.newFresh = modeNewJob, "", t.opts.Branch, 0, false
		if t.newBranch == "" {
			t.newBranch = "main"
		}
	default:
		return nil, false
	}
	return nil, true
}

var unsafeNameChars = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

func (t *jobsTab) keymap() []binding {
	if t.detail != nil {
		return []binding{{"↑↓ PgUp/PgDn", "scroll"}, {"G", "follow"}, {"/", "search"}, {"c", "cancel"}, {"r", "retry"}, {"esc", "back"}}
	}
	// Arrows go unsaid: the footer must fit 80 columns with q in it.
	return []binding{{"enter", "open"}, {"c", "cancel"}, {"n", "new"}, keyScale, {"/", "filter"}, keyHelp, keyQuit}
}

func (t *jobsTab) view(w, h int) []string {
	if t.detail != nil {
		return t.detailView(w, h)
	}
	top := max(h/2, 3)
	bottom := h - top
	out := t.jobTable(w, top)
	left, right := w/2, w-w/2-1
	agents := t.agentLines(left, bottom, false)
	spark := t.sparkView(right, bottom)
	for i := range bottom {
		out = append(out, pad(agents[i], left)+faint.Render("│")+spark[i])
	}
	return out
}

func (t *jobsTab) jobTable(w, rows int) []string {
	flex := max(w-8-9-8-10-6, 10)
	repoW, branchW := flex*3/5, flex-flex*3/5
	row := func(id, st, repo, branch, dur, agent string) string {
		return " " + pad(id, 8) + " " + pad(st, 9) + " " + pad(repo, repoW) + " " + pad(branch, branchW) + " " + pad(dur, 8) + " " + pad(agent, 10)
	}
	out := []string{faint.Render(row("ID", "STATUS", "REPO", "BRANCH", "DURATION", "AGENT"))}
	jobs := t.visibleJobs()
	if len(jobs) == 0 {
		msg := "  No jobs yet. Push to a repository with the webhook set up, or press n."
		if t.filter != "" {
			msg = "  No job matches the filter; esc clears it."
		}
		return fit(append(out, faint.Render(msg)), rows)
	}
	visible := rows - 1
	first := 0
	if t.cursor >= visible {
		first = t.cursor - visible + 1
	}
	for i := first; i < len(jobs) && i < first+visible; i++ {
		j := jobs[i]
		repo, branch := j.Repo, j.Branch
		if len(j.Matrix) > 0 { // a matrix's jobs say which combination they are
			repo += " [" + ci.MatrixLabel(j.Matrix) + "]"
		}
		if j.Tag != "" {
			branch = "tag " + j.Tag
		}
		line := row(shortID(j.ID), string(j.Status), repo, branch, t.durationOf(&j), dashIfEmpty(j.Agent))
		if i == t.cursor {
			line = sel.Render(pad(line, w))
		} else {
			line = " " + pad(shortID(j.ID), 8) + " " + statusStyle(j.Status).Render(pad(string(j.Status), 9)) + line[1+8+1+9:]
		}
		out = append(out, line)
	}
	return fit(out, rows)
}

func (t *jobsTab) durationOf(j *ci.Job) string {
	if j.StartedAt == nil {
		return "-"
	}
	d := j.Duration(t.opts.Now())
	if d < time.Minute {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
