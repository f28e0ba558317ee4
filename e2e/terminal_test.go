package e2e

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

var sgr = regexp.MustCompile("\x1b\\[[0-9;:]*m")

// controls lists the control characters left in out once its colours are
// taken away: none may be, but newline and tab.
func controls(out string) []string {
	var found []string
	for _, r := range sgr.ReplaceAllString(out, "") {
		if (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x202e {
			found = append(found, jsonQuote(string(r)))
		}
	}
	return found
}

func jsonQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

// Untrusted text — a webhook's commit message and author, a step's output
// with a window title, a hyperlink and a screen clear — reaches the
// operator's terminal as data: `job show`, `job list` and `job logs` (plain
// and followed) print no control sequence beyond colours; --raw gives the
// bytes to whoever asks for them.
func TestUntrustedTextNeverDrivesTheTerminal(t *testing.T) {
	up := startUp(t, "--agents", "1")
	step := `printf '\033]0;pwned-title\007\033]8;;https://evil.example/\033\\link\033]8;;\033\\ \033[2J\033[H\033[31mred\033[0m\rover\n'`
	dir, sha := testutil.GitRepo(t, map[string]string{".raibid.yml": "steps:\n  - name: hostile\n    run: \"" + strings.ReplaceAll(step, `\`, `\\`) + "\"\n"})
	var body map[string]any
	json.Unmarshal(pushPayload("acme/escapes", dir, "main", sha), &body)
	evil := "fix\x1b]0;owned\x07\x1b[2J\r\x1b[1A\u202eexe.txt"
	author := map[string]string{"name": "Eve\x1b[8m", "username": "eve"}
	body["head_commit"] = map[string]any{"id": sha, "message": evil, "author": author}
	body["commits"] = []any{body["head_commit"]}
	raw, _ := json.Marshal(body)
	id := push(t, up.url, up.secret, raw)
	j := waitJob(t, up.url, up.token, id, 60*time.Second, func(j *ci.Job) bool { return j.Status.Final() })
	if j.Status != ci.StatusSuccess {
		t.Fatalf("job %s: %s", j.Status, j.Error)
	}
	for _, args := range [][]string{{"show", id}, {"list"}, {"logs", id}, {"logs", "-f", id}} {
		out, code := raibidJob(t, up, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, out)
		}
		if c := controls(out); len(c) > 0 {
			t.Errorf("%v printed control characters %v:\n%q", args, c, out)
		}
	}
	out, _ := raibidJob(t, up, "show", id)
	if !strings.Contains(out, `fix\x1b]0;owned\x07`) {
		t.Errorf("show hides the message instead of showing its escapes:\n%s", out)
	}
	out, _ = raibidJob(t, up, "logs", id)
	if !strings.Contains(out, "\x1b[31mred\x1b[0m") || !strings.Contains(out, "link") {
		t.Errorf("logs lost the step's colours or text:\n%q", out)
	}
	out, _ = raibidJob(t, up, "logs", "--raw", id)
	if !strings.Contains(out, "\x1b]0;pwned-title\x07") {
		t.Errorf("--raw did not give the bytes:\n%q", out)
	}
	out, _ = raibidJob(t, up, "show", "-o", "json", id)
	// JSON escapes C0 controls (its own rule; U+202E is left as it is).
	if strings.ContainsAny(out, "\x1b\x07\r") || !strings.Contains(out, `\u001b]0;owned`) {
		t.Errorf("JSON does not escape as JSON does:\n%s", out)
	}
}
