package sandbox_test

import (
	"os/exec"
	"syscall"
	"testing"

	"github.com/raibid-labs/raibid-ci/internal/sandbox"
)

// BenchmarkStepStart prints what starting one step costs: a plain process,
// the namespaces alone through Go's SysProcAttr (what a home-made sandbox
// would start from, before any mount or privilege drop), and the whole
// bwrap sandbox raibid uses.
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
	b.Run("bwrap", func(b *testing.B) {
		sb, err := sandbox.New(sandbox.Options{Hidden: []string{b.TempDir()}})
		if err != nil {
			b.Fatal(err)
		}
		dir := b.TempDir()
		sb.Own(dir)
		run(b, func() *exec.Cmd {
			name, args := sb.Command([]string{"/bin/true"}, sandbox.Job{Dir: dir})
			return exec.Command(name, args...)
		})
	})
}
