package web

import (
	"html"
	"html/template"
	"strconv"
	"strings"
)

// sgr is the text style an ANSI "select graphic rendition" sequence sets.
type sgr struct {
	fg, bg                       int // -1: default; 0-15: the 16 terminal colours
	bold, dim, italic, underline bool
}

func (s sgr) plain() bool { return s == sgr{fg: -1, bg: -1} }

// classes names the CSS classes of a style; app.css defines them. Classes,
// not style attributes: the Content-Security-Policy forbids inline styles.
func (s sgr) classes() string {
	var c []string
	if s.fg >= 0 {
		c = append(c, "f"+strconv.Itoa(s.fg))
	}
	if s.bg >= 0 {
		c = append(c, "b"+strconv.Itoa(s.bg))
	}
	if s.bold {
		c = append(c, "bo")
	}
	if s.dim {
		c = append(c, "di")
	}
	if s.italic {
		c = append(c, "it")
	}
	if s.underline {
		c = append(c, "un")
	}
	return strings.Join(c, " ")
}

// apply updates s with the parameters of one SGR sequence ("1;31").
func (s *sgr) apply(params string) {
	if params == "" {
		params = "0"
	}
	ps := strings.Split(params, ";")
	for i := 0; i < len(ps); i++ {
		n, err := strconv.Atoi(ps[i])
		if err != nil {
			continue
		}
		switch {
		case n == 0:
			*s = sgr{fg: -1, bg: -1}
		case n == 1:
			s.bold = true
		case n == 2:
			s.dim = true
		case n == 3:
			s.italic = true
		case n == 4:
			s.underline = true
		case n == 22:
			s.bold, s.dim = false, false
		case n == 23:
			s.italic = false
		case n == 24:
			s.underline = false
		case n >= 30 && n <= 37:
			s.fg = n - 30
		case n == 39:
			s.fg = -1
		case n >= 40 && n <= 47:
			s.bg = n - 40
		case n == 49:
			s.bg = -1
		case n >= 90 && n <= 97:
			s.fg = n - 90 + 8
		case n >= 100 && n <= 107:
			s.bg = n - 100 + 8
		case n == 38 || n == 48:
			// 38;5;N (256 colours) keeps N when it is one of the 16; 38;2;r;g;b
			// (true colour) is dropped. Both consume their parameters.
			colour := -1
			if i+2 < len(ps) && ps[i+1] == "5" {
				if c, err := strconv.Atoi(ps[i+2]); err == nil && c < 16 {
					colour = c
				}
				i += 2
			} else if i+4 < len(ps) && ps[i+1] == "2" {
				i += 4
			}
			if n == 38 {
				s.fg = colour
			} else {
				s.bg = colour
			}
		}
	}
}

// ANSIToHTML renders one log line: text escaped, SGR colours and styles as
// spans with classes, every other escape sequence (cursor moves, titles)
// dropped, and a carriage return treated as a terminal would (what follows
// the last one overwrites the line, as progress bars expect).
func ANSIToHTML(line string) template.HTML {
	if i := strings.LastIndexByte(strings.TrimRight(line, "\r"), '\r'); i >= 0 {
		line = line[i+1:]
	}
	var b strings.Builder
	st := sgr{fg: -1, bg: -1}
	open := false
	text := func(t string) {
		if t == "" {
			return
		}
		if !st.plain() && !open {
			b.WriteString(`<span class="` + st.classes() + `">`)
			open = true
		}
		b.WriteString(html.EscapeString(t))
	}
	for len(line) > 0 {
		esc := strings.IndexByte(line, 0x1b)
		if esc < 0 {
			text(line)
			break
		}
		text(line[:esc])
		line = line[esc+1:]
		switch {
		case strings.HasPrefix(line, "["): // CSI: parameters, then a final byte
			end := 1
			for end < len(line) && (line[end] < 0x40 || line[end] > 0x7e) {
				end++
			}
			if end == len(line) {
				line = ""
				break
			}
			if line[end] == 'm' {
				before := st
				st.apply(line[1:end])
				if st != before && open {
					b.WriteString("</span>")
					open = false
				}
			}
			line = line[end+1:]
		case strings.HasPrefix(line, "]"): // OSC: up to BEL or ST
			end := strings.IndexAny(line, "\x07\x1b")
			if end < 0 {
				line = ""
				break
			}
			line = strings.TrimPrefix(line[end+1:], `\`)
		case len(line) > 0:
			line = line[1:] // a two-byte escape
		}
	}
	if open {
		b.WriteString("</span>")
	}
	// Other control characters would be invisible or break the page.
	out := strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' {
			return -1
		}
		return r
	}, b.String())
	return template.HTML(out)
}
