package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/agent"
	"github.com/raibid-labs/raibid-ci/internal/artifacts"
	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/client"
	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
	"github.com/raibid-labs/raibid-ci/internal/server"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
	"github.com/raibid-labs/raibid-ci/internal/testutil/fakeforge"
)

// runJob runs one queued job with an agent that uploads to e.
func (e *env) runJob(t *testing.T, mod func(*agent.Options)) {
	t.Helper()
	o := agent.Options{Name: "a1", Jobs: e.jobs, Store: e.store, WorkDir: t.TempDir(), ServerURL: e.url,
		Repos: agent.Repos{AllowLocal: true}, Once: true, Wait: 5 * time.Second, ClaimBlock: 200 * time.Millisecond}
	if mod != nil {
		mod(&o)
	}
	if err := agent.New(o).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Artifacts: a step's files reach the server (one file as it is, several as
// a tar.gz), are listed on the job and download with the sha256 the server
// recorded; publish: gitea puts them into the (fake) Gitea's generic
// packages under the tag; a symlink is never followed; past the job's cap
// the step fails with a clear error.
func TestArtifactsRoundTripAndPublish(t *testing.T) {
	testutil.RequireTool(t, "git")
	store := &artifacts.Store{Dir: t.TempDir(), MaxJobBytes: 1 << 20}
	e := startWith(t, func(o *server.Options) { o.Features = append(o.Features, server.Artifacts(store)) })
	yml := `steps:
  - name: build
    run: mkdir -p out reports/a reports/b && head -c 5000 /dev/urandom > out/app.bin && echo '<x/>' > reports/a/t.xml && echo '<y/>' > reports/b/u.xml && ln -sf /etc/passwd out/leak.txt
    artifacts:
      - out/app.bin
      - {name: reports, path: "reports/**/*.xml"}
      - {name: leak, path: out/leak.txt}
    publish: gitea
`
	dir, sha := testutil.GitRepo(t, map[string]string{".raibid.yml": yml})
	id, _, err := e.jobs.Submit(context.Background(), &ci.Job{Repo: "acme/widget", CloneURL: dir, Branch: "", Tag: "v1.2.0", Commit: sha, Event: ci.EventTag}, "")
	if err != nil {
		t.Fatal(err)
	}
	fake := fakeforge.NewGitea(t, "tok")
	e.runJob(t, func(o *agent.Options) { o.Packages = gitea.NewClient(fake.URL, "tok", nil) })
	j := e.job(id)
	logs := e.logText(id)
	if j.Status != ci.StatusSuccess || len(j.Artifacts) != 2 {
		t.Fatalf("%s %q, artifacts %+v\n%s", j.Status, j.Error, j.Artifacts, logs)
	}
	if !strings.Contains(logs, "artifact leak: nothing matches out/leak.txt") {
		t.Fatalf("the symlink was followed:\n%s", logs)
	}
	c := client.New(e.url, token)
	out := t.TempDir()
	for _, a := range j.Artifacts {
		var buf bytes.Buffer
		sum, err := c.DownloadArtifact(context.Background(), id, a.Name, &buf)
		if err != nil || sum != a.SHA256 || int64(buf.Len()) != a.Size {
			t.Fatalf("%s: %v, sum %s, %d bytes", a.Name, err, sum, buf.Len())
		}
		os.WriteFile(filepath.Join(out, a.Name), buf.Bytes(), 0o644)
	}
	if names := j.Artifacts[0].Name + " " + j.Artifacts[1].Name; names != "app.bin reports.tar.gz" {
		t.Fatalf("artifact names %s", names)
	}
	if tarList, err := exec.Command("tar", "-tzf", filepath.Join(out, "reports.tar.gz")).Output(); err != nil || strings.TrimSpace(string(tarList)) != "reports/a/t.xml\nreports/b/u.xml" {
		t.Fatalf("tar holds %q, %v", tarList, err)
	}
	pkgs := fake.Packages()
	bin, _ := os.ReadFile(filepath.Join(out, "app.bin"))
	if s := sha256.Sum256(pkgs["acme/widget/v1.2.0/app.bin"]); hex.EncodeToString(s[:]) != j.Artifacts[0].SHA256 || len(bin) != 5000 {
		t.Fatalf("gitea packages %v", keys(pkgs))
	}
	if _, ok := pkgs["acme/widget/v1.2.0/reports.tar.gz"]; !ok {
		t.Fatalf("gitea packages %v", keys(pkgs))
	}
	// Nobody else uploads: not the API token, not after the job ended.
	resp, _ := e.do("PUT", "/jobs/"+id+"/artifacts/x.bin", "data", token)
	if resp.StatusCode != 401 {
		t.Fatalf("upload with the API token: %d", resp.StatusCode)
	}

	// Past the cap: the step fails, saying so.
	big, bigSHA := testutil.GitRepo(t, map[string]string{".raibid.yml": "steps:\n  - name: build\n    run: head -c 2000000 /dev/zero > big.bin\n    artifacts: [big.bin]\n"})
	id2, _, _ := e.jobs.Submit(context.Background(), &ci.Job{Repo: "acme/big", CloneURL: big, Branch: "main", Commit: bigSHA}, "")
	e.runJob(t, nil)
	if j := e.job(id2); j.Status != ci.StatusFailed || !strings.Contains(j.Error, "artifacts may total 1048576 bytes") {
		t.Fatalf("past the cap: %s %q", j.Status, j.Error)
	}
}

// logText is a job's whole log.
func (e *env) logText(id string) string {
	lines, _ := e.store.ReadLogs(context.Background(), id, "", 100000, 0)
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.Step + ": " + l.Text + "\n")
	}
	return b.String()
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
