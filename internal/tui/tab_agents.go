package tui

import tea "charm.land/bubbletea/v2"

// agentsTab is the Agents tab: every agent with its host (or pod phase)
// and uptime, and the agent limit that +/- change.
type agentsTab struct{ *shared }

func (t *agentsTab) name() string                        { return "Agents" }
func (t *agentsTab) update(tea.Msg) tea.Cmd              { return nil }
func (t *agentsTab) key(tea.KeyPressMsg) (tea.Cmd, bool) { return nil, false }
func (t *agentsTab) prompt() string                      { return "" }
func (t *agentsTab) enter() tea.Cmd                      { return nil }
func (t *agentsTab) view(w, h int) []string              { return t.agentLines(w, h, true) }

func (t *agentsTab) keymap() []binding {
	return []binding{keyScale, keyTabs, keyRefresh, keyHelp, keyQuit}
}
