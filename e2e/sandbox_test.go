package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// hostileSteps is a pipeline that tries every way out of its sandbox that a
// build tried before: the environment of every process it can see, every
// file of raibid's data dir and the agent's home, Redis on its port without a
// password, SIGKILL to every raibid and redis process (and to -1), and
// daemons that try to outlive the step. It ends with "snooped" so the test
// knows it ran to the end.
func hostileSteps(dataDir, redisPort string) string {
	script := `set +e
for f in /proc/[0-9]*/environ; do echo "== $f"; tr '\0' '\n' < "$f"; done 2>/dev/null
echo "== ppid $PPID"; tr '\0' '\n' < /proc/$PPID/environ 2>/dev/null
env
for d in DATA "$HOME" /root /var/run/secrets; do find "$d" -maxdepth 4 -type f 2>/dev/null | head -200 | while read -r f; do echo "== $f"; head -c 4096 "$f"; done; done
if exec 3<>/dev/tcp/127.0.0.1/PORT; then printf 'SET pwned 1\r\nCONFIG GET requirepass\r\n' >&3; timeout 2 head -c 300 <&3; exec 3>&-; fi 2>/dev/null
for p in $(pgrep -f 'raibid|redis-server'); do if [ "$p" != $$ ] && kill -9 "$p"; then echo "killed $p"; fi; done 2>/dev/null
kill -9 -1 2>/dev/null
setsid sleep 7781 </dev/null >/dev/null 2>&1 &
( ( sleep 7782 </dev/null >/dev/null 2>&1 & ) & )
nohup sleep 7783 </dev/null >/dev/null 2>&1 &
sleep 0.2
echo snooped`
	script = strings.ReplaceAll(script, "DATA", dataDir)
	script = strings.ReplaceAll(script, "PORT", redisPort)
	var b strings.Builder
	b.WriteString("steps:\n  - name: snoop\n    run: |\n")
	for _, l := range strings.Split(script, "\n") {
		b.WriteString("      " + l + "\n")
	}
	return b.String()
}

func waitNoProcs(t *testing.T, pattern string, d time.Duration) {
	t.Helper()
	testutil.Eventually(t, d, func() bool { return pgrepCount(pattern) == 0 })
	if n := pgrepCount(pattern); n > 0 {
		t.Fatalf("%d processes matching %q outlived their step", n, pattern)
	}
}

func assertNoSecrets(t *testing.T, logs string, secrets map[string]string) {
	t.Helper()
	for name, v := range secrets {
		if v != "" && strings.Contains(logs, v) {
			t.Errorf("the build read the %s:\n%s", name, logs)
		}
	}
}

var redisPortInBanner = regexp.MustCompile(`Redis\s+redis://[^@\s]*@?127\.0\.0\.1:(\d+)`)

func TestSandboxUnderUp(t *testing.T) {
	t.Setenv("RAIBID_TEST_AGENT_SECRET", "agent-env-secret-e2e-41")
	up := startUp(t)
	m := redisPortInBanner.FindStringSubmatch(up.output())
	if m == nil {
		t.Fatalf("no Redis port in the banner:\n%s", up.output())
	}
	pwBytes, err := os.ReadFile(filepath.Join(up.dataDir, "redis", "password"))
	if err != nil {
		t.Fatal(err)
	}
	redisPW := strings.TrimSpace(string(pwBytes))
	dir, sha := testutil.GitRepo(t, map[string]string{".raibid.yml": hostileSteps(up.dataDir, m[1])})
	id := push(t, up.url, up.secret, pushPayload("evil/snoop", dir, "main", sha))
	j := waitJob(t, up.url, up.token, id, 60*time.Second, nil)
	logs := apiGet(t, up.url, up.token, "/jobs/"+id+"/logs", nil)
	if j.Status != ci.StatusSuccess || !strings.Contains(logs, "snooped") {
		t.Fatalf("hostile job %s %q:\n%s", j.Status, j.Error, logs)
	}
	assertNoSecrets(t, logs, map[string]string{
		"API token": up.token, "webhook secret": up.secret, "Redis password": redisPW,
		"agent's environment": "agent-env-secret-e2e-41",
	})
	if regexp.MustCompile(`(?m)^killed \d+`).MatchString(logs) {
		t.Errorf("the build signalled a process outside its sandbox:\n%s", logs)
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + m[1], Password: redisPW})
	defer rdb.Close()
	if n, err := rdb.Exists(context.Background(), "pwned").Result(); err != nil || n != 0 {
		t.Errorf("the build wrote Redis (exists=%d, err=%v)", n, err)
	}
	// Server, agents and Redis are still up: a second job runs.
	dir2, sha2 := testutil.GitRepo(t, map[string]string{".raibid.yml": "steps:\n  - name: ok\n    run: echo still-here\n"})
	id2 := push(t, up.url, up.secret, pushPayload("acme/after", dir2, "main", sha2))
	if j := waitJob(t, up.url, up.token, id2, 30*time.Second, nil); j.Status != ci.StatusSuccess {
		t.Fatalf("job after the hostile one: %s %q", j.Status, j.Error)
	}
	waitNoProcs(t, "^sleep 778[123]$", 3*time.Second)
}

func TestSandboxUnderStandaloneAgentSurvivesKill9(t *testing.T) {
	r := testutil.StartRedis(t)
	redisPW := "standalone-redis-pw-e2e-77"
	if err := r.Client().ConfigSet(context.Background(), "requirepass", redisPW).Err(); err != nil {
		t.Fatal(err)
	}
	redisURL := fmt.Sprintf("redis://:%s@%s/0", redisPW, r.Addr)
	tokenFile := filepath.Join(t.TempDir(), "gitea-token")
	os.WriteFile(tokenFile, []byte("forge-token-file-e2e-55\n"), 0o600)
	env := []string{"RAIBID_REDIS_URL=" + redisURL, "RAIBID_LEASE=2s", "RAIBID_API_TOKEN=tok-e2e-sbx",
		"RAIBID_WEBHOOK_SECRET=sec-e2e-sbx", "REDIS_PASSWORD=" + redisPW}
	addr := freeAddr(t)
	srv := startProc(t, env, "server", "--addr", addr)
	srv.waitFor("listening", 10*time.Second)
	base := "http://" + addr
	agentEnv := append(env, "RAIBID_GITEA_TOKEN=forge-token-env-e2e-66")
	a1 := startProc(t, agentEnv, "agent", "--name", "sbx", "--allow-local-clone", "--gitea-token-file", tokenFile)
	dir, sha := testutil.GitRepo(t, map[string]string{".raibid.yml": hostileSteps("/nonexistent", strings.Split(r.Addr, ":")[1])})
	id := push(t, base, "sec-e2e-sbx", pushPayload("evil/snoop", dir, "main", sha))
	j := waitJob(t, base, "tok-e2e-sbx", id, 60*time.Second, nil)
	logs := apiGet(t, base, "tok-e2e-sbx", "/jobs/"+id+"/logs", nil)
	if j.Status != ci.StatusSuccess || !strings.Contains(logs, "snooped") {
		t.Fatalf("hostile job %s %q:\n%s", j.Status, j.Error, logs)
	}
	assertNoSecrets(t, logs, map[string]string{"Redis password": redisPW, "forge token (env)": "forge-token-env-e2e-66",
		"forge token (file)": "forge-token-file-e2e-55", "API token": "tok-e2e-sbx", "webhook secret": "sec-e2e-sbx"})
	if n, _ := r.Client().Exists(context.Background(), "pwned").Result(); n != 0 {
		t.Error("the build wrote Redis")
	}
	waitNoProcs(t, "^sleep 778[123]$", 3*time.Second)

	// kill -9 of the agent while a step and its daemons run: nothing the
	// step started survives the agent.
	dir2, sha2 := testutil.GitRepo(t, map[string]string{".raibid.yml": "steps:\n  - name: linger\n    run: |\n" +
		"      setsid sleep 7791 </dev/null >/dev/null 2>&1 &\n      ( ( sleep 7792 </dev/null >/dev/null 2>&1 & ) & )\n" +
		"      echo lingering\n      sleep 7790\n"})
	id2 := push(t, base, "sec-e2e-sbx", pushPayload("evil/linger", dir2, "main", sha2))
	waitJob(t, base, "tok-e2e-sbx", id2, 30*time.Second, func(j *ci.Job) bool {
		return j.Status == ci.StatusRunning && pgrepCount("^sleep 779[012]$") == 3
	})
	a1.signal(syscall.SIGKILL)
	a1.waitExit(5 * time.Second)
	waitNoProcs(t, "^sleep 779[012]$", 3*time.Second)
}
