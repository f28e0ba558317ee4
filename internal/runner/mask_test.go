package runner_test

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/pipeline"
	"github.com/raibid-labs/raibid-ci/internal/runner"
)

const secret = "pa$$w0rd/with+odd=chars&more"

// TestMaskerEveryEncoding: a secret is masked however a build prints it.
func TestMaskerEveryEncoding(t *testing.T) {
	m := runner.NewMasker(secret)
	b := []byte(secret)
	cases := map[string]string{
		"plain":              "token " + secret + " end",
		"base64":             base64.StdEncoding.EncodeToString(b),
		"base64 raw url":     base64.RawURLEncoding.EncodeToString(b),
		"basic auth":         "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("deploy:"+secret)),
		"basic auth 2":       base64.StdEncoding.EncodeToString([]byte("ab:" + secret)),
		"basic auth 3":       base64.StdEncoding.EncodeToString([]byte("a:" + secret + ":tail")),
		"query escaped":      "https://x/?t=" + url.QueryEscape(secret),
		"path escaped":       "https://x/" + url.PathEscape(secret) + "/y",
		"hex":                hex.EncodeToString(b),
		"HEX":                strings.ToUpper(hex.EncodeToString(b)),
		"twice on one line":  secret + "," + secret,
		"inside other words": "x" + secret + "y",
	}
	for name, in := range cases {
		got := m.Apply(in)
		leaks := []string{secret, base64.RawStdEncoding.EncodeToString(b)[:12], url.QueryEscape(secret), hex.EncodeToString(b)[:16]}
		for _, l := range leaks {
			if strings.Contains(got, l) {
				t.Errorf("%s: %q masked to %q still shows %q", name, in, got, l)
			}
		}
		if !strings.Contains(got, runner.Mask) {
			t.Errorf("%s: nothing masked in %q", name, got)
		}
	}
	if got := runner.NewMasker("ab").Apply("ab cab"); got != "ab cab" {
		t.Errorf("a 2-byte secret masked ordinary text: %q", got)
	}
}

// Percent-encoding as other tools write it (Python's quote keeps '/',
// lowercase hex, every byte encoded) and a value split by escape sequences
// are masked, and only the secret's own bytes go.
func TestMaskerPercentAndEscapeForms(t *testing.T) {
	const s = "s3cr3t-Value/+=&x"
	m := runner.NewMasker(s)
	all := func(lower bool) string {
		var b strings.Builder
		for _, c := range []byte(s) {
			f := fmt.Sprintf("%%%02X", c)
			if lower {
				f = strings.ToLower(f)
			}
			b.WriteString(f)
		}
		return b.String()
	}
	cases := map[string]struct{ in, want string }{
		"python quote":       {"u=s3cr3t-Value/%2B%3D%26x;", "u=****;"},
		"lowercase hex":      {"u=s3cr3t-Value%2f%2b%3d%26x;", "u=****;"},
		"every byte":         {"[" + all(false) + "]", "[****]"},
		"every byte, lower":  {"[" + all(true) + "]", "[****]"},
		"SGR inside":         {"a s3cr3t-\x1b[0mValue/+=&x b", "a **** b"},
		"OSC inside":         {"s3cr3t-Val\x1b]0;title\x07ue/+=&x", "****"},
		"escape and percent": {"\x1b[1ms3cr3t\x1b[0m-Value%2F%2B%3d%26x\x1b[0m!", "\x1b[1m****\x1b[0m!"},
		"twice":              {"s3cr3t-Value/%2B%3D%26x s3cr3t-\x1b[31mValue/+=&x", "**** ****"},
		"no secret":          {"100% done \x1b[32mok\x1b[0m %zz", "100% done \x1b[32mok\x1b[0m %zz"},
	}
	for name, c := range cases {
		if got := m.Apply(c.in); got != c.want {
			t.Errorf("%s: %q masked to %q, want %q", name, c.in, got, c.want)
		}
	}
}

// TestSecretStraddlingTheLongLineCutIsMasked: a line longer than the
// reader's buffer is stored in pieces; a secret across the cut is masked.
func TestSecretStraddlingTheLongLineCutIsMasked(t *testing.T) {
	for _, shift := range []int{1, 5, len(secret) / 2, len(secret) - 1} {
		// 64 KiB is the cut: place the secret so it spans it.
		pad := 64<<10 - shift
		script := fmt.Sprintf(`head -c %d /dev/zero | tr '\0' x; printf '%%s\n' '%s'`, pad, secret)
		res, out := run(t, t.Context(), steps(pipeline.Step{Name: "long", Run: script}), secret)
		if res.Status != "success" {
			t.Fatalf("shift %d: %s %s", shift, res.Status, res.Error)
		}
		text := out.text()
		var stdout []string
		for _, l := range strings.Split(text, "\n") {
			if p, ok := strings.CutPrefix(l, "long|stdout|"); ok {
				stdout = append(stdout, p)
			}
		}
		joined := strings.Join(stdout, "")
		if strings.Contains(joined, secret) || strings.Contains(joined, secret[:len(secret)/2]+"\n") {
			t.Fatalf("shift %d: the secret straddling the cut leaked", shift)
		}
		if !strings.Contains(text, runner.Mask) {
			t.Fatalf("shift %d: secret not masked", shift)
		}
		if n := strings.Count(joined, "x"); n != pad {
			t.Fatalf("shift %d: %d of %d bytes of the long line kept", shift, n, pad)
		}
	}
}

// BenchmarkMaskThroughput masks 100-byte log lines with 20 secrets and
// prints MB/s.
func BenchmarkMaskThroughput(b *testing.B) {
	benchMask(b, strings.Repeat("compiling crate foo v1.2.3 (/work/src) ", 3)[:100])
}

// benchMask masks line with 20 secrets of 36 bytes, over and over, and
// reports MB/s.
func benchMask(b *testing.B, line string) {
	var secrets []string
	for i := range 20 {
		secrets = append(secrets, fmt.Sprintf("secret-value-%02d-%s", i, strings.Repeat("k", 20)))
	}
	m := runner.NewMasker(secrets...)
	b.SetBytes(int64(len(line)))
	start := time.Now()
	for b.Loop() {
		_ = m.Apply(line)
	}
	mbps := float64(b.N*len(line)) / time.Since(start).Seconds() / 1e6
	b.ReportMetric(mbps, "MB/s")
}

// BenchmarkMaskThroughputColoured masks coloured 100-byte lines (cargo's
// output in a terminal): every line takes the decoded-view path.
func BenchmarkMaskThroughputColoured(b *testing.B) {
	benchMask(b, "\x1b[1m\x1b[32m   Compiling\x1b[0m "+strings.Repeat("crate foo v1.2.3 (/work/src) 50%% ", 3)[:78])
}

func TestMaskerHidesPlainAndBase64(t *testing.T) {
	m := runner.NewMasker("s3cr3t-token", "ab")
	in := "token=s3cr3t-token basic=czNjcjN0LXRva2Vu short=ab"
	got := m.Apply(in)
	if strings.Contains(got, "s3cr3t") || strings.Contains(got, "czNjcjN0LXRva2Vu") || !strings.Contains(got, "short=ab") {
		t.Fatalf("masked %q", got)
	}
}
