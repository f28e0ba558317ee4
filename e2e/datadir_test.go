package e2e

import (
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

// A --data-dir that already exists with a mode others can enter is made
// the owner's alone: it holds the webhook secret and the API token.
func TestUpMakesAnExistingDataDirPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	p := startProc(t, nil, "up", "--data-dir", dir, "--addr", freeAddr(t), "--agents", "0")
	p.waitFor("Agents", 20*time.Second)
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if mode := st.Mode().Perm(); mode != 0o700 {
		t.Fatalf("data dir mode %o, want 700", mode)
	}
}

// `raibid backup` takes a running raibid up's data dir; `raibid restore`
// puts it into another, refusing while raibid runs there or over a data
// dir it would replace; the restored raibid has the jobs, logs and tokens.
func TestBackupAndRestoreASingleBox(t *testing.T) {
	testutil.RequireTool(t, "redis-server")
	up := startUp(t, "--agents", "1")
	dir, sha := testutil.GitRepo(t, map[string]string{".raibid.yml": "steps:\n  - {name: hi, run: 'echo backed-up-line'}\n"})
	id := push(t, up.url, up.secret, pushPayload("acme/keep", dir, "main", sha))
	waitJob(t, up.url, up.token, id, time.Minute, func(j *ci.Job) bool { return j.Status == ci.StatusSuccess })
	raibid := func(args ...string) (string, int) {
		cmd := exec.Command(binary, args...)
		out, _ := cmd.CombinedOutput()
		return string(out), cmd.ProcessState.ExitCode()
	}
	file := filepath.Join(t.TempDir(), "b.tgz")
	if out, code := raibid("backup", "--data-dir", up.dataDir, file); code != 0 || !strings.Contains(out, "keep it safe") {
		t.Fatalf("backup: exit %d\n%s", code, out)
	}
	if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("backup file %v %v, want mode 0600", st, err)
	}
	if out, code := raibid("restore", "--data-dir", up.dataDir, file); code != 2 || !strings.Contains(out, "stop it first") {
		t.Fatalf("restore over a running raibid: exit %d\n%s", code, out)
	}
	up.signal(syscall.SIGTERM)
	if code := up.waitExit(15 * time.Second); code != 0 {
		t.Fatalf("raibid up exit %d", code)
	}
	if out, code := raibid("restore", "--data-dir", up.dataDir, file); code != 2 || !strings.Contains(out, "--force") {
		t.Fatalf("restore over a data dir: exit %d\n%s", code, out)
	}
	fresh := filepath.Join(t.TempDir(), "restored")
	if out, code := raibid("restore", "--data-dir", fresh, file); code != 0 {
		t.Fatalf("restore: exit %d\n%s", code, out)
	}
	addr := freeAddr(t)
	p := startProc(t, nil, "up", "--data-dir", fresh, "--addr", addr, "--agents", "0")
	p.waitFor("Agents", 20*time.Second)
	j := getJob(t, "http://"+addr, up.token, id) // the same API token
	if j.Status != ci.StatusSuccess || j.Repo != "acme/keep" {
		t.Fatalf("restored job %+v", j)
	}
	if logs := apiGet(t, "http://"+addr, up.token, "/jobs/"+id+"/logs", nil); !strings.Contains(logs, "backed-up-line") {
		t.Fatalf("restored log:\n%s", logs)
	}
}
