package pipeline

import (
	"encoding/base64"
	"sort"
	"strings"
)

// Mask is what a secret turns into in logs.
const Mask = "****"

// Masker hides secrets in log text, in their plain and base64 forms (a token
// often appears base64-encoded in a Basic auth header or a docker config).
type Masker struct{ r *strings.Replacer }

// NewMasker masks each secret of at least 4 bytes; shorter ones would mask
// ordinary words.
func NewMasker(secrets ...string) *Masker {
	var forms []string
	for _, s := range secrets {
		if len(s) < 4 {
			continue
		}
		forms = append(forms, s,
			base64.StdEncoding.EncodeToString([]byte(s)),
			base64.RawStdEncoding.EncodeToString([]byte(s)),
			base64.URLEncoding.EncodeToString([]byte(s)),
			base64.RawURLEncoding.EncodeToString([]byte(s)))
	}
	// Longest first, so a secret containing another is masked whole.
	sort.Slice(forms, func(i, j int) bool { return len(forms[i]) > len(forms[j]) })
	var pairs []string
	seen := map[string]bool{}
	for _, f := range forms {
		if !seen[f] {
			seen[f] = true
			pairs = append(pairs, f, Mask)
		}
	}
	return &Masker{r: strings.NewReplacer(pairs...)}
}

// Apply masks text.
func (m *Masker) Apply(text string) string {
	if m == nil || m.r == nil {
		return text
	}
	return m.r.Replace(text)
}
