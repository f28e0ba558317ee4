package sandbox

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/raibid-labs/raibid-ci/internal/sandbox/launcher"
)

// Setting up a sandbox costs more than the step it runs: on a 2-core VM
// bwrap's namespaces and mounts and setpriv's drop take ~14 ms, a `bash -c
// echo` ~6 ms. So a step runs, when it can, in a sandbox set up ahead of
// it — a spare — and starting the step only hands it the command: the
// spare's launcher (this very binary, started by setpriv as the build
// user; package launcher) reads the step's argv and environment from a
// pipe and execs it.
//
// A spare is set up for one Job (its mounts are that job's) and used once.
// Once a step has run for spareDelay, or exited, the next spare is set up
// for the same Job in the background: for the job's next step or the
// slot's next job. A step that finds no spare waiting — the first, one
// right after a short step, one of another Job — starts in a sandbox set
// up there and then, as before spares. A spare whose Job, or any directory
// it mounts, is not exactly what the step needs is thrown away unused, so
// no two steps share a sandbox and no job sees another's mounts.

// spareDelay is how long a step runs before the next spare is set up
// while it does: a shorter step leaves the CPU to the step and the report
// of its job, and has its spare set up once it exits.
const spareDelay = 20 * time.Millisecond

// spare is a sandbox set up for one Job, its launcher waiting for a step.
type spare struct {
	// key is the command line it was set up with; pins hold the
	// directories it mounts.
	key  string
	pins []pin
	proc *Process
	spec *os.File // the write end of the launcher's pipe
	// ready gets a byte when the launcher waits for its step; isReady
	// remembers it.
	ready   *os.File
	isReady bool
}

// Process is a step started in a sandbox.
type Process struct {
	// Pid is bwrap's, which leads the process group of everything in the
	// sandbox: killing the group ends the step and all it started.
	Pid            int
	Stdout, Stderr *os.File // the read ends of the step's output; the caller closes them
	cmd            *exec.Cmd
	exited         chan struct{}
	once           sync.Once
}

// Wait waits for the step to exit, as exec.Cmd.Wait does.
func (p *Process) Wait() error {
	err := p.cmd.Wait()
	p.once.Do(func() { close(p.exited) })
	return err
}

// Start runs argv, with exactly env as its environment, in a sandbox for
// j: the spare set up for j when it is waiting, else one set up now. The
// next spare for j is then set up in the background.
func (s *Sandbox) Start(argv, env []string, j Job) (*Process, error) {
	args := s.args(j)
	var p *Process
	if sp := s.takeReady(key(args)); sp != nil {
		if err := sp.launch(argv, env); err == nil {
			p = sp.proc
		} else {
			s.discard(sp) // died waiting (killed from outside)
		}
	}
	if p == nil {
		var err error
		if p, err = s.start(append(args, argv...), env, nil); err != nil {
			return nil, err
		}
	}
	s.prepare(j, p.exited)
	return p, nil
}

// Discard throws the spare away: the agent calls it when the workspace
// the spare mounts is going away.
func (s *Sandbox) Discard() {
	if s == nil {
		return
	}
	s.mu.Lock()
	sp := s.spare
	s.spare = nil
	s.mu.Unlock()
	if sp != nil {
		s.discard(sp)
	}
}

// Close throws the spare away and waits until nothing set up in the
// background is left; no spare is set up after it.
func (s *Sandbox) Close() {
	if s == nil {
		return
	}
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.done)
	}
	s.mu.Unlock()
	s.Discard()
	s.pending.Wait()
}

// key is a command line as a spare keeps it.
func key(args []string) string { return strings.Join(args, "\x00") }

// pin holds a path a spare mounts, as it was when the spare was set up:
// the descriptor keeps that inode alive, so no directory made later can
// have its number.
type pin struct {
	path string
	fd   int // -1: the path did not exist
}

// pinPaths pins every path j and the options mount, and the mount points
// j's Shown makes inside the workspace (a reset of the workspace removes
// those, and their mounts with them).
func (s *Sandbox) pinPaths(j Job) []pin {
	paths := append(append(append(append([]string{j.Dir}, j.Writable...), j.ReadOnly...), s.opts.ReadOnly...), s.opts.Writable...)
	for dst, src := range j.Shown {
		paths = append(paths, dst, src)
	}
	for _, src := range j.Devices {
		paths = append(paths, src)
	}
	pins := make([]pin, 0, len(paths))
	for _, p := range paths {
		fd, err := unix.Open(p, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			fd = -1
		}
		pins = append(pins, pin{path: p, fd: fd})
	}
	return pins
}

// unchanged reports whether every pinned path still names the inode
// pinned (or still does not exist).
func unchanged(pins []pin) bool {
	for _, p := range pins {
		var now, then unix.Stat_t
		err := unix.Stat(p.path, &now)
		switch {
		case p.fd < 0 && err == nil, p.fd >= 0 && err != nil:
			return false
		case p.fd < 0:
			continue
		}
		if unix.Fstat(p.fd, &then) != nil || now.Dev != then.Dev || now.Ino != then.Ino {
			return false
		}
	}
	return true
}

func unpin(pins []pin) {
	for _, p := range pins {
		if p.fd >= 0 {
			unix.Close(p.fd)
		}
	}
}

// takeReady returns the spare if it was set up with the command line k
// and every path it mounts is still the inode it pinned, once its launcher
// is waiting. Any other spare is thrown away; one still being set up for
// k stays, for the step after this one.
func (s *Sandbox) takeReady(k string) *spare {
	s.mu.Lock()
	sp := s.spare
	switch {
	case sp == nil:
	case sp.key != k || !unchanged(sp.pins):
		s.spare = nil
	case sp.waiting():
		s.spare = nil
		s.sparesUsed++
		s.mu.Unlock()
		return sp
	default:
		// Still being set up for this very step's job (a step right after
		// a short one): worth a short wait, rather than a second sandbox
		// set up beside it on the same cores.
		s.spare = nil
		s.mu.Unlock()
		if sp.waitReady(spareWait) {
			s.mu.Lock()
			s.sparesUsed++
			s.mu.Unlock()
			return sp
		}
		s.mu.Lock()
		if s.spare == nil && !s.closed {
			s.spare, sp = sp, nil // for the step after this one
		}
	}
	s.mu.Unlock()
	if sp != nil {
		s.discard(sp)
	}
	return nil
}

// spareWait bounds how long a step waits for a spare still being set up:
// about what the rest of its set-up takes, and less than a sandbox set up
// from nothing.
const spareWait = 20 * time.Millisecond

// waitReady waits up to d for the spare's launcher to wait for its step.
func (sp *spare) waitReady(d time.Duration) bool {
	if !sp.isReady {
		fds := []unix.PollFd{{Fd: int32(sp.readyFD()), Events: unix.POLLIN}}
		deadline := time.Now().Add(d)
		for {
			n, err := unix.Poll(fds, int(max(time.Until(deadline), 0)/time.Millisecond))
			if err == unix.EINTR {
				continue
			}
			sp.isReady = err == nil && n == 1 && fds[0].Revents&unix.POLLIN != 0
			break
		}
	}
	return sp.isReady
}

// waiting reports whether the spare's launcher waits for its step.
func (sp *spare) waiting() bool { return sp.waitReady(0) }

// readyFD is the ready pipe's descriptor, left in the mode it has.
func (sp *spare) readyFD() int {
	fd := -1
	if rc, err := sp.ready.SyscallConn(); err == nil {
		_ = rc.Control(func(f uintptr) { fd = int(f) })
	}
	return fd
}

// prepare sets up the next spare for j in the background once the step
// that just started has run for spareDelay or exited, unless a spare is
// there or on its way, or the sandbox is closed.
func (s *Sandbox) prepare(j Job, exited <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.preparing || s.spare != nil {
		return
	}
	s.preparing = true
	s.pending.Go(func() {
		t := time.NewTimer(spareDelay)
		defer t.Stop()
		select {
		case <-exited:
		case <-t.C:
		case <-s.done:
		}
		sp, err := s.setUp(j)
		s.mu.Lock()
		s.preparing = false
		keep := err == nil && !s.closed && s.spare == nil
		if keep {
			s.spare = sp
		}
		s.mu.Unlock()
		if err == nil && !keep {
			s.discard(sp)
		}
		// An error leaves no spare: the next step sets its sandbox up
		// itself, and says why it cannot.
	})
}

// setUp starts bwrap for j with the launcher waiting in it.
func (s *Sandbox) setUp(j Job) (*spare, error) {
	// The agent's own executable, by descriptor: its path may be hidden
	// from steps (under the agent's home or /tmp).
	exe, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil, fmt.Errorf("sandbox: open the launcher: %w", err)
	}
	defer exe.Close()
	specR, specW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	defer specR.Close()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		closeAll(specW)
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	defer readyW.Close()
	// Pinned before bwrap resolves the paths: a directory replaced between
	// the two is seen as changed, never as the same.
	pins := s.pinPaths(j)
	args := s.args(j)
	// Nothing in the environment: the step's comes with it.
	p, err := s.start(append(args, fmt.Sprintf("/proc/self/fd/%d", launcher.ExeFD), launcher.Arg), []string{}, []*os.File{exe, specR, readyW})
	if err != nil {
		unpin(pins)
		closeAll(specW, readyR)
		return nil, err
	}
	return &spare{key: key(args), pins: pins, proc: p, spec: specW, ready: readyR}, nil
}

// start starts bwrap with args and env, extra as its descriptors 3 and
// on, in a process group of its own (a cancel kills the whole sandbox)
// that dies with the agent.
func (s *Sandbox) start(args, env []string, extra []*os.File) (*Process, error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		closeAll(outR, outW)
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	cmd := exec.Command(s.bwrap, args...)
	cmd.Env = env
	cmd.ExtraFiles = extra
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	closeAll(outW, errW)
	if err != nil {
		closeAll(outR, errR)
		return nil, fmt.Errorf("sandbox: start bwrap: %w", err)
	}
	return &Process{Pid: cmd.Process.Pid, Stdout: outR, Stderr: errR, cmd: cmd, exited: make(chan struct{})}, nil
}

// launch hands the spare its step.
func (sp *spare) launch(argv, env []string) error {
	unpin(sp.pins)
	sp.pins = nil
	_, err := sp.spec.Write(launcher.Encode(argv, env))
	if cerr := sp.spec.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sandbox: hand the step over: %w", err)
	}
	return nil
}

// discard kills a spare never launched (or whose launch failed) and reaps
// it in the background.
func (s *Sandbox) discard(sp *spare) {
	unpin(sp.pins)
	sp.pins = nil
	closeAll(sp.spec, sp.ready)
	_ = syscall.Kill(-sp.proc.Pid, syscall.SIGKILL)
	s.pending.Go(func() {
		_ = sp.proc.Wait()
		closeAll(sp.proc.Stdout, sp.proc.Stderr)
	})
}

// probe runs argv in a spare set up for j, without a spare after it, and
// returns its output: the way of the steps that matter most.
func (s *Sandbox) probe(ctx context.Context, argv []string, j Job) (string, error) {
	sp, err := s.setUp(j)
	if err != nil {
		return "", err
	}
	defer closeAll(sp.ready)
	if err := sp.launch(argv, []string{"PATH=/usr/bin:/bin"}); err != nil {
		s.discard(sp)
		return "", err
	}
	stop := context.AfterFunc(ctx, func() { _ = syscall.Kill(-sp.proc.Pid, syscall.SIGKILL) })
	defer stop()
	out, _ := io.ReadAll(io.MultiReader(sp.proc.Stdout, sp.proc.Stderr))
	closeAll(sp.proc.Stdout, sp.proc.Stderr)
	return string(out), sp.proc.Wait()
}

func closeAll(fs ...*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}
