package pipeline

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
)

// DefaultKillGrace is how long a cancelled step's process group has between
// SIGTERM and SIGKILL.
const DefaultKillGrace = 10 * time.Second

// Sink receives output lines as they are produced.
type Sink interface {
	Line(step, stream, text string)
}

// ContinuedSink is a Sink that records which pieces continue a line cut at
// the reader's buffer, so the line can be shown whole again.
type ContinuedSink interface {
	Sink
	LineCont(step, stream, text string, cont bool)
}

// RunOptions configure one pipeline run.
type RunOptions struct {
	Dir    string
	Env    []string // NAME=value, added to the agent's environment (minus RAIBID_*)
	Sink   Sink
	Masker *Masker
	// OnStep is called whenever a step starts or ends, with every step's state.
	OnStep func([]ci.Step)
	// KillGrace overrides DefaultKillGrace.
	KillGrace time.Duration
	// PassEnv names agent variables steps inherit beyond PassedEnv.
	PassEnv []string
	// Secrets are the values of the pipeline secrets the steps name; each
	// step gets only its own, and Masker must hold them all.
	Secrets map[string]string
	// Wrap, when set, turns a step's command line into the one that runs it
	// in a sandbox (see internal/sandbox).
	Wrap func(argv []string) (name string, args []string)
	// When is what steps' when: conditions are evaluated against.
	When Context
}

// Result is a pipeline's verdict.
type Result struct {
	Status ci.Status // success, failed, cancelled or error
	Error  string
	Steps  []ci.Step
	// Cache counts cargo's artifacts over the steps that report them.
	Cache CacheCount
}

// Run runs the steps in order until one fails (allow_failure steps may fail),
// the pipeline's timeout passes or ctx is cancelled.
func Run(ctx context.Context, p *Pipeline, o RunOptions) Result {
	steps := make([]ci.Step, len(p.Steps))
	for i, s := range p.Steps {
		steps[i] = ci.Step{Name: s.Name, Status: ci.StatusPending}
	}
	report := func() {
		if o.OnStep != nil {
			o.OnStep(append([]ci.Step(nil), steps...))
		}
	}
	if o.KillGrace <= 0 {
		o.KillGrace = DefaultKillGrace
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res := Result{Status: ci.StatusSuccess}
	counter := &cargoCounter{}
	for i, s := range p.Steps {
		// After a failure only the steps that ask for it run (when.status:
		// [failure]: notifications, cleanup); after a cancel or a timeout
		// nothing does.
		failed := res.Status != ci.StatusSuccess
		if ctx.Err() != nil || pctx.Err() != nil || !s.When.runsAfter(failed) {
			steps[i].Status = ci.StatusSkipped
			continue
		}
		if ok, why := s.When.Match(o.When); !ok {
			steps[i].Status = ci.StatusSkipped
			o.line(s.Name, "system", "skipped: "+why)
			continue
		}
		if s.SkipReason != "" {
			steps[i].Status = ci.StatusSkipped
			o.line(s.Name, "system", "skipped: "+s.SkipReason)
			continue
		}
		start := time.Now()
		steps[i].Status, steps[i].StartedAt = ci.StatusRunning, &start
		report()
		o.line(s.Name, "system", "$ "+s.Run)
		code, err := runStep(pctx, s, p.Env, o, counter)
		end := time.Now()
		steps[i].FinishedAt, steps[i].DurationMS = &end, end.Sub(start).Milliseconds()
		if code >= 0 {
			steps[i].ExitCode = &code
		}
		verdict, why := ci.StatusSuccess, ""
		switch {
		case ctx.Err() != nil:
			steps[i].Status = ci.StatusCancelled
			verdict, why = ci.StatusCancelled, "cancelled"
		case pctx.Err() != nil:
			steps[i].Status = ci.StatusError
			verdict, why = ci.StatusError, fmt.Sprintf("pipeline timed out after %s in step %s", timeout, s.Name)
		case errors.Is(err, context.DeadlineExceeded):
			steps[i].Status = ci.StatusError
			verdict, why = ci.StatusError, fmt.Sprintf("step %s timed out after %s", s.Name, s.Timeout)
		case err != nil:
			steps[i].Status = ci.StatusError
			verdict, why = ci.StatusError, fmt.Sprintf("step %s could not run: %v", s.Name, err)
		case code != 0 && s.AllowFailure:
			steps[i].Status = ci.StatusFailed
			o.line(s.Name, "system", fmt.Sprintf("exit code %d (allowed to fail)", code))
		case code != 0:
			steps[i].Status = ci.StatusFailed
			verdict, why = ci.StatusFailed, fmt.Sprintf("step %s failed with exit code %d", s.Name, code)
		default:
			steps[i].Status = ci.StatusSuccess
		}
		if why != "" {
			o.line(s.Name, "system", why)
		}
		// The first failure is the job's verdict: a step run after it (or a
		// cancel during one) does not replace it.
		if verdict != ci.StatusSuccess && (!failed || verdict == ci.StatusCancelled) {
			res.Status, res.Error = verdict, why
		}
		report()
	}
	report()
	res.Steps = steps
	res.Cache = counter.count()
	return res
}

func (o RunOptions) line(step, stream, text string) { o.piece(step, stream, text, false) }

// piece sends a line, or with cont the continuation of a cut line.
func (o RunOptions) piece(step, stream, text string, cont bool) {
	switch s := o.Sink.(type) {
	case nil:
	case ContinuedSink:
		s.LineCont(step, stream, o.Masker.Apply(text), cont)
	default:
		s.Line(step, stream, o.Masker.Apply(text))
	}
}

// runStep runs one step in its own process group and returns its exit code
// (-1 when it did not exit normally). On cancel or timeout the group gets
// SIGTERM, then SIGKILL after the kill grace; when the step's shell exits, anything
// it left running in the group is killed, so no step outlives its job.
func runStep(ctx context.Context, s Step, pipelineEnv map[string]string, o RunOptions, counter *cargoCounter) (int, error) {
	sctx := ctx
	if s.Timeout > 0 {
		var cancel context.CancelFunc
		sctx, cancel = context.WithTimeout(ctx, s.Timeout)
		defer cancel()
	}
	shell, args := "/bin/sh", []string{"-e", "-c", s.Run}
	if path, err := exec.LookPath("bash"); err == nil {
		shell, args = path, []string{"-e", "-o", "pipefail", "-c", s.Run}
	}
	name := shell
	if o.Wrap != nil {
		name, args = o.Wrap(append([]string{shell}, args...))
	}
	cmd := exec.Command(name, args...)
	cmd.Dir = o.Dir
	var secretEnv []string
	for _, r := range s.Secrets {
		secretEnv = append(secretEnv, r.Env+"="+o.Secrets[r.Name])
	}
	// Secrets last: neither the pipeline's env nor the step's can replace one.
	cmd.Env = StepEnv(o.PassEnv, o.Env, EnvList(pipelineEnv), EnvList(s.Env), secretEnv)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		return -1, err
	}
	stderrR, stderrW, err := os.Pipe()
	if err != nil {
		stdoutR.Close()
		stdoutW.Close()
		return -1, err
	}
	cmd.Stdout, cmd.Stderr = stdoutW, stderrW
	cmd.Stdin = nil
	err = cmd.Start()
	stdoutW.Close()
	stderrW.Close()
	if err != nil {
		stdoutR.Close()
		stderrR.Close()
		return -1, err
	}
	pgid := cmd.Process.Pid
	var readers sync.WaitGroup
	for _, r := range []struct {
		f      *os.File
		stream string
	}{{stdoutR, "stdout"}, {stderrR, "stderr"}} {
		readers.Add(1)
		go func() {
			defer readers.Done()
			readLines(r.f, o.Masker, func(text string, cont bool) {
				if s.CargoJSON && r.stream == "stdout" && !counter.keep(text) {
					return
				}
				o.piece(s.Name, r.stream, text, cont)
			})
		}()
	}
	exited := make(chan struct{})
	go func() {
		select {
		case <-sctx.Done():
			_ = syscall.Kill(-pgid, syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(o.KillGrace):
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
			}
		case <-exited:
		}
	}()
	werr := cmd.Wait()
	close(exited)
	// Whatever the step started in its group and left behind dies with it.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	done := make(chan struct{})
	go func() { readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		// A process that left the group (setsid) still holds the pipe.
		stdoutR.Close()
		stderrR.Close()
		<-done
	}
	stdoutR.Close()
	stderrR.Close()
	if sctx.Err() != nil {
		return exitCode(werr), sctx.Err()
	}
	var exitErr *exec.ExitError
	if werr != nil && !errors.As(werr, &exitErr) {
		return -1, werr
	}
	return exitCode(werr), nil
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return exitErr.ExitCode()
	}
	return -1
}

// maxLine splits longer lines so one runaway line cannot hold memory.
const maxLine = 64 << 10

func readLines(r io.Reader, m *Masker, emit func(text string, cont bool)) {
	br := bufio.NewReaderSize(r, maxLine)
	// A line longer than maxLine is emitted in pieces, each masked apart; the
	// pieces after the first are marked as continuations. The tail a secret
	// could straddle is carried into the next piece, and the cut is moved off
	// any secret already whole in the buffer.
	keep := max(m.Longest()-1, 0)
	var carry string
	cont := false
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			text := carry + string(line)
			carry = ""
			cut := errors.Is(err, bufio.ErrBufferFull)
			if cut && keep > 0 {
				if at := m.SafeCut(text, len(text)-keep); at > 0 {
					text, carry = text[:at], text[at:]
				}
			}
			if !cut {
				text = strings.TrimRight(text, "\r\n")
			}
			emit(text, cont)
			cont = cut
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if carry != "" {
				emit(strings.TrimRight(carry, "\r\n"), cont)
			}
			return
		}
	}
}
