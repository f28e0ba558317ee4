package sandbox_test

import (
	"io"
	"os/exec"
	"runtime"
	"syscall"
	"testing"

	"github.com/raibid-labs/raibid-ci/internal/sandbox"
)

// BenchmarkStepStart prints what starting one step costs: a plain process,
// the namespaces alone through Go's SysProcAttr (what a home-made sandbox
// would start from, before any mount or privilege drop), and a step in
// raibid's bwrap sandbox: set up when the step starts, and set up ahead.
func BenchmarkStepStart(b *testing.B) {
	run := func(b *testing.B, mk func() *exec.Cmd) {
		for b.Loop() {
			if out, err := mk().CombinedOutput(); err != nil {
				b.Fatalf("%v: %s", err, out)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/step")
	}
	b.Run("plain", func(b *testing.B) {
		run(b, func() *exec.Cmd { return exec.Command("/bin/true") })
	})
	b.Run("sysprocattr-namespaces", func(b *testing.B) {
		run(b, func() *exec.Cmd {
			c := exec.Command("/bin/true")
			c.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWIPC, Setsid: true}
			return c
		})
	})
	// A sandbox set up when the step starts (the first step of a slot).
	b.Run("bwrap-cold", func(b *testing.B) {
		dir := b.TempDir()
		for b.Loop() {
			b.StopTimer()
			sb, err := sandbox.New(sandbox.Options{Hidden: []string{b.TempDir()}})
			if err != nil {
				b.Fatal(err)
			}
			sb.Own(dir)
			b.StartTimer()
			runStep(b, sb, dir)
			b.StopTimer()
			sb.Close()
			b.StartTimer()
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/step")
	})
	// Steps one after another: each starts in the spare set up while the
	// one before ran.
	b.Run("bwrap-back-to-back", func(b *testing.B) {
		sb, dir := benchSandbox(b)
		for b.Loop() {
			runStep(b, sb, dir)
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/step")
	})
	// A step after a pause (the next push): its spare is ready. Then the
	// same for a step as a job runs one: `echo ok` in bash.
	b.Run("bwrap-spare-ready", func(b *testing.B) { spareReady(b) })
	b.Run("bwrap-spare-ready-bash-echo", func(b *testing.B) {
		spareReady(b, "/bin/bash", "-e", "-o", "pipefail", "-c", "echo ok")
	})
}

// spareReady times argv started in a spare whose launcher waits.
func spareReady(b *testing.B, argv ...string) {
	sb, dir := benchSandbox(b)
	runStep(b, sb, dir) // sets the first spare up
	for b.Loop() {
		b.StopTimer()
		for !sb.SpareWaiting() {
			runtime.Gosched()
		}
		b.StartTimer()
		runStep(b, sb, dir, argv...)
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/step")
}

// benchSandbox is a sandbox, closed after the benchmark, and a workspace.
func benchSandbox(b *testing.B) (*sandbox.Sandbox, string) {
	sb, err := sandbox.New(sandbox.Options{Hidden: []string{b.TempDir()}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(sb.Close)
	dir := b.TempDir()
	sb.Own(dir)
	return sb, dir
}

// runStep runs argv (default /bin/true) in sb as a step and waits for it.
func runStep(b *testing.B, sb *sandbox.Sandbox, dir string, argv ...string) {
	if len(argv) == 0 {
		argv = []string{"/bin/true"}
	}
	p, err := sb.Start(argv, []string{"PATH=/usr/bin:/bin"}, sandbox.Job{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	out, _ := io.ReadAll(io.MultiReader(p.Stdout, p.Stderr))
	p.Stdout.Close()
	p.Stderr.Close()
	if err := p.Wait(); err != nil {
		b.Fatalf("%v: %s", err, out)
	}
}
