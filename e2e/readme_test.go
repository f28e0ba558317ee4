package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tourBlock is the README's tour: the shell block after the "tour" marker.
func tourBlock(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "<!-- tour:")
	if !ok {
		t.Fatal("README has no tour marker")
	}
	_, rest, _ = strings.Cut(rest, "```sh\n")
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("README's tour block is not closed")
	}
	return block
}

// TestReadmeTourAsWritten runs the README's tour as a new user would: `raibid
// up` on the default data dir (what `make run` starts; HOME is a temporary
// directory here) and, in another shell with raibid on PATH, the tour's
// commands exactly as written (only /tmp/hello becomes a temporary path).
func TestReadmeTourAsWritten(t *testing.T) {
	home := t.TempDir()
	addr := "127.0.0.1:8080"
	if c, err := exec.Command("bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080").CombinedOutput(); err == nil {
		t.Fatalf("port 8080 is taken here; the tour uses raibid up's default address (%s)", c)
	}
	env := []string{"HOME=" + home, "XDG_DATA_HOME="}
	up := startProc(t, env, "up")
	up.waitFor("Agents", 30*time.Second)
	if !strings.Contains(up.output(), "http://"+addr) {
		t.Fatalf("raibid up is not on %s:\n%s", addr, up.output())
	}
	hello := filepath.Join(t.TempDir(), "hello")
	script := "set -e\n" + strings.ReplaceAll(tourBlock(t), "/tmp/hello", hello)
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_DATA_HOME=", "PATH="+filepath.Dir(binary)+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the tour failed: %v\n%s", err, out)
	}
	commit, _ := exec.Command("git", "-C", hello, "rev-parse", "HEAD").Output()
	if !strings.Contains(string(out), "hello from "+strings.TrimSpace(string(commit))) || !strings.Contains(string(out), "success") {
		t.Fatalf("the tour's output lacks the build:\n%s", out)
	}
}
