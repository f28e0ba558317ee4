package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// What one repository's build writes never steers the agent nor reaches
// another repository's build, and a fork's pull request writes nothing the
// base repository's builds read and publishes nothing:
//   - repository A plants links at every name the agent touches in the
//     directories A's build writes (the old in-use marker in its target
//     dir, the cargo config the agent copies into its cargo home, a link
//     to a host directory, an artifact that is a link) and a program on
//     cargo's path; its next job, cache stats and a prune run over them;
//   - repository B's build must not see A's program, nor the fork's;
//   - the host paths the links point at are unchanged.
func TestBuildsCannotPoisonTheAgentOrEachOther(t *testing.T) {
	testutil.RequireTool(t, "bwrap")
	host := t.TempDir()
	os.Chmod(host, 0o755)
	hostFile := filepath.Join(host, "nologin")
	os.WriteFile(hostFile, []byte("host"), 0o644)
	crate := testutil.RustCrate(false)
	plant := `set -e
mkdir -p "$CARGO_HOME/bin"
printf '#!/bin/sh\necho poisoned\n' > "$CARGO_HOME/bin/cargo-poison"; chmod +x "$CARGO_HOME/bin/cargo-poison"
rm -rf "$CARGO_TARGET_DIR/.raibid-in-use" "$CARGO_HOME/config.toml" "$CARGO_TARGET_DIR/hostdir" "$HOME/.gitconfig"
ln -s ` + filepath.Join(host, "created-by-marker") + ` "$CARGO_TARGET_DIR/.raibid-in-use"
ln -s ` + hostFile + ` "$CARGO_HOME/config.toml"
ln -s ` + host + ` "$CARGO_TARGET_DIR/hostdir"
ln -s ` + hostFile + ` stolen
printf '[core]\n\tfsmonitor = /bin/false\n' > "$HOME/.gitconfig"
`
	a := map[string]string{".raibid.yml": "steps:\n  - name: plant\n    run: |\n" + indent(plant, 6) +
		"    artifacts: [stolen]\n"}
	for k, v := range crate {
		a[k] = v
	}
	check := `set -e
if [ -e "$CARGO_HOME/bin/cargo-poison" ] || [ -e "$CARGO_HOME/bin/fork-poison" ] || command -v cargo-poison; then echo "POISON VISIBLE"; exit 1; fi
if [ -e "$CARGO_TARGET_DIR/fork-was-here" ] || [ -e "$HOME/fork-was-here" ]; then echo "FORK WRITE VISIBLE"; exit 1; fi
echo clean-cache
`
	b := map[string]string{".raibid.yml": "steps:\n  - name: check\n    run: |\n" + indent(check, 6)}
	for k, v := range crate {
		b[k] = v
	}
	fork := `set -e
mkdir -p "$CARGO_HOME/bin"; touch "$CARGO_HOME/bin/fork-poison" "$CARGO_TARGET_DIR/fork-was-here" "$HOME/fork-was-here" out.bin
`
	f := map[string]string{".raibid.yml": "steps:\n  - name: fork\n    run: |\n" + indent(fork, 6) +
		"    artifacts: [out.bin]\n    publish: gitea\n"}
	for k, v := range crate {
		f[k] = v
	}
	aDir, aSHA := testutil.GitRepo(t, a)
	bDir, bSHA := testutil.GitRepo(t, b)
	forkDir, forkSHA := testutil.GitRepo(t, f)

	up := startUp(t, "--agents", "1")
	wait := func(id string) *ci.Job {
		return waitJob(t, up.url, up.token, id, 120*time.Second, func(j *ci.Job) bool { return j.Status.Final() })
	}
	for range 2 { // the second job runs over what the first planted
		j := wait(push(t, up.url, up.secret, pushPayload("acme/a", aDir, "main", aSHA)))
		if j.Status != ci.StatusSuccess || !strings.Contains(logText(t, up, j.ID), "artifact stolen: nothing matches stolen") {
			t.Fatalf("repository A: %s %q (its artifact is a link: never followed)\n%s", j.Status, j.Error, logText(t, up, j.ID))
		}
	}
	pr := map[string]any{"action": "opened", "number": 7, "pull_request": map[string]any{
		"number": 7, "title": "innocent",
		"head": map[string]any{"ref": "feature", "sha": forkSHA, "repo": map[string]any{"full_name": "eve/b", "clone_url": forkDir}},
		"base": map[string]any{"ref": "main", "sha": bSHA, "repo": map[string]any{"full_name": "acme/b", "clone_url": bDir}},
	}, "repository": map[string]any{"full_name": "acme/b", "clone_url": bDir}}
	body, _ := json.Marshal(pr)
	fj := wait(testutil.SendEvent(t, up.url, up.secret, "pull_request", body))
	flog := logText(t, up, fj.ID)
	if fj.Status != ci.StatusSuccess || !strings.Contains(flog, "publish out.bin skipped: pull request #7 comes from a fork") {
		t.Fatalf("fork pull request: %s %q\n%s", fj.Status, fj.Error, flog)
	}
	bj := wait(push(t, up.url, up.secret, pushPayload("acme/b", bDir, "main", bSHA)))
	if blog := logText(t, up, bj.ID); bj.Status != ci.StatusSuccess || !strings.Contains(blog, "clean-cache") {
		t.Fatalf("repository B saw what A or the fork wrote: %s\n%s", bj.Status, blog)
	}
	out, code := runRaibid(t, "cache", "stats", "--data-dir", up.dataDir)
	if code != 0 {
		t.Fatalf("cache stats: %d %s", code, out)
	}
	if out, code := runRaibid(t, "cache", "prune", "--data-dir", up.dataDir, "--cache-max-age", "1ms"); code != 0 {
		t.Fatalf("cache prune: %d %s", code, out)
	}
	entries, _ := os.ReadDir(host)
	if len(entries) != 1 {
		t.Fatalf("the host directory changed: %v", entries)
	}
	if b, _ := os.ReadFile(hostFile); string(b) != "host" {
		t.Fatalf("the host file holds %q", b)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(hostFile, &st); err != nil || st.Uid != 0 {
		t.Fatalf("the host file now belongs to uid %d (%v)", st.Uid, err)
	}
}

// runRaibid runs the raibid binary with args and returns its output and
// exit code.
func runRaibid(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	out, _ := cmd.CombinedOutput()
	return string(out), cmd.ProcessState.ExitCode()
}

func indent(s string, n int) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+pad) + "\n"
}

func logText(t *testing.T, up *upInstance, id string) string {
	t.Helper()
	out, _ := raibidJob(t, up, "logs", id)
	return out
}
