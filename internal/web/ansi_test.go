package web

import (
	"regexp"
	"strings"
	"testing"

	"github.com/raibid-labs/raibid-ci/internal/ci"
)

func TestANSIToHTML(t *testing.T) {
	cases := []struct{ in, want string }{
		{"plain", "plain"},
		{"<script>alert(1)</script> & \"q\"", "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;q&#34;"},
		{"\x1b[32mok\x1b[0m done", `<span class="f2">ok</span> done`},
		{"\x1b[1;31merror\x1b[0m: x", `<span class="f1 bo">error</span>: x`},
		{"\x1b[1m\x1b[91mwarn\x1b[39m!\x1b[0m", `<span class="f9 bo">warn</span><span class="bo">!</span>`},
		{"\x1b[38;5;4mblue\x1b[m \x1b[38;2;1;2;3mrgb\x1b[0m", `<span class="f4">blue</span> <span class="f16">rgb</span>`},
		{"\x1b[38;5;208morange\x1b[0m \x1b[48;5;236mbg\x1b[0m", `<span class="f208">orange</span> <span class="b236">bg</span>`},
		{"\x1b[38;2;255;135;0mtrue\x1b[0m \x1b[38;2;128;128;128mgrey\x1b[0m", `<span class="f208">true</span> <span class="f244">grey</span>`},
		{"\x1b[38;5;300mbad\x1b[0m", "bad"},
		{"$ cargo build \\\n  --release\n\x1b[32mok\x1b[0m", "$ cargo build \\\n  --release\n<span class=\"f2\">ok</span>"},
		{"\x1b[2K\x1b[1Gcursor", "cursor"},
		{"\x1b]0;title\x07after", "after"},
		{"10%\r50%\r100%", "100%"},
		{"bell\x07 and \x00nul", "bell and nul"},
		{"\x1b[31m<b>", `<span class="f1">&lt;b&gt;</span>`},
		{"cut \x1b[3", "cut "},
	}
	for _, c := range cases {
		if got := string(ANSIToHTML(c.in)); got != c.want {
			t.Errorf("ANSIToHTML(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

var spanTag = regexp.MustCompile(`<span class="[a-z0-9 ]+">|</span>`)

func FuzzANSIToHTML(f *testing.F) {
	f.Add("\x1b[1;31m<x>\x1b[0m\r\x1b]0;t\x07")
	f.Add("\x1b[1;31m<x>\x1b[0m")
	f.Fuzz(func(t *testing.T, s string) {
		out := string(ANSIToHTML(s))
		// Whatever the input, no markup but our spans gets through.
		rest := spanTag.ReplaceAllString(out, "")
		if strings.ContainsAny(rest, "<>\x1b") {
			t.Fatalf("ANSIToHTML(%q) = %q lets markup or escapes through", s, out)
		}
		if strings.Count(out, "<span") != strings.Count(out, "</span>") {
			t.Fatalf("unbalanced spans: %q", out)
		}
	})
}

// Lines of steps that ran at once arrive mixed; each step still gets one
// section holding all of its lines, in order.
func TestSectionsKeepParallelStepsApart(t *testing.T) {
	lines := []ci.LogLine{{Step: "clone", Text: "c"}, {Step: "a", Text: "a1"}, {Step: "b", Text: "b1"}, {Step: "a", Text: "a2"}, {Step: "b", Text: "b2"}}
	secs := Sections(&ci.Job{}, lines)
	var got []string
	for _, s := range secs {
		var texts []string
		for _, l := range s.Lines {
			texts = append(texts, l.Text)
		}
		got = append(got, s.Step+":"+strings.Join(texts, ","))
	}
	if strings.Join(got, " ") != "clone:c a:a1,a2 b:b1,b2" {
		t.Fatalf("sections %v", got)
	}
}
