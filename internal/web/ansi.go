package web

import (
	"html"
	"html/template"
	"strconv"
	"strings"
)

// sgr is the text style an ANSI "select graphic rendition" sequence sets.
type sgr struct {
	fg, bg                       int // -1: default; 0-255: the xterm 256 colours
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
			// 38;5;N is one of the 256 colours; 38;2;r;g;b (true colour) is
			// shown as the nearest of them (a class, as the CSP wants, not a
			// style attribute). Both consume their parameters.
			colour := -1
			if i+2 < len(ps) && ps[i+1] == "5" {
				if c, err := strconv.Atoi(ps[i+2]); err == nil && c >= 0 && c < 256 {
					colour = c
				}
				i += 2
			} else if i+4 < len(ps) && ps[i+1] == "2" {
				var rgb [3]int
				ok := true
				for k := range 3 {
					v, err := strconv.Atoi(ps[i+2+k])
					ok = ok && err == nil && v >= 0 && v < 256
					rgb[k] = v
				}
				if ok {
					colour = nearest256(rgb[0], rgb[1], rgb[2])
				}
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

// nearest256 is the xterm colour (16-255) closest to an RGB true colour:
// the 6×6×6 cube or the 24 greys, whichever is nearer.
func nearest256(r, g, b int) int {
	level := func(v int) int { // cube steps: 0, 95, 135, 175, 215, 255
		if v < 48 {
			return 0
		}
		if v < 115 {
			return 1
		}
		return (v - 35) / 40
	}
	step := func(i int) int {
		if i == 0 {
			return 0
		}
		return 55 + 40*i
	}
	ri, gi, bi := level(r), level(g), level(b)
	cube := 16 + 36*ri + 6*gi + bi
	dist := func(x, y, z int) int { return (r-x)*(r-x) + (g-y)*(g-y) + (b-z)*(b-z) }
	grey := min(max((r+g+b)/3-3, 0)/10, 23)
	gv := 8 + 10*grey
	if dist(gv, gv, gv) < dist(step(ri), step(gi), step(bi)) {
		return 232 + grey
	}
	return cube
}

// ANSIToHTML renders log text: escaped, SGR colours and styles as spans with
// classes, every other escape sequence (cursor moves, titles) dropped. Each
// line of a multi-line text (a step's `run: |` command) stays a line, and a
// carriage return is treated as a terminal would: what follows the last one
// in a line overwrites it, as progress bars expect.
func ANSIToHTML(text string) template.HTML {
	if !strings.Contains(text, "\n") {
		return ansiLine(text)
	}
	parts := strings.Split(text, "\n")
	for i, p := range parts {
		parts[i] = string(ansiLine(p))
	}
	return template.HTML(strings.Join(parts, "\n"))
}

func ansiLine(line string) template.HTML {
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
