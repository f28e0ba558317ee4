package tui

import (
	"context"
	"fmt"
	"strings"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/raibid-labs/raibid-ci/internal/ci"
)

// The Jobs tab's job view: one job's summary, steps and live log (the log
// view of logview.go), and what its keys do.

// detailKey handles the job view's keys: the log view's own (scroll,
// follow, n/N), then search, cancel, retry and leaving; quit and help are
// the global keys'.
func (t *jobsTab) detailKey(key string) (tea.Cmd, bool) {
	if t.log.key(key) {
		return nil, true
	}
	switch key {
	case "esc", "backspace", "left", "h":
		if t.log.query != "" {
			t.log.search("")
			return nil, true
		}
		t.closeDetail()
	case "/":
		t.mode, t.input = modeLogSearch, t.log.query
	case "c":
		if !t.detail.Status.Final() {
			t.mode = modeConfirmCancel
		} else {
			t.status = "job " + t.detail.ID + " is already " + string(t.detail.Status) + "; r retries it"
		}
	case "r":
		if !t.detail.Status.Final() {
			t.status = "job " + t.detail.ID + " is still " + string(t.detail.Status) + "; c cancels it"
			return nil, true
		}
		return t.retry(t.detail.ID), true
	case "C", "R":
		if t.detail.Group == "" {
			t.status = "job " + t.detail.ID + " is not part of a matrix"
			return nil, true
		}
		return t.groupAction(t.detail.Group, key == "C"), true
	case "q", "?", "ctrl+c":
		return nil, false
	}
	return nil, true
}

// openDetail shows the job view and follows the job's log into the inbox.
func (t *jobsTab) openDetail(j *ci.Job) tea.Cmd {
	t.closeDetail()
	t.detail, t.log = j, newLogView()
	ctx, cancel := context.WithCancel(t.ctx)
	t.stopFollow, t.followingJob = cancel, j.ID
	id, src, in := j.ID, t.src, t.in
	go func() {
		_, _ = src.FollowLogs(ctx, id, func(l ci.LogLine) {
			select {
			case in <- logLineMsg{jobID: id, line: l}:
			case <-ctx.Done():
			}
		})
	}()
	return fetchDetail(t.ctx, t.src, id)
}

func (t *jobsTab) closeDetail() {
	if t.stopFollow != nil {
		t.stopFollow()
		t.stopFollow = nil
	}
	t.detail, t.log, t.followingJob, t.logStep = nil, nil, "", ""
}

func (t *jobsTab) detailView(w, rows int) []string {
	j := t.detail
	out := []string{
		fmt.Sprintf(" Job %s  %s", bold.Render(j.ID), statusStyle(j.Status).Render(string(j.Status))),
		fmt.Sprintf(" %s @ %s  %s", j.Repo, j.Branch, faint.Render(shortSHA(j.Commit))),
		faint.Render(fmt.Sprintf(" agent %s · attempt %d · %s", dashIfEmpty(j.Agent), j.Attempt, t.durationOf(j))),
	}
	if j.Error != "" {
		out = append(out, red.Render(" error: "+j.Error))
	}
	for _, s := range j.Steps {
		d := "-"
		if s.StartedAt != nil {
			d = ci.StepDuration(s.DurationMS)
		}
		out = append(out, fmt.Sprintf("   %s %s %s", pad(s.Name, 12), statusStyle(s.Status).Render(pad(ci.StepStatus(s), 9)), d))
	}
	title := " ── log · " + t.log.position() + " "
	if t.log.query != "" {
		at, total := t.log.matches()
		title = fmt.Sprintf(" ── log · %s · /%s %d/%d (n/N) ", t.log.position(), t.log.query, at, total)
	}
	out = append(out, faint.Render(title+strings.Repeat("─", max(w-ansi.StringWidth(title), 0))))
	for _, l := range t.log.render(w-1, max(rows-len(out), 1)) {
		out = append(out, " "+l)
	}
	return fit(out, rows)
}

// retry queues the job again and opens the new job's view.
func (t *jobsTab) retry(id string) tea.Cmd {
	ctx, src := t.ctx, t.src
	t.status = "retrying " + id
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
