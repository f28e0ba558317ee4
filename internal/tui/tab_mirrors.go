package tui

import (
	"fmt"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/raibid-labs/raibid-ci/internal/api"
	"github.com/raibid-labs/raibid-ci/internal/ci"
)

// mirrorsTab is the Mirrors tab: Gitea's pull mirrors through the server,
// fetched when the tab opens and every mirrorsEvery seconds while it shows;
// s asks Gitea to sync the selected one.
type mirrorsTab struct {
	*shared
	src     MirrorsSource
	mirrors []api.Mirror
	enabled bool
	loaded  bool
	err     string
	cursor  int
}

func (t *mirrorsTab) name() string   { return "Mirrors" }
func (t *mirrorsTab) prompt() string { return "" }
func (t *mirrorsTab) enter() tea.Cmd { return fetchMirrors(t.ctx, t.src) }

func (t *mirrorsTab) keymap() []binding {
	return []binding{{"↑↓", "move"}, {"s", "sync now"}, keyTabs, keyRefresh, keyHelp, keyQuit}
}

func (t *mirrorsTab) update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case mirrorsMsg:
		t.loaded, t.err = true, ""
		if msg.err != nil {
			t.err = msg.err.Error()
			return nil
		}
		t.enabled, t.mirrors = msg.enabled, msg.mirrors
		t.cursor = max(min(t.cursor, len(t.mirrors)-1), 0)
	case mirrorSyncedMsg:
		if msg.err != nil {
			t.status = "sync " + msg.target + ": " + msg.err.Error()
		} else {
			t.status = "sync of " + msg.target + " queued in Gitea"
		}
		return fetchMirrors(t.ctx, t.src)
	}
	return nil
}

func (t *mirrorsTab) key(k tea.KeyPressMsg) (tea.Cmd, bool) {
	switch k.String() {
	case "up", "k":
		t.cursor = max(t.cursor-1, 0)
	case "down", "j":
		t.cursor = max(min(t.cursor+1, len(t.mirrors)-1), 0)
	case "s":
		if t.cursor < len(t.mirrors) {
			target := t.mirrors[t.cursor].Target
			t.status = "asking Gitea to sync " + target
			return syncMirror(t.ctx, t.src, target), true
		}
	default:
		return nil, false
	}
	return nil, true
}

func (t *mirrorsTab) view(w, rows int) []string {
	switch {
	case !t.loaded:
		return fit([]string{"", faint.Render("  loading mirrors…")}, rows)
	case t.err != "":
		return fit([]string{"", red.Render("  mirrors: " + t.err)}, rows)
	case !t.enabled:
		return fit([]string{"", faint.Render("  Mirroring is off on this server: start it with --mirrors mirrors.yaml"),
			faint.Render("  (`raibid mirror plan` shows what the file would mirror).")}, rows)
	}
	stale := 0
	for _, mr := range t.mirrors {
		if mr.Stale {
			stale++
		}
	}
	out := []string{faint.Render(fmt.Sprintf(" MIRRORS (%d, %d stale)", len(t.mirrors), stale)),
		faint.Render(" " + pad("MIRROR", 28) + " " + pad("LAST SYNC", 12) + " " + pad("STATE", 8) + " SOURCE")}
	if len(t.mirrors) == 0 {
		out = append(out, faint.Render("  no mirror in Gitea yet: `raibid mirror sync` creates them"))
	}
	now := t.opts.Now()
	for i, mr := range t.mirrors {
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
		if i == t.cursor {
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
