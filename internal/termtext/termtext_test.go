package termtext_test

import (
	"strings"
	"testing"

	"github.com/raibid-labs/raibid-ci/internal/termtext"
)

func TestFieldShowsEveryControlCharacter(t *testing.T) {
	cases := map[string]string{
		"plain text, ünïcode":             "plain text, ünïcode",
		"title\x1b]0;pwned\x07":           `title\x1b]0;pwned\x07`,
		"clear\x1b[2J\x1b[H":              `clear\x1b[2J\x1b[H`,
		"over\rwrite":                     `over\rwrite`,
		"two\nlines\tand tab":             `two\nlines\tand tab`,
		"c1 \u009b31m":                    `c1 \x9b31m`,
		"bidi \u202egnp.exe":              `bidi \u202egnp.exe`,
		"del\x7f bell\x07 backspace\x08x": `del\x7f bell\x07 backspace\x08x`,
	}
	for in, want := range cases {
		if got := termtext.Field(in); got != want {
			t.Errorf("Field(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLogKeepsColoursOnly(t *testing.T) {
	cases := map[string]string{
		"\x1b[1;32mok\x1b[0m":                                   "\x1b[1;32mok\x1b[0m",
		"\x1b[38;2;255;0;0mtruecolour\x1b[m":                    "\x1b[38;2;255;0;0mtruecolour\x1b[m",
		"a\x1b]0;window title\x07b":                             "ab",
		"\x1b]8;;https://evil.example/\x1b\\link\x1b]8;;\x1b\\": "link",
		"progress 10%\r\x1b[2Kprogress 20%":                     "progress 10%progress 20%",
		"\x1b[2J\x1b[Hcleared \x1b[6n":                          "cleared ",
		"tab\tkept, bell\x07 gone\x1bc":                         "tab\tkept, bell gone",
		"\u202eevil":                                            "evil",
	}
	for in, want := range cases {
		if got := termtext.Log(in); got != want {
			t.Errorf("Log(%q) = %q, want %q", in, got, want)
		}
	}
}

// A stream cut inside an escape sequence is filtered as a whole.
func TestWriterAcrossPieces(t *testing.T) {
	in := "one \x1b]0;title\x07two \x1b[31mred\x1b[0m\nthree\x1b[2J\n"
	for cut := 1; cut < len(in); cut++ {
		var b strings.Builder
		w := termtext.NewWriter(&b)
		w.Write([]byte(in[:cut]))
		w.Write([]byte(in[cut:]))
		if want := "one two \x1b[31mred\x1b[0m\nthree\n"; b.String() != want {
			t.Fatalf("cut at %d: %q, want %q", cut, b.String(), want)
		}
	}
}
