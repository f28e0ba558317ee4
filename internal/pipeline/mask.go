package pipeline

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
// user:secret), URL-encoded, and hex.
type Masker struct {
	r     *strings.Replacer
	forms []string // every masked form, longest first
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
	return m.r.Replace(text)
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
