package tui

import (
	"fmt"
	"strings"

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
	lines := []string{m.header(w), m.tabsLine()}
	body := h - 3
	if m.help {
		lines = append(lines, m.helpView(body)...)
	} else {
		lines = append(lines, m.current().view(w, body)...)
	}
	lines = append(lines, m.footer())
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

func (m *Model) tabsLine() string {
	var b strings.Builder
	for i, t := range m.tabs {
		label := " " + t.name() + " "
		if tab(i) == m.tab {
			label = sel.Render(label)
		}
		b.WriteString(label + " ")
	}
	if f := m.jobsTab.filter; f != "" {
		b.WriteString(faint.Render(" filter: ") + f)
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

func pad(s string, n int) string {
	s = ansi.Truncate(s, n, "…")
	return s + strings.Repeat(" ", max(n-ansi.StringWidth(s), 0))
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
	{"job view: C / R", "a matrix job: cancel / retry the whole matrix (R: what did not pass)"},
	{"n", "start a job: owner/name or a local path, then branch"},
	{"+ / -", "more / fewer agents"},
	{"Tab / Shift+Tab", "Jobs, Agents, Mirrors, System"},
	{"s", "Mirrors tab: ask Gitea to sync the selected mirror"},
	{"/", "filter by status name (failed includes error) or repo text"},
	{"r", "refresh now"},
	{"?", "this help"},
	{"q, Ctrl+C", "quit"},
}

func (m *Model) helpView(rows int) []string {
	out := []string{"", bold.Render("  Keys")}
	for _, k := range Keys {
		out = append(out, "  "+pad(k[0], 26)+k[1])
	}
	out = append(out, "", faint.Render("  any key closes this help"))
	return fit(out, rows)
}

// footer is the shown tab's input when one is open, else the last
// action's result, else the connection's trouble, else the tab's keys.
func (m *Model) footer() string {
	if p := m.current().prompt(); p != "" {
		return p
	}
	if m.status != "" {
		return " " + m.status
	}
	if m.connErr != "" {
		return red.Render(" " + m.connErr)
	}
	return footerLine(m.current().keymap())
}
