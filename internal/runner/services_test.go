package runner_test

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/pipeline"
	"github.com/raibid-labs/raibid-ci/internal/runner"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// A service is up before the first step (a step reads from it), its output
// is its own log section, and it is gone when the job ends.
func TestServiceUpBeforeStepsAndGoneAfter(t *testing.T) {
	port := testutil.FreePort(t)
	yml := fmt.Sprintf(`services:
  - name: redis
    run: redis-server --port %d --save '' --appendonly no
    port: %d
steps:
  - name: ping
    run: exec 3<>/dev/tcp/127.0.0.1/%d; printf 'PING\r\n' >&3; read -r reply <&3; echo "redis says $reply"
`, port, port, port)
	p, err := pipeline.Parse(".raibid.yml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	out := &lines{}
	res := runner.Execute(context.Background(), p, runner.Options{Dir: t.TempDir(), Sink: out})
	if res.Status != ci.StatusSuccess {
		t.Fatalf("%s %q\n%s", res.Status, res.Error, out.byStep())
	}
	log := out.byStep()
	if !strings.Contains(log, "ping: redis says +PONG") || !strings.Contains(log, "service redis: ready: port") || !strings.Contains(log, "service redis: ") {
		t.Fatalf("log:\n%s", log)
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		c.Close()
		t.Fatal("the service still accepts connections after the job")
	}
}

// A service that never listens, or exits, is an error within its timeout;
// no step runs.
func TestServiceThatNeverListensFailsTheJob(t *testing.T) {
	port := testutil.FreePort(t)
	for run, want := range map[string]string{
		"sleep 30": fmt.Sprintf("service db did not accept connections on port %d within 1s", port),
		"exit 3":   fmt.Sprintf("service db exited (code 3) before it accepted connections on port %d", port),
	} {
		p, err := pipeline.Parse(".raibid.yml", []byte(fmt.Sprintf("services:\n  - {name: db, run: %q, port: %d, timeout: 1s}\nsteps:\n  - {name: test, run: echo never}\n", run, port)))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		res := runner.Execute(context.Background(), p, runner.Options{Dir: t.TempDir(), KillGrace: time.Second})
		if res.Status != ci.StatusError || res.Error != want || res.Steps[0].Status != ci.StatusSkipped {
			t.Fatalf("%s: %s %q %+v", run, res.Status, res.Error, res.Steps)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Fatalf("%s: took %s", run, took)
		}
	}
	for yml, want := range map[string]string{
		"services:\n  - {name: db, run: x}\nsteps:\n  - {name: a, run: x}\n":                    ".raibid.yml:2: services[0].port: is missing",
		"services:\n  - {name: db, run: x, port: 70000}\nsteps:\n  - {name: a, run: x}\n":       ".raibid.yml:2: services[0].port: must be a TCP port",
		"services:\n  - {name: db, run: x, port: 1, ports: 2}\nsteps:\n  - {name: a, run: x}\n": ".raibid.yml:2: services[0].ports: unknown field",
	} {
		if _, err := pipeline.Parse(".raibid.yml", []byte(yml)); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q: %v, want %q", yml, err, want)
		}
	}
}

// In a pod that runs the image services as sidecars the job starts none of
// them, only waits for their ports; a service without an image still runs.
func TestSidecarServicesAreWaitedForNotStarted(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	yml := fmt.Sprintf("services:\n  - {name: db, image: \"postgres:17.2\", run: touch started-by-agent, port: %d}\nsteps:\n  - {name: test, run: test ! -e started-by-agent}\n", port)
	p, err := pipeline.Parse(".raibid.yml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	out := &lines{}
	res := runner.Execute(context.Background(), p, runner.Options{Dir: t.TempDir(), Sink: out, Sidecars: true})
	if res.Status != ci.StatusSuccess || !strings.Contains(out.byStep(), "service db: sidecar postgres:17.2") {
		t.Fatalf("%s %q\n%s", res.Status, res.Error, out.byStep())
	}
}

// A service's port another process holds is an error at once, not a
// readiness another job's listener answers for.
func TestServicePortTakenByAnotherProcess(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	p, err := pipeline.Parse(".raibid.yml", []byte(fmt.Sprintf("services:\n  - {name: db, run: 'sleep 30', port: %d}\nsteps:\n  - {name: s, run: 'true'}\n", port)))
	if err != nil {
		t.Fatal(err)
	}
	out := &lines{}
	res := runner.Execute(context.Background(), p, runner.Options{Dir: t.TempDir(), Sink: out})
	if want := fmt.Sprintf("service db: port %d is already in use on this machine (another job's service?): use port: auto", port); res.Status != ci.StatusError || res.Error != want {
		t.Fatalf("%s %q, want error %q\n%s", res.Status, res.Error, want, out.byStep())
	}
}

// The readiness check asks whose listener it is: a process's own, or one
// of its descendants'.
// port: auto gives each job's service a free port, as $PORT to the service
// and RAIBID_SERVICE_<NAME>_PORT to steps; a service that exits while the
// steps run fails the job and no step starts after it.
func TestAutoPortAndAServiceDyingAfterReady(t *testing.T) {
	testutil.RequireTool(t, "python3")
	serve := `python3 -c "import os,socket,time; s=socket.socket(); s.bind(('127.0.0.1', int(os.environ['PORT']))); s.listen(); time.sleep(%s)"`
	for _, c := range []struct {
		life       string
		wantStatus ci.Status
	}{{"30", ci.StatusSuccess}, {"0.5", ci.StatusError}} {
		yml := "services:\n  - name: my db\n    run: " + strconv.Quote(fmt.Sprintf(serve, c.life)) + "\n    port: auto\n" +
			"steps:\n  - {name: use, run: 'echo port=$RAIBID_SERVICE_MY_DB_PORT; sleep 1.5'}\n  - {name: after, run: 'echo after-ran'}\n"
		p, err := pipeline.Parse(".raibid.yml", []byte(yml))
		if err != nil {
			t.Fatal(err)
		}
		out := &lines{}
		res := runner.Execute(context.Background(), p, runner.Options{Dir: t.TempDir(), Sink: out})
		log := out.byStep()
		if res.Status != c.wantStatus {
			t.Fatalf("service living %ss: %s %q\n%s", c.life, res.Status, res.Error, log)
		}
		m := regexp.MustCompile(`ready: port (\d+) accepts`).FindStringSubmatch(log)
		if m == nil || !strings.Contains(log, "use: port="+m[1]+"\n") {
			t.Fatalf("the step did not get the service's port:\n%s", log)
		}
		if c.wantStatus == ci.StatusError {
			if !strings.HasPrefix(res.Error, `service my db exited (code 0) while the steps ran`) || strings.Contains(log, "after-ran") {
				t.Fatalf("a service dying after ready: %q\n%s", res.Error, log)
			}
		}
	}
}
