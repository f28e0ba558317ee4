// Package runner runs a pipeline (internal/pipeline) on the agent: its
// services started and waited for, its steps in order or as a graph, each
// in its own process group (or the agent's sandbox, through Options.Start)
// with timeouts, cancellation and an environment that holds only what it
// is given, and their output line by line with secrets masked. It knows
// nothing of Redis or queues: output goes to a Sink.
package runner

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
	"sync/atomic"
	"syscall"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/pipeline"
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

// Options configure one pipeline run.
type Options struct {
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
	// Start, when set, starts a step's command line (argv, with exactly
	// env) where the agent runs steps — its sandbox (see internal/sandbox)
	// — instead of as a child of this process in Dir.
	Start func(argv, env []string) (Process, error)
	// When is what steps' when: conditions are evaluated against.
	When pipeline.Context
	// Concurrency bounds the steps of a graph running at once (default 1;
	// a sequence runs one at a time anyway).
	Concurrency int
	// Sidecars: services with an image run beside the agent already (the
	// Kubernetes executor's pod); the job only waits for their ports.
	Sidecars bool
	// AfterStep, when set, runs after each step that ran to an exit
	// (succeeded or failed) — the agent uploads its artifacts there; an
	// error fails the step with it.
	AfterStep func(s pipeline.Step) error
}

// Result is a pipeline's verdict.
type Result struct {
	Status ci.Status // success, failed, cancelled or error
	Error  string
	Steps  []ci.Step
	// Cache counts cargo's artifacts over the steps that report them.
	Cache CacheCount
}

// Execute runs the pipeline's steps — in order, or as a graph when steps
// have depends_on — until one fails (allow_failure steps may fail), the
// pipeline's timeout passes or ctx is cancelled.
func Execute(ctx context.Context, p *pipeline.Pipeline, o Options) Result {
	if o.KillGrace <= 0 {
		o.KillGrace = DefaultKillGrace
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 1
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = pipeline.DefaultTimeout
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r := &runner{p: p, o: o, ctx: ctx, pctx: pctx, timeout: timeout, counter: &cargoCounter{},
		steps: make([]ci.Step, len(p.Steps)), blocking: make([]bool, len(p.Steps)), res: Result{Status: ci.StatusSuccess}}
	for i, s := range p.Steps {
		r.steps[i] = ci.Step{Name: s.Name, Status: ci.StatusPending, AllowFailure: s.AllowFailure}
	}
	services, serviceEnv, err := r.startServices()
	r.o.Env = append(r.o.Env, serviceEnv...)
	watched := make(chan struct{})
	watchServices(services, watched, r.serviceDied)
	switch {
	case err != nil:
		// No step runs without the services it was promised.
		for i := range r.steps {
			r.steps[i].Status = ci.StatusSkipped
		}
		r.res.Status, r.res.Error = ci.StatusError, err.Error()
		if ctx.Err() != nil {
			r.res.Status, r.res.Error = ci.StatusCancelled, "cancelled"
		}
	case p.Graph():
		r.graph()
	default:
		r.sequence()
	}
	close(watched)
	stopServices(services)
	if why := r.died.Load(); why != nil && r.res.Status != ci.StatusCancelled {
		// A service the steps relied on went away: whatever they made of
		// it, the job is not a pass.
		r.res.Status, r.res.Error = ci.StatusError, *why
	}
	r.report()
	r.res.Steps = r.steps
	r.res.Cache = r.counter.count()
	return r.res
}

// runner is one run of a pipeline: the steps' states and the verdict,
// shared by the steps running at once.
type runner struct {
	p         *pipeline.Pipeline
	o         Options
	ctx, pctx context.Context
	timeout   time.Duration
	counter   *cargoCounter

	// reportMu keeps OnStep calls one at a time and in order.
	reportMu sync.Mutex
	mu       sync.Mutex
	steps    []ci.Step
	// blocking marks steps whose outcome stops their dependants: failed
	// (not allowed to), errored, cancelled, or skipped because of that.
	blocking []bool
	res      Result
	// died is why a service exited while the steps ran (nil: none did).
	died atomic.Pointer[string]
}

// serviceDied records the first service that exited during the steps; no
// step starts after it.
func (r *runner) serviceDied(rs *runningService) {
	why := fmt.Sprintf("service %s exited (code %d) while the steps ran; its log is under \"%s\"", rs.svc.Name, rs.code, rs.svc.LogStep())
	if r.died.CompareAndSwap(nil, &why) {
		r.o.line(rs.svc.LogStep(), "system", why)
	}
}

func (r *runner) report() {
	if r.o.OnStep == nil {
		return
	}
	r.reportMu.Lock()
	defer r.reportMu.Unlock()
	r.mu.Lock()
	steps := append([]ci.Step(nil), r.steps...)
	r.mu.Unlock()
	r.o.OnStep(steps)
}

func (r *runner) setStatus(i int, st ci.Status, blocking bool) {
	r.mu.Lock()
	r.steps[i].Status, r.blocking[i] = st, blocking
	r.mu.Unlock()
}

// stopped reports whether the job was cancelled or timed out: nothing more
// starts then.
func (r *runner) stopped() bool {
	return r.ctx.Err() != nil || r.pctx.Err() != nil || r.died.Load() != nil
}

// admit decides whether step i runs, given whether a failure came before it
// (in a sequence: any step; in a graph: one of its dependencies). A step not
// admitted is marked skipped, with the reason in its log when there is one.
func (r *runner) admit(i int, failedBefore bool, why string) bool {
	s := r.p.Steps[i]
	switch {
	case r.stopped():
		r.setStatus(i, ci.StatusSkipped, true)
		return false
	case !s.When.RunsAfter(failedBefore):
		// After a failure only the steps that ask for it run (when.status:
		// [failure]: notifications, cleanup); a failure-only step after
		// success does not.
		r.setStatus(i, ci.StatusSkipped, failedBefore)
		if failedBefore && why != "" {
			r.o.line(s.Name, "system", "skipped: "+why)
		}
		return false
	}
	if ok, why := s.When.Match(r.o.When); !ok {
		r.setStatus(i, ci.StatusSkipped, false)
		r.o.line(s.Name, "system", "skipped: "+why)
		return false
	}
	if s.SkipReason != "" {
		r.setStatus(i, ci.StatusSkipped, false)
		r.o.line(s.Name, "system", "skipped: "+s.SkipReason)
		return false
	}
	return true
}

// exec runs step i and records its outcome; the first failure of the run
// is the job's verdict (a step run after it, or a cancel during one, does
// not replace it — except that a cancel always ends as cancelled).
func (r *runner) exec(i int) {
	s := r.p.Steps[i]
	start := time.Now()
	r.mu.Lock()
	r.steps[i].Status, r.steps[i].StartedAt = ci.StatusRunning, &start
	r.mu.Unlock()
	r.report()
	r.o.line(s.Name, "system", "$ "+s.Run)
	code, err := runStep(r.pctx, s, r.p.Env, r.o, r.counter, nil)
	end := time.Now()
	status, verdict, why := ci.StatusSuccess, ci.StatusSuccess, ""
	switch {
	case r.ctx.Err() != nil:
		status, verdict, why = ci.StatusCancelled, ci.StatusCancelled, "cancelled"
	case r.pctx.Err() != nil:
		status, verdict, why = ci.StatusError, ci.StatusError, fmt.Sprintf("pipeline timed out after %s in step %s", r.timeout, s.Name)
	case errors.Is(err, context.DeadlineExceeded):
		status, verdict, why = ci.StatusError, ci.StatusError, fmt.Sprintf("step %s timed out after %s", s.Name, s.Timeout)
	case err != nil:
		status, verdict, why = ci.StatusError, ci.StatusError, fmt.Sprintf("step %s could not run: %v", s.Name, err)
	case code != 0 && s.AllowFailure:
		status = ci.StatusFailed
		r.o.line(s.Name, "system", fmt.Sprintf("exit code %d (allowed to fail)", code))
	case code != 0:
		status, verdict, why = ci.StatusFailed, ci.StatusFailed, fmt.Sprintf("step %s failed with exit code %d", s.Name, code)
	}
	if r.o.AfterStep != nil && (status == ci.StatusSuccess || status == ci.StatusFailed) {
		if err := r.o.AfterStep(s); err != nil {
			if s.AllowFailure {
				// allow_failure covers the whole step, its artifacts and
				// publishing too: the step reads failed, the job goes on.
				status = ci.StatusFailed
				r.o.line(s.Name, "system", fmt.Sprintf("step %s: %v (allowed to fail)", s.Name, err))
			} else {
				status, verdict, why = ci.StatusFailed, ci.StatusFailed, fmt.Sprintf("step %s: %v", s.Name, err)
			}
		}
	}
	if why != "" {
		r.o.line(s.Name, "system", why)
	}
	r.mu.Lock()
	r.steps[i].Status = status
	r.steps[i].FinishedAt, r.steps[i].DurationMS = &end, end.Sub(start).Milliseconds()
	if code >= 0 {
		r.steps[i].ExitCode = &code
	}
	r.blocking[i] = verdict != ci.StatusSuccess
	if verdict != ci.StatusSuccess && (r.res.Status == ci.StatusSuccess || verdict == ci.StatusCancelled) {
		r.res.Status, r.res.Error = verdict, why
	}
	r.mu.Unlock()
	r.report()
}

// sequence runs the steps one after another.
func (r *runner) sequence() {
	for i := range r.p.Steps {
		r.mu.Lock()
		failed := r.res.Status != ci.StatusSuccess
		r.mu.Unlock()
		if r.admit(i, failed, "") {
			r.exec(i)
		}
	}
}

// graph runs the steps as their depends_on allow: a step starts once all
// it depends on have ended, up to Concurrency at a time; one whose
// dependency did not pass is skipped (unless its when.status asks for
// failures), and so are its own dependants. Each step's output stays its
// own: its lines carry its name.
func (r *runner) graph() {
	index := map[string]int{}
	for i, s := range r.p.Steps {
		index[s.Name] = i
	}
	waiting := make([]int, len(r.p.Steps))
	dependants := make([][]int, len(r.p.Steps))
	for i, s := range r.p.Steps {
		waiting[i] = len(s.DependsOn)
		for _, d := range s.DependsOn {
			dependants[index[d]] = append(dependants[index[d]], i)
		}
	}
	slots := make(chan struct{}, r.o.Concurrency)
	ended := make(chan int)
	running := 0
	var wg sync.WaitGroup
	// decide starts step i, or ends it at once when it does not run.
	var decide func(i int)
	var finish func(i int)
	decide = func(i int) {
		var failedDeps []string
		r.mu.Lock()
		for _, d := range r.p.Steps[i].DependsOn {
			if r.blocking[index[d]] {
				failedDeps = append(failedDeps, d)
			}
		}
		r.mu.Unlock()
		why := ""
		if len(failedDeps) > 0 {
			why = "needs " + strings.Join(failedDeps, ", ") + ", which did not pass"
		}
		if !r.admit(i, len(failedDeps) > 0, why) {
			finish(i)
			return
		}
		running++
		wg.Go(func() {
			slots <- struct{}{}
			r.exec(i)
			<-slots
			ended <- i
		})
	}
	finish = func(i int) {
		for _, d := range dependants[i] {
			if waiting[d]--; waiting[d] == 0 {
				decide(d)
			}
		}
	}
	for i := range r.p.Steps {
		if waiting[i] == 0 {
			decide(i)
		}
	}
	for running > 0 {
		i := <-ended
		running--
		finish(i)
	}
	wg.Wait()
}

func (o Options) line(step, stream, text string) { o.piece(step, stream, text, false) }

// piece sends a line, or with cont the continuation of a cut line.
func (o Options) piece(step, stream, text string, cont bool) {
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
// started, when set, is told the pid of the step's process once it runs.
func runStep(ctx context.Context, s pipeline.Step, pipelineEnv map[string]string, o Options, counter *cargoCounter, started func(pid int)) (int, error) {
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
	var secretEnv []string
	for _, r := range s.Secrets {
		secretEnv = append(secretEnv, r.Env+"="+o.Secrets[r.Name])
	}
	// Secrets last: neither the pipeline's env nor the step's can replace one.
	env := StepEnv(o.PassEnv, o.Env, pipeline.EnvList(pipelineEnv), pipeline.EnvList(s.Env), secretEnv)
	start := o.Start
	if start == nil {
		start = o.startHere
	}
	proc, err := start(append([]string{shell}, args...), env)
	if err != nil {
		return -1, err
	}
	stdoutR, stderrR := proc.Stdout, proc.Stderr
	pgid := proc.Pid
	if started != nil {
		started(pgid)
	}
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
	werr := proc.Wait()
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

// Process is a started step.
type Process struct {
	// Pid leads the process group of everything the step starts: killing
	// the group ends them all.
	Pid int
	// Stdout and Stderr are the read ends of the step's output; runStep
	// closes them.
	Stdout, Stderr *os.File
	// Wait waits for the step's exit, as exec.Cmd.Wait does.
	Wait func() error
}

// startHere starts argv as a child of this process, in Dir, leading its
// own process group and killed if the agent dies.
func (o Options) startHere(argv, env []string) (Process, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = o.Dir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		return Process{}, err
	}
	stderrR, stderrW, err := os.Pipe()
	if err != nil {
		stdoutR.Close()
		stdoutW.Close()
		return Process{}, err
	}
	cmd.Stdout, cmd.Stderr = stdoutW, stderrW
	err = cmd.Start()
	stdoutW.Close()
	stderrW.Close()
	if err != nil {
		stdoutR.Close()
		stderrR.Close()
		return Process{}, err
	}
	return Process{Pid: cmd.Process.Pid, Stdout: stdoutR, Stderr: stderrR, Wait: cmd.Wait}, nil
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
