package tui

import (
	"fmt"
	"strings"
	"testing"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/raibid-labs/raibid-ci/internal/ci"
)

func plain(rows []string) string { return ansi.Strip(strings.Join(rows, "\n")) }

func TestLogViewFollowsScrollsAndPages(t *testing.T) {
	v := newLogView()
	for i := 1; i <= 100; i++ {
		v.add(fmt.Sprintf("tick-%03d", i))
	}
	if got := plain(v.render(40, 5)); !strings.HasPrefix(got, "tick-096") || !strings.HasSuffix(got, "tick-100") {
		t.Fatalf("following shows:\n%s", got)
	}
	v.key("up")
	if got := plain(v.render(40, 5)); !strings.HasPrefix(got, "tick-095") || v.follow {
		t.Fatalf("one up:\n%s (follow %v)", got, v.follow)
	}
	v.add("tick-101") // a new line does not move a paused view
	if got := plain(v.render(40, 5)); !strings.HasPrefix(got, "tick-095") {
		t.Fatalf("paused view moved:\n%s", got)
	}
	v.key("pgup")
	if got := plain(v.render(40, 5)); !strings.HasPrefix(got, "tick-091") {
		t.Fatalf("page up:\n%s", got)
	}
	v.key("g")
	if got := plain(v.render(40, 5)); !strings.HasPrefix(got, "tick-001") {
		t.Fatalf("top:\n%s", got)
	}
	v.key("G")
	v.add("tick-102")
	if got := plain(v.render(40, 5)); !strings.HasSuffix(got, "tick-102") || !v.follow {
		t.Fatalf("G follows again:\n%s", got)
	}
}

func TestLogViewWrapsTabsAndMultiLineCommands(t *testing.T) {
	v := newLogView()
	v.add("$ cargo build \\\n  --release")
	v.add("a\tb")
	v.add(strings.Repeat("x", 25))
	got := v.render(12, 10)
	want := []string{"$ cargo", "build \\", "  --release", "a       b", "xxxxxxxxxxxx", "xxxxxxxxxxxx", "x"}
	for i, w := range want {
		if i >= len(got) || strings.TrimRight(ansi.Strip(got[i]), " ") != w {
			t.Fatalf("row %d: %q, want %q (all: %q)", i, ansi.Strip(strings.Join(got, "|")), w, want)
		}
		if ansi.StringWidth(got[i]) > 12 {
			t.Fatalf("row %d wider than the view: %q", i, got[i])
		}
	}
}

func TestLogViewSearch(t *testing.T) {
	v := newLogView()
	for i := 1; i <= 200; i++ {
		v.add(fmt.Sprintf("line %d", i))
	}
	v.add("error: widget failed")
	for i := 201; i <= 300; i++ {
		v.add(fmt.Sprintf("line %d", i))
	}
	v.render(40, 5)
	if !v.search("WIDGET") || !strings.Contains(plain(v.render(40, 5)), "error: widget failed") {
		t.Fatalf("search did not bring the match into view:\n%s", plain(v.render(40, 5)))
	}
	v.search("line 1") // from the end up, as a pager's "?": line 199 first
	first := v.match
	if at, total := v.matches(); at != 111 || total != 111 {
		t.Fatalf("counter %d/%d, want 111/111", at, total)
	}
	v.key("n") // on in the search's direction: up
	if v.match >= first {
		t.Fatalf("n did not go on up: %d → %d", first, v.match)
	}
	if at, _ := v.matches(); at != 110 {
		t.Fatalf("counter at %d after n, want 110", at)
	}
	v.key("N")
	if v.match != first {
		t.Fatalf("N did not come back: %d", v.match)
	}
	v.key("N") // past the last match: around to the first
	if at, _ := v.matches(); at != 1 {
		t.Fatalf("N past the last match is at %d, want 1 (wrapped)", at)
	}
	if v.search("no such text") {
		t.Fatal("found what is not there")
	}
}

// The job view routes keys to the log: scrolling, search typed in the
// footer, and r retries a finished job.
func TestJobViewKeys(t *testing.T) {
	m := New(t.Context(), nil, Options{})
	m.width, m.height = 80, 24
	m.openDetailForTest(&ci.Job{ID: "019aa0000003cccc0003", Status: ci.StatusFailed})
	for i := 1; i <= 50; i++ {
		m.update(logLineMsg{jobID: "019aa0000003cccc0003", line: ci.LogLine{Text: fmt.Sprintf("tick-%02d", i)}})
	}
	for _, k := range []string{"/", "t", "i", "c", "k", "-", "0", "7", "enter"} {
		m.update(keyMsg(k))
	}
	if view := ansi.Strip(m.View().Content); !strings.Contains(view, "tick-07") || !strings.Contains(view, "/tick-07") {
		t.Fatalf("search did not show tick-07:\n%s", view)
	}
	m.update(keyMsg("esc")) // clears the search, stays in the job
	if m.jobsTab.detail == nil || m.jobsTab.log.query != "" {
		t.Fatal("esc with a search active left the job view")
	}
}

func keyMsg(k string) tea.KeyPressMsg {
	switch k {
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "esc":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	}
	return tea.KeyPressMsg{Code: rune(k[0]), Text: k}
}

// openDetailForTest opens the job view without following a log stream.
func (m *Model) openDetailForTest(j *ci.Job) { m.jobsTab.detail, m.jobsTab.log = j, newLogView() }
