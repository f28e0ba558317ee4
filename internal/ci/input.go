package ci

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
)

var axisPattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,31}$`)

// ValidAxis reports whether name may name a matrix axis: a letter, then up
// to 31 letters, digits or _ (it becomes RAIBID_MATRIX_<NAME>).
func ValidAxis(name string) bool { return axisPattern.MatchString(name) }

// CheckMatrix refuses a combination a job cannot carry: more than 16 axes,
// axis names other than a letter then letters, digits or _, values longer
// than 128 bytes or holding control characters (they reach terminals and
// status contexts). Pipelines are checked with it when parsed, jobs when
// queued.
func CheckMatrix(m map[string]string) error {
	if len(m) > 16 {
		return fmt.Errorf("matrix of %d axes, at most 16: %w", len(m), ErrInvalid)
	}
	for k, v := range m {
		if !ValidAxis(k) || len(v) > 128 || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return fmt.Errorf("matrix %s=%q: axis names are letters, digits and _, values short printable text: %w", Truncate(k, 40), Truncate(v, 40), ErrInvalid)
		}
	}
	return nil
}

// ValidCommit reports whether s is a full git object id: 40 (SHA-1) or 64
// (SHA-256) lower-case hex digits. Nothing else may be handed to git as a
// commit, so an id can never be read as an option or a revision expression.
func ValidCommit(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// CheckBranch refuses branch names that git's check-ref-format refuses, and
// any that begin with '-' (which a tool could read as an option).
func CheckBranch(b string) error { return checkRefName("branch", b) }

// CheckTag refuses tag names as CheckBranch refuses branch names.
func CheckTag(t string) error { return checkRefName("tag", t) }

func checkRefName(kind, b string) error {
	bad := func(why string) error {
		return fmt.Errorf("%s %q %s: %w", kind, Truncate(b, 80), why, ErrInvalid)
	}
	switch {
	case b == "":
		return bad("is empty")
	case len(b) > 255:
		return bad("is longer than 255 bytes")
	case strings.HasPrefix(b, "-"):
		return bad("begins with '-'")
	case strings.HasPrefix(b, "/") || strings.HasSuffix(b, "/") || strings.Contains(b, "//"):
		return bad("has an empty path component")
	case strings.Contains(b, "..") || strings.Contains(b, "@{") || b == "@":
		return bad("contains '..', '@{' or is '@'")
	case strings.HasSuffix(b, ".lock") || strings.HasSuffix(b, "."):
		return bad("ends with '.lock' or '.'")
	}
	for _, part := range strings.Split(b, "/") {
		if strings.HasPrefix(part, ".") {
			return bad("has a component that begins with '.'")
		}
	}
	for _, c := range b {
		if c < 0x20 || c == 0x7f || strings.ContainsRune(" ~^:?*[\\", c) {
			return bad("contains a character git does not allow in a ref")
		}
	}
	return nil
}

// LocalClonePath returns the directory a local clone URL (an absolute path or
// file://path) names, and ok=false when cloneURL is not a local one.
func LocalClonePath(cloneURL string) (path string, ok bool) {
	switch {
	case strings.HasPrefix(cloneURL, "file://"):
		return strings.TrimPrefix(cloneURL, "file://"), true
	case strings.HasPrefix(cloneURL, "/"):
		return cloneURL, true
	}
	return "", false
}

// CheckCloneURL refuses clone URLs that are not plain http(s) URLs or clean
// absolute paths: anything that begins with '-' once its scheme is removed
// (git would read it as an option), other transports (ext::, ssh, fd::),
// and control characters. Whether a local path or a host is allowed is the
// agent's decision; this is only the shape.
func CheckCloneURL(cloneURL string) error {
	bad := func(why string) error {
		return fmt.Errorf("clone_url %s: %w", why, ErrInvalid)
	}
	if cloneURL == "" {
		return bad("is empty")
	}
	for _, c := range cloneURL {
		if c < 0x20 || c == 0x7f {
			return bad("contains a control character")
		}
	}
	if p, ok := LocalClonePath(cloneURL); ok {
		if strings.HasPrefix(p, "-") || !filepath.IsAbs(p) || filepath.Clean(p) != strings.TrimRight(p, "/") && filepath.Clean(p) != p {
			return bad("must be a clean absolute path")
		}
		return nil
	}
	u, err := url.Parse(cloneURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.HasPrefix(u.Host, "-") {
		return bad("must be an http(s) URL or an absolute path")
	}
	return nil
}

// RedactURL drops credentials (user:password@) from a URL before it is
// stored in an API answer, logged or shown. A string that does not parse as
// a URL is returned unchanged when it holds no '@', else replaced.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if strings.Contains(raw, "@") {
			return "(invalid URL)"
		}
		return raw
	}
	if u.User == nil {
		return raw
	}
	u.User = nil
	return u.String()
}

// Truncate shortens s to n bytes and an ellipsis, for messages that quote input.
func Truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// FirstLine is the first line of s, or fallback when s is empty: the one line
// a tool's error output is reduced to.
func FirstLine(s, fallback string) string {
	if s == "" {
		return fallback
	}
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// Plural is "1 step", "2 steps": n and the noun, an s when n is not 1.
func Plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// CheckRepo refuses a repository name that is not owner/name as Gitea and
// GitHub spell them: two parts of letters, digits, '.', '-' and '_', each
// beginning with a letter, digit or '_' (never '-', which a tool could read
// as an option, nor '.', so never '..'), at most 100 bytes each. It is the
// one check of every way a repository name comes in: webhooks, the API,
// schedules, secrets, the CLI.
func CheckRepo(repo string) error {
	owner, name, ok := strings.Cut(repo, "/")
	if !ok || !repoPart(owner) || !repoPart(name) {
		return fmt.Errorf("repository %q is not owner/name (letters, digits, '.', '-', '_'; neither part beginning with '-' or '.'): %w",
			Truncate(repo, 80), ErrInvalid)
	}
	return nil
}

func repoPart(s string) bool {
	if s == "" || len(s) > 100 || s[0] == '-' || s[0] == '.' {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// CheckOwner refuses an owner (user or organisation) name as CheckRepo
// refuses either part of a repository's.
func CheckOwner(owner string) error {
	if !repoPart(owner) {
		return fmt.Errorf("owner %q is not a user or organisation name: %w", Truncate(owner, 80), ErrInvalid)
	}
	return nil
}
