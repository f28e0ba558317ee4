package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

type tmux struct {
	t       *testing.T
	session string
}

func (x *tmux) run(args ...string) string {
	x.t.Helper()
	out, err := exec.Command("tmux", args...).CombinedOutput()
	if err != nil {
		x.t.Fatalf("tmux %v: %v %s", args, err, out)
	}
	return string(out)
}

func (x *tmux) screen() string {
	out, _ := exec.Command("tmux", "capture-pane", "-p", "-t", x.session).CombinedOutput()
	return string(out)
}

func (x *tmux) waitScreen(desc string, timeout time.Duration, ok func(string) bool) string {
	x.t.Helper()
	var s string
	if !testutil.Eventually(x.t, timeout, func() bool { s = x.screen(); return ok(s) }) {
		x.t.Fatalf("screen never showed %s:\n%s", desc, x.screen())
	}
	return s
}

func (x *tmux) keys(keys ...string) {
	x.run(append([]string{"send-keys", "-t", x.session}, keys...)...)
}

// The real binary in a real terminal against a real `raibid up`.
func TestTUIInTmux(t *testing.T) {
	testutil.RequireTool(t, "tmux")
	up := startUp(t, "--agents", "1")
	x := &tmux{t: t, session: fmt.Sprintf("raibid-e2e-%d", os.Getpid())}
	cmd := fmt.Sprintf("%s tui --data-dir %s; echo TUI-EXITED-$?; sleep 30", binary, up.dataDir)
	x.run("new-session", "-d", "-s", x.session, "-x", "100", "-y", "30", cmd)
	t.Cleanup(func() { exec.Command("tmux", "kill-session", "-t", x.session).Run() })
	x.waitScreen("the dashboard", 15*time.Second, func(s string) bool { return strings.Contains(s, "● live") })

	dir, sha := testutil.GitRepo(t, map[string]string{".raibid.yml": "steps:\n  - name: count\n    run: for i in $(seq 1 300); do echo tick-$i; sleep 0.1; done\n"})
	id := push(t, up.url, up.secret, pushPayload("acme/ticker", dir, "main", sha))
	x.waitScreen("the pushed job", 10*time.Second, func(s string) bool {
		return strings.Contains(s, "acme/ticker") && strings.Contains(s, id[len(id)-8:]) && strings.Contains(s, "running")
	})

	x.keys("Enter")
	tick := regexp.MustCompile(`tick-(\d+)`)
	last := func(s string) int {
		m := tick.FindAllStringSubmatch(s, -1)
		if len(m) == 0 {
			return 0
		}
		n, _ := strconv.Atoi(m[len(m)-1][1])
		return n
	}
	first := last(x.waitScreen("the job's log", 10*time.Second, func(s string) bool { return last(s) > 0 }))
	x.waitScreen("the log following", 10*time.Second, func(s string) bool { return last(s) > first+5 })

	// Scrolling up pauses the view: new ticks arrive but the screen stays;
	// G follows again. (Once the log is taller than the screen.)
	x.waitScreen("a log taller than the screen", 15*time.Second, func(s string) bool { return last(s) > 45 })
	x.keys("PageUp")
	paused := last(x.waitScreen("the paused log", 5*time.Second, func(s string) bool { return strings.Contains(s, "log · paused") }))
	if !testutil.Consistently(t, 1500*time.Millisecond, func() bool { return last(x.screen()) == paused }) {
		t.Fatalf("the paused log moved from tick-%d to tick-%d", paused, last(x.screen()))
	}
	x.keys("G")
	x.waitScreen("following again", 5*time.Second, func(s string) bool { return strings.Contains(s, "log · following") && last(s) > paused+5 })

	x.keys("c")
	x.waitScreen("the cancel question", 5*time.Second, func(s string) bool { return strings.Contains(s, "? y/n") })
	x.keys("y")
	j := waitJob(t, up.url, up.token, id, 10*time.Second, nil)
	if j.Status != ci.StatusCancelled {
		t.Fatalf("job %s after c, y", j.Status)
	}
	x.waitScreen("the cancelled status", 10*time.Second, func(s string) bool { return strings.Contains(s, "cancelled") })

	x.waitScreen("the cancelled step", 10*time.Second, func(s string) bool { return strings.Contains(s, "count        cancelled") })
	x.keys("Escape")
	time.Sleep(300 * time.Millisecond) // ESC followed at once by q reads as Alt+q
	x.keys("q")
	s := x.waitScreen("the shell after exit", 10*time.Second, func(s string) bool { return strings.Contains(s, "TUI-EXITED-0") })
	// The alternate screen is gone: nothing of the dashboard is left.
	if strings.Contains(s, "● live") || strings.Contains(s, "AGENTS") {
		t.Fatalf("terminal not restored:\n%s", s)
	}
}
