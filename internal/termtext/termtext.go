// Package termtext makes untrusted text — commit messages, authors, branch
// and repository names, a step's output — safe to print on an operator's
// terminal: nothing that arrives from a webhook or a build can move the
// cursor, clear the screen, set the window title, plant a hyperlink or talk
// to the terminal. Fields show their control characters as visible escapes;
// log text keeps its SGR colours and loses every other control sequence.
//
// It is the edge where text meets a terminal: the CLI and the dashboard
// pass jobs (Job) and log lines (Log, Writer) through it before they print.
package termtext

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/raibid-labs/raibid-ci/internal/ci"
)

// Field is s for one terminal field (a table cell, one line of a job's
// description): every control character — C0 but none, DEL, C1, and the
// Unicode controls that reorder text (bidi overrides and isolates) — is
// shown as a visible escape (\x1b, \r, \u202e).
func Field(s string) string {
	if clean(s) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if r == utf8.RuneError || !isControl(r) {
			b.WriteRune(r)
			continue
		}
		switch r {
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if r < 0x100 {
				fmt.Fprintf(&b, `\x%02x`, r)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		}
	}
	return b.String()
}

// clean reports whether s has nothing Field changes (the common case).
func clean(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f || c >= 0x80 {
			if c >= 0x80 {
				for _, r := range s[i:] {
					if isControl(r) {
						return false
					}
				}
				return true
			}
			return false
		}
	}
	return true
}

func isControl(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
		return true
	}
	return false
}

// Log is one line of a step's output for a terminal: SGR sequences
// (colours, bold) are kept; every other escape sequence (OSC titles and
// hyperlinks, cursor movement, screen clears, device queries) is removed,
// and so is every control character but tab.
func Log(s string) string {
	var w Writer
	return w.filter(s)
}

// Writer filters a stream of log text as Log does, for text that arrives
// in pieces (a plain-text log download): an escape sequence cut between
// two writes is still recognised. Newlines pass.
type Writer struct {
	W   io.Writer
	esc []byte // an unfinished escape sequence from the last write
}

// NewWriter filters what is written to w.
func NewWriter(w io.Writer) *Writer { return &Writer{W: w} }

// Write filters p and writes the rest; it reports len(p) on success.
func (w *Writer) Write(p []byte) (int, error) {
	out := w.filter(string(p))
	if _, err := io.WriteString(w.W, out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// filter removes what Log removes, carrying an unfinished escape sequence
// over to the next call.
func (w *Writer) filter(s string) string {
	if len(w.esc) > 0 {
		s = string(w.esc) + s
		w.esc = w.esc[:0]
	}
	if !needsFilter(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == 0x1b:
			n, complete := sequence(s[i:])
			if !complete {
				w.esc = append(w.esc, s[i:]...)
				return b.String()
			}
			if isSGR(s[i : i+n]) {
				b.WriteString(s[i : i+n])
			}
			i += n
		case c == '\n' || c == '\t':
			b.WriteByte(c)
			i++
		case c < 0x20 || c == 0x7f:
			i++
		case c >= 0x80:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError || !isControl(r) {
				b.WriteString(s[i : i+size])
			}
			i += size
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}

func needsFilter(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\n' && c != '\t') || c >= 0x7f {
			return true
		}
	}
	return false
}

// sequence is the length of the escape sequence at the start of s, and
// whether it is complete within s.
func sequence(s string) (int, bool) {
	if len(s) < 2 {
		return len(s), false
	}
	switch s[1] {
	case '[':
		for i := 2; i < len(s); i++ {
			if s[i] >= 0x40 && s[i] <= 0x7e {
				return i + 1, true
			}
			if s[i] < 0x20 || s[i] > 0x7e {
				return i, true // malformed: drop what came so far
			}
		}
		return len(s), false
	case ']', 'P', 'X', '^', '_':
		for i := 2; i < len(s); i++ {
			if s[i] == 0x07 {
				return i + 1, true
			}
			if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '\\' {
				return i + 2, true
			}
			if s[i] == '\n' {
				return i, true // never swallow the line's end
			}
		}
		return len(s), false
	}
	return 2, true
}

// isSGR reports whether seq (a complete CSI sequence) sets colours or
// attributes: ESC [ digits and semicolons (or colons) m.
func isSGR(seq string) bool {
	if len(seq) < 3 || seq[1] != '[' || seq[len(seq)-1] != 'm' {
		return false
	}
	for _, c := range seq[2 : len(seq)-1] {
		if (c < '0' || c > '9') && c != ';' && c != ':' {
			return false
		}
	}
	return true
}

// Job is a copy of j for a terminal: every field that a webhook, a
// pipeline or a build chose passes through Field.
func Job(j *ci.Job) *ci.Job {
	if j == nil {
		return nil
	}
	c := *j
	for _, p := range []*string{&c.ID, &c.Repo, &c.CloneURL, &c.Branch, &c.Tag, &c.Commit, &c.Author,
		&c.Message, &c.Error, &c.Agent, &c.Event, &c.Group, &c.RetryOf} {
		*p = Field(*p)
	}
	if len(j.Matrix) > 0 {
		c.Matrix = make(map[string]string, len(j.Matrix))
		for k, v := range j.Matrix {
			c.Matrix[Field(k)] = Field(v)
		}
	}
	c.Steps = append([]ci.Step(nil), j.Steps...)
	for i := range c.Steps {
		c.Steps[i].Name = Field(c.Steps[i].Name)
	}
	c.Artifacts = append([]ci.Artifact(nil), j.Artifacts...)
	for i := range c.Artifacts {
		c.Artifacts[i].Name = Field(c.Artifacts[i].Name)
	}
	if pr := j.PullRequest; pr != nil {
		p := *pr
		p.BaseBranch, p.HeadBranch = Field(p.BaseBranch), Field(p.HeadBranch)
		c.PullRequest = &p
	}
	return &c
}
