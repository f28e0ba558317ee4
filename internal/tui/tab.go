package tui

import (
	"strings"

	tea "charm.land/bubbletea/v2"
)

// tabComponent is one tab of the dashboard: its own state, messages, keys,
// view and key map.
type tabComponent interface {
	// name is the tab's title.
	name() string
	// update takes a background message; messages for others are ignored.
	update(msg tea.Msg) tea.Cmd
	// key takes a key press; handled false leaves it to the global keys.
	key(k tea.KeyPressMsg) (cmd tea.Cmd, handled bool)
	// view renders the tab in w×h cells.
	view(w, h int) []string
	// prompt is the footer while the tab has an input open, else "".
	prompt() string
	// keymap is the tab's keys as its footer shows them, in order.
	keymap() []binding
	// enter is run when the tab is shown (and on refresh).
	enter() tea.Cmd
}

// binding is one key of a key map: the key and what it does.
type binding struct{ key, does string }

// footerLine renders a key map as the footer shows it.
func footerLine(keys []binding) string {
	parts := make([]string, len(keys))
	for i, b := range keys {
		parts[i] = b.key + " " + b.does
	}
	return faint.Render(" " + strings.Join(parts, " · "))
}

// The global keys, as tab footers name them.
var (
	keyTabs    = binding{"tab", "view"}
	keyRefresh = binding{"r", "refresh"}
	keyScale   = binding{"+/-", "agents"}
	keyHelp    = binding{"?", "help"}
	keyQuit    = binding{"q", "quit"}
)
