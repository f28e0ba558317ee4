package tui

import (
	"fmt"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/raibid-labs/raibid-ci/internal/ci"
)

// Basic ANSI colours: they cost the fewest bytes on the wire and follow the
// user's terminal theme.
var (
	green  = lipgloss.NewStyle().Foreground(lipgloss.Color("2"))
	yellow = lipgloss.NewStyle().Foreground(lipgloss.Color("3"))
	red    = lipgloss.NewStyle().Foreground(lipgloss.Color("1"))
	blue   = lipgloss.NewStyle().Foreground(lipgloss.Color("4"))
	faint  = lipgloss.NewStyle().Faint(true)
	bold   = lipgloss.NewStyle().Bold(true)
	sel    = lipgloss.NewStyle().Reverse(true)
)

func statusStyle(s ci.Status) lipgloss.Style {
	switch s {
	case ci.StatusSuccess:
		return green
	case ci.StatusRunning:
		return yellow
	case ci.StatusFailed, ci.StatusError:
		return red
	case ci.StatusPending:
		return blue
	}
	return faint
}

// View renders the whole screen: exactly height lines of at most width cells.
func (m *Model) View() tea.View {
	v := tea.NewView(m.render())
	v.AltScreen = true
	v.WindowTitle = "raibid"
	return v
}

func (m *Model) render() string {
	w, h := max(m.width, 20), max(m.height, 5)
	lines := []string{m.header(w), m.tabs(w)}
	body := h - 3
	switch {
	case m.mode == modeHelp:
		lines = append(lines, m.help(body)...)
	case m.detail != nil:
		lines = append(lines, m.detailView(w, body)...)
	case m.tab == tabJobs:
		lines = append(lines, m.jobsView(w, body)...)
	case m.tab == tabAgents:
		lines = append(lines, m.agentLines(w, body, true)...)
	case m.tab == tabMirrors:
		lines = append(lines, m.mirrorsView(w, body)...)
	case m.tab == tabSystem:
		lines = append(lines, m.systemView(body)...)
	}
	lines = append(lines, m.footer(w))
	for i, l := range lines {
		lines[i] = ansi.Truncate(l, w, "…")
	}
	return strings.Join(lines, "\n")
}

// fit pads or cuts lines to exactly n.
func fit(lines []string, n int) []string {
	if len(lines) > n {
		return lines[:n]
	}
	for len(lines) < n {
		lines = append(lines, "")
	}
	return lines
}

func (m *Model) header(w int) string {
	busy := 0
	for _, a := range m.agents {
		if a.Status == "busy" {
			busy++
		}
	}
	parts := []string{bold.Render("raibid"), m.opts.Server,
		fmt.Sprintf("agents %d/%d busy", busy, len(m.agents)),
		fmt.Sprintf("queue %d", m.queue.Lag)}
	if m.system != nil {
		h := m.system.Host
		parts = append(parts, fmt.Sprintf("cpu %.0f%%", h.CPUPercent),
			fmt.Sprintf("mem %.1f/%.0fG", float64(h.MemUsed)/(1<<30), float64(h.MemTotal)/(1<<30)))
	}
	var conn string
	switch {
	case m.connected:
		conn = green.Render("● live")
	case m.connErr != "":
		conn = red.Render("● offline")
	default:
		conn = yellow.Render("● connecting")
	}
	parts = append([]string{parts[0], conn}, parts[1:]...)
	line := " " + strings.Join(parts, faint.Render(" │ "))
	if ansi.StringWidth(line) > w { // narrow: the server URL is on the System tab
		line = " " + strings.Join(append(parts[:2:2], parts[3:]...), faint.Render(" │ "))
	}
	return line
}

func (m *Model) tabs(w int) string {
	var b strings.Builder
	for i, name := range tabNames {
		label := " " + name + " "
		if tab(i) == m.tab {
			label = sel.Render(label)
		}
		b.WriteString(label + " ")
	}
	if m.filter != "" {
		b.WriteString(faint.Render(" filter: ") + m.filter)
	}
	return b.String()
}

// shortID is the random tail of a job id: enough to tell jobs apart on screen.
func shortID(id string) string {
	if len(id) > 8 {
		return id[len(id)-8:]
	}
	return id
}

func (m *Model) durationOf(j *ci.Job) string {
	if j.StartedAt == nil {
		return "-"
	}
	d := j.Duration(m.opts.Now())
	if d < time.Minute {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func pad(s string, n int) string {
	s = ansi.Truncate(s, n, "…")
	return s + strings.Repeat(" ", max(n-ansi.StringWidth(s), 0))
}

func (m *Model) jobsView(w, body int) []string {
	top := max(body/2, 3)
	bottom := body - top
	out := m.jobTable(w, top)
	left, right := w/2, w-w/2-1
	agents := m.agentLines(left, bottom, false)
	spark := m.sparkView(right, bottom)
	for i := range bottom {
		out = append(out, pad(agents[i], left)+faint.Render("│")+spark[i])
	}
	return out
}

func (m *Model) jobTable(w, rows int) []string {
	flex := max(w-8-9-8-10-6, 10)
	repoW, branchW := flex*3/5, flex-flex*3/5
	row := func(id, st, repo, branch, dur, agent string) string {
		return " " + pad(id, 8) + " " + pad(st, 9) + " " + pad(repo, repoW) + " " + pad(branch, branchW) + " " + pad(dur, 8) + " " + pad(agent, 10)
	}
	out := []string{faint.Render(row("ID", "STATUS", "REPO", "BRANCH", "DURATION", "AGENT"))}
	jobs := m.visibleJobs()
	if len(jobs) == 0 {
		msg := "  No jobs yet. Push to a repository with the webhook set up, or press n."
		if m.filter != "" {
			msg = "  No job matches the filter; esc clears it."
		}
		return fit(append(out, faint.Render(msg)), rows)
	}
	visible := rows - 1
	first := 0
	if m.cursor >= visible {
		first = m.cursor - visible + 1
	}
	for i := first; i < len(jobs) && i < first+visible; i++ {
		j := jobs[i]
		agent := j.Agent
		if agent == "" {
			agent = "-"
		}
		line := row(shortID(j.ID), string(j.Status), j.Repo, j.Branch, m.durationOf(&j), agent)
		if i == m.cursor {
			line = sel.Render(pad(line, w))
		} else {
			line = " " + pad(shortID(j.ID), 8) + " " + statusStyle(j.Status).Render(pad(string(j.Status), 9)) + line[1+8+1+9:]
		}
		out = append(out, line)
	}
	return fit(out, rows)
}

func (m *Model) agentLines(w, rows int, full bool) []string {
	out := []string{faint.Render(fmt.Sprintf(" AGENTS (%d)%s", len(m.agents), m.scaleLabel()))}
	if len(m.agents) == 0 {
		out = append(out, faint.Render("  no agent is running"))
	}
	for _, a := range m.agents {
		dot, what := green.Render("●"), "idle"
		if a.Status == "busy" {
			dot, what = yellow.Render("●"), "busy "+shortID(a.CurrentJob)
		}
		line := fmt.Sprintf(" %s %s %s", dot, pad(a.Name, 14), what)
		if a.Sandbox == "off" {
			line += " " + red.Render("unsandboxed")
		}
		if full {
			where := "host " + a.Host
			if a.Phase != "" {
				where = "pod " + a.Phase + " on " + a.Host
			}
			line += faint.Render(fmt.Sprintf("   %s, up %s", where, m.opts.Now().Sub(a.StartedAt).Round(time.Second)))
		}
		out = append(out, line)
	}
	return fit(out, rows)
}

func (m *Model) scaleLabel() string {
	if m.maxAgents >= 0 {
		return fmt.Sprintf(" · max %d (+/-)", m.maxAgents)
	}
	return ""
}

var sparkBlocks = []rune("▁▂▃▄▅▆▇█")

func (m *Model) sparkView(w, rows int) []string {
	var peak int64
	for _, d := range m.depth {
		peak = max(peak, d)
	}
	out := []string{faint.Render(fmt.Sprintf(" QUEUE now %d · peak %d · 60s", m.queue.Lag, peak))}
	n := min(len(m.depth), max(w-2, 0))
	var b strings.Builder
	b.WriteString(" ")
	for _, d := range m.depth[len(m.depth)-n:] {
		i := 0
		if peak > 0 {
			i = int(d * int64(len(sparkBlocks)-1) / peak)
		}
		b.WriteRune(sparkBlocks[i])
	}
	out = append(out, b.String(),
		faint.Render(fmt.Sprintf(" running %d · dead letters %d", m.queue.Pending, m.queue.Dead)))
	return fit(out, rows)
}

func (m *Model) systemView(rows int) []string {
	out := []string{""}
	if m.system == nil {
		return fit(append(out, faint.Render("  loading…")), rows)
	}
	s := m.system
	out = append(out,
		fmt.Sprintf("  server     %s (version %s, up %s)", m.opts.Server, s.Version, m.opts.Now().Sub(s.StartedAt).Round(time.Second)),
		fmt.Sprintf("  host       %d CPUs, %.0f%% busy, load %.2f", s.Host.CPUs, s.Host.CPUPercent, s.Host.Load1),
		fmt.Sprintf("  memory     %.1f of %.1f GiB used", float64(s.Host.MemUsed)/(1<<30), float64(s.Host.MemTotal)/(1<<30)),
		fmt.Sprintf("  queue      %d waiting, %d running, %d dead letters, %d entries", m.queue.Lag, m.queue.Pending, m.queue.Dead, m.queue.Length),
	)
	return fit(out, rows)
}

func (m *Model) detailView(w, rows int) []string {
	j := m.detail
	out := []string{
		fmt.Sprintf(" Job %s  %s", bold.Render(j.ID), statusStyle(j.Status).Render(string(j.Status))),
		fmt.Sprintf(" %s @ %s  %s", j.Repo, j.Branch, faint.Render(shortSHA(j.Commit))),
		faint.Render(fmt.Sprintf(" agent %s · attempt %d · %s", dashIfEmpty(j.Agent), j.Attempt, m.durationOf(j))),
	}
	if j.Error != "" {
		out = append(out, red.Render(" error: "+j.Error))
	}
	for _, s := range j.Steps {
		d := "-"
		if s.StartedAt != nil {
			d = (time.Duration(s.DurationMS) * time.Millisecond).String()
		}
		out = append(out, fmt.Sprintf("   %s %s %s", pad(s.Name, 12), statusStyle(s.Status).Render(pad(string(s.Status), 9)), d))
	}
	title := " ── log · " + m.log.position() + " "
	if m.log.query != "" {
		title = " ── log · " + m.log.position() + " · /" + m.log.query + " "
	}
	out = append(out, faint.Render(title+strings.Repeat("─", max(w-ansi.StringWidth(title), 0))))
	for _, l := range m.log.render(w-1, max(rows-len(out), 1)) {
		out = append(out, " "+l)
	}
	return fit(out, rows)
}

func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return dashIfEmpty(s)
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Keys lists every key binding; docs/tui.md and the help screen show it.
var Keys = [][2]string{
	{"↑/↓, k/j, PgUp/PgDn", "move in the jobs table"},
	{"g/G", "first / last job"},
	{"Enter", "open the job: steps, error, live log"},
	{"Esc", "back from the job view; clear the filter or the log search"},
	{"c", "cancel the selected job (asks y/n)"},
	{"job view: ↑/↓ PgUp/PgDn", "scroll the log (stops following)"},
	{"job view: g/G, f", "top / end of the log (G follows again); f toggles following"},
	{"job view: / n N", "search the log; next / previous match"},
	{"job view: r", "retry a finished job and open the new one"},
	{"n", "start a job: owner/name or a local path, then branch"},
	{"+ / -", "more / fewer agents"},
	{"Tab / Shift+Tab", "Jobs, Agents, Mirrors, System"},
	{"s", "Mirrors tab: ask Gitea to sync the selected mirror"},
	{"/", "filter by status name (failed includes error) or repo text"},
	{"r", "refresh now"},
	{"?", "this help"},
	{"q, Ctrl+C", "quit"},
}

func (m *Model) help(rows int) []string {
	out := []string{"", bold.Render("  Keys")}
	for _, k := range Keys {
		out = append(out, "  "+pad(k[0], 26)+k[1])
	}
	out = append(out, "", faint.Render("  any key closes this help"))
	return fit(out, rows)
}

func (m *Model) footer(w int) string {
	switch m.mode {
	case modeFilter:
		return " filter: " + m.input + "▏" + faint.Render("  (a status — failed includes error — or repo text; enter, esc)")
	case modeConfirmCancel:
		id := ""
		if j := m.selected(); j != nil {
			id = j.ID
		}
		if m.detail != nil {
			id = m.detail.ID
		}
		return yellow.Render(" cancel job " + id + "? y/n")
	case modeLogSearch:
		return " search log: " + m.input + "▏" + faint.Render("  (enter searches from the end, esc cancels)")
	case modeNewJob:
		repo, branch := m.newRepo, m.newBranch
		if m.newField == 0 {
			repo += "▏"
		} else {
			branch += "▏"
		}
		return " new job  repo: " + repo + "  branch: " + branch + faint.Render("  (owner/name or a local path; tab, enter, esc)")
	}
	if m.status != "" {
		return " " + m.status
	}
	if m.connErr != "" {
		return red.Render(" " + m.connErr)
	}
	if m.detail != nil {
		return faint.Render(" ↑↓ PgUp/PgDn scroll · G follow · / search · c cancel · r retry · esc back")
	}
	switch m.tab {
	case tabAgents:
		return faint.Render(" +/- agents · tab view · r refresh · ? help · q quit")
	case tabMirrors:
		return faint.Render(" ↑↓ move · s sync now · tab view · r refresh · ? help · q quit")
	case tabSystem:
		return faint.Render(" tab view · r refresh · ? help · q quit")
	}
	return faint.Render(" ↑↓ move · enter open · c cancel · n new · +/- agents · / filter · ? help")
}

func (m *Model) mirrorsView(w, rows int) []string {
	switch {
	case !m.mirrorsLoaded:
		return fit([]string{"", faint.Render("  loading mirrors…")}, rows)
	case m.mirrorsErr != "":
		return fit([]string{"", red.Render("  mirrors: " + m.mirrorsErr)}, rows)
	case !m.mirrorsEnabled:
		return fit([]string{"", faint.Render("  Mirroring is off on this server: start it with --mirrors mirrors.yaml"),
			faint.Render("  (`raibid mirror plan` shows what the file would mirror).")}, rows)
	}
	stale := 0
	for _, mr := range m.mirrors {
		if mr.Stale {
			stale++
		}
	}
	out := []string{faint.Render(fmt.Sprintf(" MIRRORS (%d, %d stale)", len(m.mirrors), stale)),
		faint.Render(" " + pad("MIRROR", 28) + " " + pad("LAST SYNC", 12) + " " + pad("STATE", 8) + " SOURCE")}
	if len(m.mirrors) == 0 {
		out = append(out, faint.Render("  no mirror in Gitea yet: `raibid mirror sync` creates them"))
	}
	now := m.opts.Now()
	for i, mr := range m.mirrors {
		last := "never"
		if !mr.LastSync.IsZero() {
			last = ci.ShortAge(now.Sub(mr.LastSync)) + " ago"
		}
		state := green.Render(pad("ok", 8))
		switch {
		case mr.LastError != "":
			state = red.Render(pad("error", 8))
		case mr.Missing:
			state = red.Render(pad("missing", 8))
		case mr.Stale:
			state = yellow.Render(pad("stale", 8))
		}
		line := " " + pad(mr.Target, 28) + " " + pad(last, 12) + " " + state + " " + faint.Render(mr.Source)
		if i == m.mirrorCursor {
			line = sel.Render(ansi.Strip(ansi.Truncate(line, w, "")))
		}
		out = append(out, line)
		if mr.LastError != "" {
			out = append(out, red.Render("   "+mr.LastError))
		}
	}
	out = append(out, "", faint.Render(" s sync the selected mirror · stale: no sync for 24 h"))
	return fit(out, rows)
}
