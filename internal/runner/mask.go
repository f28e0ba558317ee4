package runner

import (
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"sort"
	"strings"
)

// Mask is what a secret turns into in logs.
const Mask = "****"

// minSecret is the shortest secret masked; shorter ones would mask ordinary
// words.
const minSecret = 4

// Masker hides secrets in log text in every encoding a build is likely to
// print them in: as they are, base64 (standard and URL alphabets, padded or
// not, and inside a longer encoded string such as a Basic auth header's
// user:secret), hex, and percent-encoded however much or little of it is
// (either hex case, any set of bytes encoded) — and when escape sequences
// split a value (a colour reset inside it), which a terminal or the web page
// would show whole.
type Masker struct {
	r     *strings.Replacer
	forms []string // every masked form, longest first
	// plain are the forms searched in the decoded view of text that holds
	// a '%' or an escape sequence: the secrets themselves and their whole
	// base64 encodings (whose '+', '/' and '=' a URL percent-encodes). Hex
	// never needs encoding; base64 pieces inside longer encodings split by
	// escapes are left out, for speed: coloured output takes this path.
	plain []string
}

// NewMasker masks each secret of at least 4 bytes.
func NewMasker(secrets ...string) *Masker {
	var forms []string
	for _, s := range secrets {
		if len(s) < minSecret {
			continue
		}
		forms = append(forms, secretForms(s)...)
	}
	// Longest first, so a secret containing another is masked whole.
	sort.SliceStable(forms, func(i, j int) bool { return len(forms[i]) > len(forms[j]) })
	m := &Masker{}
	seen := map[string]bool{}
	var pairs []string
	for _, f := range forms {
		if f != "" && !seen[f] {
			seen[f] = true
			m.forms = append(m.forms, f)
			pairs = append(pairs, f, Mask)
		}
	}
	if len(pairs) > 0 {
		m.r = strings.NewReplacer(pairs...)
	}
	for _, s := range secrets {
		if len(s) < minSecret {
			continue
		}
		m.plain = append(m.plain, s)
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			m.plain = append(m.plain, enc.WithPadding(base64.NoPadding).EncodeToString([]byte(s)))
		}
	}
	return m
}

// secretForms is every string that shows s in a log.
func secretForms(s string) []string {
	forms := []string{s, hex.EncodeToString([]byte(s)), strings.ToUpper(hex.EncodeToString([]byte(s))),
		url.QueryEscape(s), url.PathEscape(s)}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		forms = append(forms, enc.EncodeToString([]byte(s)), enc.WithPadding(base64.NoPadding).EncodeToString([]byte(s)))
		// Inside a longer encoded string the secret starts at one of three
		// bit offsets; the characters wholly made of its bits are the same
		// whatever surrounds it.
		for off := range 3 {
			enc := enc.WithPadding(base64.NoPadding).EncodeToString(append(make([]byte, off), s...))
			start := (8*off + 5) / 6
			end := 8 * (off + len(s)) / 6
			if end-start >= 6 {
				forms = append(forms, enc[start:end])
			}
		}
	}
	return forms
}

// Apply masks text.
func (m *Masker) Apply(text string) string {
	if m == nil || m.r == nil {
		return text
	}
	text = m.r.Replace(text)
	if strings.IndexByte(text, '%') < 0 && strings.IndexByte(text, 0x1b) < 0 {
		return text // the common case: nothing encoded, nothing escaped
	}
	return m.maskDecoded(text)
}

// maskDecoded finds the secrets in the text as it would read decoded —
// percent-escapes (%XX, either case) decoded, escape sequences removed —
// and masks the original bytes each occurrence came from.
func (m *Masker) maskDecoded(text string) string {
	view := make([]byte, 0, len(text))
	from := make([]int32, 0, len(text)) // view byte i came from text[from[i]:]
	for i := 0; i < len(text); {
		switch c := text[i]; {
		case c == 0x1b:
			i += escapeLen(text[i:])
		case c == '%' && i+2 < len(text) && isHex(text[i+1]) && isHex(text[i+2]):
			view = append(view, unhex(text[i+1])<<4|unhex(text[i+2]))
			from = append(from, int32(i))
			i += 3
		default:
			view = append(view, c)
			from = append(from, int32(i))
			i++
		}
	}
	var spans [][2]int // original [start, end) to mask
	v := string(view)
	for _, f := range m.plain {
		for off := 0; ; {
			j := strings.Index(v[off:], f)
			if j < 0 {
				break
			}
			start := off + j
			last := start + len(f) - 1
			end := int(from[last]) + 1
			if text[from[last]] == '%' {
				end = int(from[last]) + 3
			}
			spans = append(spans, [2]int{int(from[start]), end})
			off = start + len(f)
		}
	}
	if len(spans) == 0 {
		return text
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i][0] < spans[j][0] })
	var b strings.Builder
	at := 0
	for _, sp := range spans {
		if sp[1] <= at {
			continue // inside a span already masked
		}
		if sp[0] < at {
			sp[0] = at
		} else {
			b.WriteString(text[at:sp[0]])
			b.WriteString(Mask)
		}
		at = sp[1]
	}
	b.WriteString(text[at:])
	return b.String()
}

// escapeLen is the length of the escape sequence at the start of s (which
// starts with ESC): CSI (ESC [ ... final byte), OSC and the other string
// sequences (ESC ] ... BEL or ESC \\), or ESC and one character.
func escapeLen(s string) int {
	if len(s) < 2 {
		return len(s)
	}
	switch s[1] {
	case '[':
		for i := 2; i < len(s); i++ {
			if s[i] >= 0x40 && s[i] <= 0x7e {
				return i + 1
			}
		}
		return len(s)
	case ']', 'P', 'X', '^', '_':
		for i := 2; i < len(s); i++ {
			if s[i] == 0x07 {
				return i + 1
			}
			if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '\\' {
				return i + 2
			}
		}
		return len(s)
	}
	return 2
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// SafeCut returns where text may be cut into two pieces masked apart: at or
// before cut, never inside an occurrence of a masked form (a secret that
// straddled the cut would be half in each piece and masked in neither).
func (m *Masker) SafeCut(text string, cut int) int {
	if m == nil || cut <= 0 || cut >= len(text) {
		return cut
	}
	for moved := true; moved && cut > 0; {
		moved = false
		for _, f := range m.forms {
			lo := max(0, cut-len(f)+1)
			hi := min(len(text), cut+len(f)-1)
			if i := strings.Index(text[lo:hi], f); i >= 0 && lo+i < cut {
				cut, moved = lo+i, true
			}
		}
	}
	return cut
}

// Longest is the length of the longest masked form (0 without secrets).
func (m *Masker) Longest() int {
	if m == nil || len(m.forms) == 0 {
		return 0
	}
	return len(m.forms[0])
}
