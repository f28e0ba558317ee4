package tui

import (
	"strings"

	"github.com/charmbracelet/x/ansi"
)

// logKeep is how many lines of the followed job the log view keeps; older
// ones are in `raibid job logs` and the web page.
const logKeep = 5000

// logView is the job view's log: the followed job's lines, wrapped to the
// width (tabs expanded, multi-line commands on their own rows), following
// the end until the user scrolls up, and searchable. It is a component of
// its own: the model hands it keys and a size, it renders rows.
type logView struct {
	lines []string
	// follow keeps the last row in view; scrolling up turns it off, G or f
	// turns it on again.
	follow bool
	// top is the first shown row (of the wrapped rows) when not following.
	top int
	// query is the search; match the line of the current match (-1: none).
	query string
	match int
	// dir is the search's direction (-1: up, from the end, as a pager's
	// "?"): n goes on that way, N the other; both wrap around.
	dir int
	// last render's geometry, for paging and for keeping top in range.
	width, height int
	// cache holds the lines wrapped at cacheWidth; new lines are wrapped as
	// they come, so a frame does not wrap thousands of lines again.
	cache      []string
	cacheFirst []int
	cacheWidth int
}

func newLogView() *logView { return &logView{follow: true, match: -1} }

// add appends a line, dropping the oldest past logKeep.
func (v *logView) add(text string) {
	v.lines = append(v.lines, expandTabs(text))
	// Trimmed in chunks: each trim re-wraps what is kept.
	if len(v.lines) > logKeep+logKeep/10 {
		over := len(v.lines) - logKeep
		v.lines = append(v.lines[:0:0], v.lines[over:]...)
		v.match = max(v.match-over, -1)
		v.cacheWidth = 0
	}
}

// expandTabs turns tabs into spaces to the next multiple of 8 columns: a
// terminal cell for a tab is the terminal's, not ours, and would break the
// layout.
func expandTabs(s string) string {
	if !strings.Contains(s, "\t") {
		return s
	}
	var b strings.Builder
	col := 0
	for _, r := range s {
		switch r {
		case '\t':
			n := 8 - col%8
			b.WriteString(strings.Repeat(" ", n))
			col += n
		case '\n':
			b.WriteRune(r)
			col = 0
		default:
			b.WriteRune(r)
			col++
		}
	}
	return b.String()
}

// rows wraps every line to width; first[i] is the first row of line i.
func (v *logView) rows(width int) (rows []string, first []int) {
	width = max(width, 10)
	if v.cacheWidth != width {
		v.cache, v.cacheFirst, v.cacheWidth = nil, nil, width
	}
	for i := len(v.cacheFirst); i < len(v.lines); i++ {
		v.cacheFirst = append(v.cacheFirst, len(v.cache))
		// At word boundaries where it can, mid-word where it must.
		v.cache = append(v.cache, strings.Split(ansi.Wrap(v.lines[i], width, ""), "\n")...)
	}
	return v.cache, v.cacheFirst
}

// scroll moves the view by n rows (negative: up) and stops following.
func (v *logView) scroll(n int) {
	if v.follow {
		rows, _ := v.rows(v.width)
		v.top = max(len(rows)-v.height, 0)
	}
	v.follow = false
	v.top = max(v.top+n, 0)
}

// key handles a key of the job view; it reports whether it used it.
func (v *logView) key(k string) bool {
	page := max(v.height-1, 1)
	switch k {
	case "up", "k":
		v.scroll(-1)
	case "down", "j":
		v.scroll(1)
	case "pgup", "ctrl+u", "ctrl+b":
		v.scroll(-page)
	case "pgdown", "ctrl+d", "ctrl+f", " ":
		v.scroll(page)
	case "home", "g":
		v.follow, v.top = false, 0
	case "end", "G":
		v.follow = true
	case "f":
		v.follow = !v.follow
		if !v.follow {
			v.scroll(0)
		}
	case "n":
		v.next(v.dir)
	case "N":
		v.next(-v.dir)
	default:
		return false
	}
	return true
}

// search starts a search for q from the end of the log backwards (the
// newest match first, as in a pager opened at its end).
func (v *logView) search(q string) bool {
	v.query, v.match, v.dir = q, len(v.lines), -1
	if q == "" {
		v.match = -1
		return false
	}
	return v.next(-1)
}

// next moves to the next match in dir (+1 down, -1 up), wrapping around
// the ends, and scrolls it into view; false when there is none.
func (v *logView) next(dir int) bool {
	if v.query == "" || len(v.lines) == 0 {
		return false
	}
	if dir == 0 {
		dir = -1
	}
	q := strings.ToLower(v.query)
	n := len(v.lines)
	start := v.match
	if start < 0 || start >= n {
		start = n // the first step lands on the last line going up, the first going down
		if dir > 0 {
			start = -1
		}
	}
	for k := 1; k <= n; k++ {
		i := ((start+dir*k)%n + n) % n
		if strings.Contains(strings.ToLower(ansi.Strip(v.lines[i])), q) {
			v.match = i
			_, first := v.rows(v.width)
			v.follow = false
			v.top = max(first[i]-v.height/2, 0)
			return true
		}
	}
	return false
}

// matches is the current match's place among all matches, from the top,
// and how many there are: "3/12" in the log's title.
func (v *logView) matches() (at, total int) {
	if v.query == "" {
		return 0, 0
	}
	q := strings.ToLower(v.query)
	for i, l := range v.lines {
		if strings.Contains(strings.ToLower(ansi.Strip(l)), q) {
			total++
			if i == v.match {
				at = total
			}
		}
	}
	return at, total
}

// render returns height rows of the log at width.
func (v *logView) render(width, height int) []string {
	v.width, v.height = width, max(height, 1)
	rows, first := v.rows(width)
	start := max(len(rows)-v.height, 0)
	if !v.follow {
		v.top = min(v.top, start)
		start = v.top
	}
	hl := -1
	if v.match >= 0 && v.match < len(first) {
		hl = first[v.match]
	}
	out := make([]string, 0, v.height)
	for r := start; r < len(rows) && len(out) < v.height; r++ {
		line := rows[r]
		if r == hl {
			line = sel.Render(ansi.Strip(line))
		}
		out = append(out, line)
	}
	return out
}

// position says where the view is, for the log's title bar.
func (v *logView) position() string {
	switch {
	case v.follow:
		return "following"
	case len(v.lines) == 0:
		return "paused"
	}
	return "paused · G follows"
}
