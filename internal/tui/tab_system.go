package tui

import (
	"fmt"
	"time"

	tea "charm.land/bubbletea/v2"
)

// systemTab is the System tab: the server, its host and the queue.
type systemTab struct{ *shared }

func (t *systemTab) name() string                        { return "System" }
func (t *systemTab) update(tea.Msg) tea.Cmd              { return nil }
func (t *systemTab) key(tea.KeyPressMsg) (tea.Cmd, bool) { return nil, false }
func (t *systemTab) prompt() string                      { return "" }
func (t *systemTab) enter() tea.Cmd                      { return nil }
func (t *systemTab) keymap() []binding                   { return []binding{keyTabs, keyRefresh, keyHelp, keyQuit} }

func (t *systemTab) view(_, rows int) []string {
	out := []string{""}
	if t.system == nil {
		return fit(append(out, faint.Render("  loading…")), rows)
	}
	s := t.system
	out = append(out,
		fmt.Sprintf("  server     %s (version %s, up %s)", t.opts.Server, s.Version, t.opts.Now().Sub(s.StartedAt).Round(time.Second)),
		fmt.Sprintf("  host       %d CPUs, %.0f%% busy, load %.2f", s.Host.CPUs, s.Host.CPUPercent, s.Host.Load1),
		fmt.Sprintf("  memory     %.1f of %.1f GiB used", float64(s.Host.MemUsed)/(1<<30), float64(s.Host.MemTotal)/(1<<30)),
		fmt.Sprintf("  queue      %d waiting, %d running, %d dead letters, %d entries", t.queue.Lag, t.queue.Pending, t.queue.Dead, t.queue.Length),
	)
	if s.ArtifactsBytes > 0 {
		out = append(out, fmt.Sprintf("  artifacts  %.1f MiB on the server's disk", float64(s.ArtifactsBytes)/(1<<20)))
	}
	return fit(out, rows)
}
