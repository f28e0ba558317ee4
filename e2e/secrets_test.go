package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// raibidSecret runs `raibid secret ...` against up with stdin.
func raibidSecret(t *testing.T, up *upInstance, stdin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"secret", "--data-dir", up.dataDir}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, _ := cmd.CombinedOutput()
	return string(out), cmd.ProcessState.ExitCode()
}

func TestPipelineSecretsOnlyWhereNamedAndMasked(t *testing.T) {
	up := startUp(t, "--agents", "1")
	const repoValue, orgValue = "repo-secret-e2e-Zq81!x", "org-secret-e2e-Pw73"
	if out, code := raibidSecret(t, up, repoValue+"\n", "set", "acme/sec", "DEPLOY_TOKEN"); code != 0 {
		t.Fatalf("secret set: %d %s", code, out)
	}
	valueFile := filepath.Join(t.TempDir(), "v")
	os.WriteFile(valueFile, []byte(orgValue), 0o600)
	if out, code := raibidSecret(t, up, "", "set", "--org", "acme", "REGISTRY", "--from-file", valueFile); code != 0 {
		t.Fatalf("org secret set: %d %s", code, out)
	}
	out, code := raibidSecret(t, up, "", "list", "acme/sec")
	if code != 0 || !strings.Contains(out, "DEPLOY_TOKEN") || strings.Contains(out, repoValue) {
		t.Fatalf("secret list: %d %s", code, out)
	}
	if out, code := raibidSecret(t, up, "", "set", "acme/sec", "EMPTY"); code != 2 || !strings.Contains(out, "empty value") {
		t.Fatalf("empty value: %d %s", code, out)
	}
	// Nothing in the data dir or Redis's files holds a value in the clear.
	filepath.Walk(up.dataDir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			if strings.Contains(string(b), repoValue) || strings.Contains(string(b), orgValue) {
				t.Errorf("%s holds a secret value in the clear", p)
			}
		}
		return nil
	})

	yml := `steps:
  - name: deploy
    secrets: [DEPLOY_TOKEN, {name: REGISTRY, env: REG_PASS}]
    run: |
      echo "plain $DEPLOY_TOKEN"
      printf '%s' "$DEPLOY_TOKEN" | base64
      printf 'ci:%s' "$DEPLOY_TOKEN" | base64
      printf '%s' "$DEPLOY_TOKEN" | od -An -tx1 | tr -d ' \n'; echo
      printf '%s' "$DEPLOY_TOKEN" | xxd -p 2>/dev/null || true
      echo "reg $REG_PASS"
      echo "len ${#DEPLOY_TOKEN}"
  - name: other
    run: echo "other sees ${DEPLOY_TOKEN:-no-deploy-token} ${REG_PASS:-no-reg-pass}"
`
	dir, sha := testutil.GitRepo(t, map[string]string{".raibid.yml": yml})
	id := push(t, up.url, up.secret, pushPayload("acme/sec", dir, "main", sha))
	j := waitJob(t, up.url, up.token, id, 60*time.Second, nil)
	logs := apiGet(t, up.url, up.token, "/jobs/"+id+"/logs", nil)
	if j.Status != ci.StatusSuccess {
		t.Fatalf("job %s %q:\n%s", j.Status, j.Error, logs)
	}
	for _, leak := range []string{repoValue, orgValue, "cmVwby1zZWNyZXQ", "7265706f2d736563726574"} {
		if strings.Contains(logs, leak) {
			t.Errorf("log shows %q:\n%s", leak, logs)
		}
	}
	for _, want := range []string{"plain ****", "reg ****", "len 22", "other sees no-deploy-token no-reg-pass"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	// A repository of another owner does not get acme's secrets: its job
	// ends in error naming the missing secret.
	id2 := push(t, up.url, up.secret, pushPayload("evil/sec", dir, "main", sha))
	j2 := waitJob(t, up.url, up.token, id2, 60*time.Second, nil)
	if j2.Status != ci.StatusError || !strings.Contains(j2.Error, "DEPLOY_TOKEN") || strings.Contains(j2.Error, repoValue) {
		t.Fatalf("other owner's job: %s %q", j2.Status, j2.Error)
	}
	if out, code := raibidSecret(t, up, "", "rotate-key"); code != 0 || !strings.Contains(out, "re-encrypted") {
		t.Fatalf("rotate-key: %d %s", code, out)
	}
	id3 := push(t, up.url, up.secret, pushPayload("acme/sec", dir, "main", sha))
	if j3 := waitJob(t, up.url, up.token, id3, 60*time.Second, nil); j3.Status != ci.StatusSuccess {
		t.Fatalf("after rotate-key: %s %q", j3.Status, j3.Error)
	}
	if out, code := raibidSecret(t, up, "", "rm", "acme/sec", "DEPLOY_TOKEN"); code != 0 {
		t.Fatalf("rm: %d %s", code, out)
	}
}
