// Package e2e drives the real raibid binary as a user would: it builds it once,
// starts `raibid up`, `raibid server` and `raibid agent` processes on random
// loopback ports, pushes signed webhooks and reads the API.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/api"
	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

var binary string

func TestMain(m *testing.M) {
	// go test -short is the unit tests' lane: the end-to-end tests, which
	// build raibid and run it whole, are make test's.
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: not run with -short (make test runs them)")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "raibid-e2e")
	if err != nil {
		panic(err)
	}
	if binary, err = testutil.BuildRaibid(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running raibid process with its output captured.
type proc struct {
	t      testing.TB
	cmd    *exec.Cmd
	out    testutil.SyncBuffer
	exited chan struct{}
}

func startProc(t testing.TB, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, exited: make(chan struct{})}
	p.cmd = exec.Command(binary, args...)
	p.cmd.Env = append(os.Environ(), env...)
	pr, pw := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.out.Write([]byte(sc.Text() + "\n"))
		}
	}()
	go func() { p.cmd.Wait(); pw.Close(); close(p.exited) }()
	t.Cleanup(func() {
		// SIGTERM first: raibid stops its steps' process groups and hands
		// jobs back, so nothing is still writing into the test's temporary
		// directories when they are removed (SIGKILL left step children
		// behind and made TempDir's cleanup fail now and then).
		p.signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			p.signal(syscall.SIGKILL)
			<-p.exited
		}
		if t.Failed() {
			t.Logf("output of raibid %s:\n%s", strings.Join(args, " "), p.output())
		}
	})
	return p
}

func (p *proc) output() string { return p.out.String() }

func (p *proc) signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

// waitFor waits until the output matches, returning the line.
func (p *proc) waitFor(substr string, timeout time.Duration) string {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(p.output(), "\n") {
			if strings.Contains(line, substr) {
				return line
			}
		}
		select {
		case <-p.exited:
			p.t.Fatalf("raibid exited while waiting for %q:\n%s", substr, p.output())
		case <-time.After(20 * time.Millisecond):
		}
	}
	p.t.Fatalf("no %q within %s:\n%s", substr, timeout, p.output())
	return ""
}

func (p *proc) waitExit(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		p.t.Fatalf("raibid did not exit within %s", timeout)
		return -1
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// upInstance is a `raibid up` under test.
type upInstance struct {
	*proc
	url, secret, token, dataDir string
}

func startUp(t testing.TB, args ...string) *upInstance {
	t.Helper()
	return startUpEnv(t, nil, args...)
}

// startUpEnv is startUp with env added to raibid's environment.
func startUpEnv(t testing.TB, env []string, args ...string) *upInstance {
	t.Helper()
	dataDir := t.TempDir()
	addr := freeAddr(t)
	all := append([]string{"up", "--data-dir", dataDir, "--addr", addr}, args...)
	p := startProc(t, env, all...)
	p.waitFor("Agents", 20*time.Second)
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dataDir, name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	return &upInstance{proc: p, url: "http://" + addr, secret: read("webhook-secret"), token: read("api-token"), dataDir: dataDir}
}

// pushPayload and push: a Gitea push's body, and sending it signed.
var (
	pushPayload = testutil.GiteaPushBody
	push        = testutil.SendPush
)

func getJob(t testing.TB, base, token, id string) *ci.Job {
	t.Helper()
	var j ci.Job
	apiGet(t, base, token, "/jobs/"+id, &j)
	return &j
}

func apiGet(t testing.TB, base, token, path string, v any) string {
	t.Helper()
	body, err := fetchJSON(base, token, path, v)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// fetchJSON GETs path with the token and decodes the answer into v (when
// not nil); an error for no answer, a status other than 200 or bad JSON.
func fetchJSON(base, token, path string, v any) (string, error) {
	req, _ := http.NewRequest("GET", base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			return string(b), fmt.Errorf("GET %s: %v", path, err)
		}
	}
	return string(b), nil
}

// idleAgents is how many agents GET /agents lists as idle (waiting for
// work); 0 while the server does not answer yet.
func idleAgents(base, token string) int {
	var list api.AgentList
	if _, err := fetchJSON(base, token, "/agents", &list); err != nil {
		return 0
	}
	idle := 0
	for _, a := range list.Agents {
		if a.Status == "idle" {
			idle++
		}
	}
	return idle
}

func apiPost(t testing.TB, base, token, path string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitJob polls until the job is final (or until cond holds).
func waitJob(t testing.TB, base, token, id string, timeout time.Duration, cond func(*ci.Job) bool) *ci.Job {
	t.Helper()
	if cond == nil {
		cond = func(j *ci.Job) bool { return j.Status.Final() }
	}
	var j *ci.Job
	// A fixed, gentle poll: the benchmarks time jobs on this machine, and
	// a poll every few milliseconds would take the cores from them.
	if !testutil.EventuallyEvery(t, timeout, 50*time.Millisecond, func() bool { j = getJob(t, base, token, id); return cond(j) }) {
		t.Fatalf("job %s still %s after %s", id, j.Status, timeout)
	}
	return j
}

var _ = context.Background

// gate lets a test hold a step until it says go. Steps are sandboxed (they
// see no file of the test's), but they share the network: the step waits
// until a loopback port accepts a connection, and open starts listening.
type gate struct {
	t    testing.TB
	addr string
	// wait is the shell command a step runs to wait for the gate.
	wait string
}

func newGate(t testing.TB) *gate {
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	return &gate{t: t, addr: addr,
		wait: "until (exec 3<>/dev/tcp/127.0.0.1/" + port + ") 2>/dev/null; do sleep 0.1; done"}
}

func (g *gate) open() {
	l, err := net.Listen("tcp", g.addr)
	if err != nil {
		g.t.Fatalf("open gate: %v", err)
	}
	g.t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}
