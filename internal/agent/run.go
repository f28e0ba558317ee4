package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/raibid-labs/raibid-ci/internal/cache"
	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/jobs"
	"github.com/raibid-labs/raibid-ci/internal/pipeline"
	"github.com/raibid-labs/raibid-ci/internal/runner"
	"github.com/raibid-labs/raibid-ci/internal/safefs"
	"github.com/raibid-labs/raibid-ci/internal/sandbox"
	"github.com/raibid-labs/raibid-ci/internal/statuses"
	"github.com/raibid-labs/raibid-ci/internal/store"
)

// handle runs a claimed job to its end. Every path finishes the run,
// requeues it, hands it back, or (lease lost) leaves it to the agent that
// now holds it.
func (a *Agent) handle(ctx context.Context, run *jobs.Claimed, gpus []int) {
	d, job := run.Entry, run.Job
	log := a.log.With("job_id", job.ID, "entry", d.ID, "delivery", d.Deliveries)
	a.setCurrent(job.ID)
	defer a.setCurrent("")
	log.Info("job started", "repo", job.Repo, "commit", job.Commit, "attempt", job.Attempt)

	jobCtx, interrupt := context.WithCancelCause(context.Background())
	defer interrupt(nil)
	stopWatch := context.AfterFunc(ctx, func() { interrupt(errShutdown) })
	defer stopWatch()
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); a.watch(jobCtx, run, interrupt) }()
	defer func() { interrupt(nil); <-watchDone }()

	timing := startPhases()
	masker := runner.NewMasker(a.opts.Secrets...)
	sink := newLogSink(a.opts.Store, job.ID, fmt.Sprintf("%s/%s/%d", a.opts.Name, d.ID, d.Deliveries), a.opts.MaxLogBytes)
	defer sink.Close()
	ws, releaseSlot, err := acquireWorkspace(a.opts.WorkDir, job.CacheScope(), job.CloneURL)
	if err != nil {
		sink.Line("clone", "system", "workspace: "+err.Error())
		sink.Flush()
		a.retry(run, "workspace: "+err.Error())
		return
	}
	defer releaseSlot()
	timing.mark("workspace")
	mirrors := filepath.Join(a.opts.WorkDir, cache.MirrorsDir)
	// Without a build cache every job starts from a fresh worktree, removed
	// afterwards. With one, the slot's worktree is kept and reset to the next
	// commit (checkout -f, clean -ffdx): a clean tree all the same, but
	// unchanged files keep their times so cargo's cache stays fresh.
	keep := a.opts.Cache != nil
	if !keep {
		removeWorkspace(mirrors, ws) // a crashed job's leftovers
		defer removeWorkspace(mirrors, ws)
		// A sandbox set up ahead mounts this workspace: it goes with it.
		defer a.opts.Sandbox.Discard()
	}

	sink.Line("clone", "system", fmt.Sprintf("attempt %d on agent %s", job.Attempt, a.opts.Name))
	sink.Line("clone", "system", fmt.Sprintf("fetching %s %s@%s", redact(job.CloneURL), job.Branch, shortSHA(job.Commit)))
	if from := a.opts.Repos.fetchURL(job.CloneURL); from != job.CloneURL && !strings.HasPrefix(from, "/") {
		sink.Line("clone", "system", "from "+redact(from)+" (the forge's address for "+hostOf(job.CloneURL)+")")
	}
	// A kept worktree no build touched since the agent made it clean needs
	// no git clean, and none of git at all for the same commit.
	pristine := ""
	if keep {
		pristine = pristineCommit(a.opts.WorkDir, ws)
	}
	var cloneErr error
	if pristine != "" && pristine == job.Commit {
		sink.Line("clone", "system", "workspace unchanged since the last job: not reset")
		now := time.Now()
		_ = os.Chtimes(mirrorDir(mirrors, job.CloneURL), now, now) // its last use: PruneWork goes by it
	} else {
		forgetPristine(a.opts.WorkDir, ws) // recorded again once clean
		cloneErr = a.opts.Repos.clone(jobCtx, mirrors, ws, job.CloneURL, job.Branch, job.Commit, keep, pristine == "", masker)
	}
	if err := cloneErr; err != nil {
		if cause := context.Cause(jobCtx); cause != nil {
			a.interrupted(run, cause, nil)
			return
		}
		msg := "clone failed: " + err.Error()
		sink.Line("clone", "system", msg)
		sink.Flush()
		if errors.Is(err, errCloneRefused) {
			a.finish(run, ci.StatusError, msg, nil, nil)
			return
		}
		a.retry(run, msg)
		return
	}
	// An annotated tag's event names the tag object: build, show and report
	// the commit it points at. Only a tag's event can name one, and asking
	// git costs a process, so other events do not ask.
	commit := job.Commit
	if job.Event == ci.EventTag {
		commit = a.opts.Repos.peel(jobCtx, mirrors, job.CloneURL, job.Commit)
	}
	if commit != job.Commit {
		sink.Line("clone", "system", fmt.Sprintf("tag object %s is commit %s", shortSHA(job.Commit), shortSHA(commit)))
		sctx, cancel := final()
		if err := run.Peeled(sctx, commit); err != nil {
			log.Warn("record the tag's commit", "err", err)
		}
		cancel()
	}
	timing.mark("clone")
	p, err := pipeline.Load(ws, a.opts.Tools)
	if err != nil {
		sink.Line("pipeline", "system", err.Error())
		sink.Flush()
		a.finish(run, ci.StatusError, err.Error(), nil, nil)
		return
	}
	var changed []string
	if p.UsesPaths() && job.Changed == nil && job.Before != "" {
		changed = a.opts.Repos.changedFiles(jobCtx, mirrors, job.CloneURL, job.Before, job.Commit)
	}
	when := pipeline.ContextOf(job, changed)
	if ok, why := p.When.Match(when); !ok {
		// The server queues every event without reading the pipeline: the
		// job ends here, its steps skipped, its status saying why.
		sink.Line("pipeline", "system", "pipeline skipped: "+why)
		sink.Flush()
		skipped := make([]ci.Step, len(p.Steps))
		for i, s := range p.Steps {
			skipped[i] = ci.Step{Name: s.Name, Status: ci.StatusSkipped}
		}
		a.conclude(run, jobs.Verdict{Status: ci.StatusSuccess, Steps: skipped}, "skipped: "+why)
		return
	}
	if !a.plan(jobCtx, run, p, sink) {
		return
	}
	stepSecrets, err := a.pipelineSecrets(jobCtx, job, p)
	if err != nil {
		sink.Line("pipeline", "system", err.Error())
		sink.Flush()
		a.finish(run, ci.StatusError, err.Error(), nil, nil)
		return
	}
	if pr := job.PullRequest; pr != nil && pr.FromFork && len(p.SecretNames()) > 0 {
		sink.Line("pipeline", "system", fmt.Sprintf("secrets withheld: pull request #%d comes from a fork (%s unset)", pr.Number, strings.Join(p.SecretNames(), ", ")))
	}
	if len(stepSecrets) > 0 {
		vals := append([]string(nil), a.opts.Secrets...)
		for _, v := range stepSecrets {
			vals = append(vals, v)
		}
		masker = runner.NewMasker(vals...)
		sink.Line("pipeline", "system", fmt.Sprintf("secrets: %s (masked in this log)", strings.Join(p.SecretNames(), ", ")))
	}
	sink.Line("pipeline", "system", fmt.Sprintf("running %s of the %s", ci.Plural(len(p.Steps), "step"), p.Origin))
	timing.mark("plan")
	env := append(jobEnv(job), a.opts.Env...)
	if a.opts.GPUs.Total() > 0 {
		env = append(env, gpuEnv(gpus)...)
		if len(gpus) > 0 {
			sink.Line("pipeline", "system", fmt.Sprintf("GPU slots %v (CUDA_VISIBLE_DEVICES)", gpus))
		}
	}
	build := a.prepareBuild(jobCtx, job, ws)
	defer build.release()
	for _, note := range build.Notes {
		sink.Line("pipeline", "system", note)
	}
	env = append(env, build.Env...)
	start, sandboxEnv, err := a.sandboxFor(jobCtx, job, ws, mirrors, keep, build, gpuDevices(a.opts.DevDir, gpus))
	if err != nil {
		msg := "sandbox: " + err.Error()
		sink.Line("pipeline", "system", msg)
		sink.Flush()
		a.retry(run, msg)
		return
	}
	env = append(env, sandboxEnv...)
	if start != nil {
		sink.Line("pipeline", "system", fmt.Sprintf("sandbox: bwrap, own PID namespace, uid %d", a.opts.Sandbox.UID()))
	} else {
		sink.Line("pipeline", "system", "sandbox: off (steps run as the agent's user)")
	}
	up := &uploader{a: a, job: job, ws: ws, token: newUploadToken(), sink: sink, shown: build.Shown}
	if hasArtifacts(p) {
		sctx, cancel := final()
		err := run.AllowUploads(sctx, store.HashUploadToken(up.token))
		cancel()
		if err != nil {
			log.Warn("artifact uploads not allowed", "err", err)
		}
	}
	if keep && job.Commit != "" {
		// Clean, owned by the build user, before any step: what the next
		// job's check compares with (by the commit it was asked for).
		recordPristine(a.opts.WorkDir, ws, job.Commit, build.Shown)
	}
	timing.mark("prepare")
	progress := reportSteps(run, log)
	res := runner.Execute(jobCtx, p, runner.Options{
		AfterStep: up.afterStep,
		Dir:       ws, Sink: sink, Masker: masker, Env: env, PassEnv: a.opts.PassEnv, Start: start, Secrets: stepSecrets, When: when, Concurrency: a.opts.StepConcurrency, Sidecars: a.opts.Sidecars,
		OnStep: progress.send,
	})
	progress.close()
	timing.mark("steps")
	sink.Line("summary", "system", timing.String())
	sink.Flush()
	if cause := context.Cause(jobCtx); cause != nil {
		a.interrupted(run, cause, res.Steps)
		return
	}
	fields := build.stats(res)
	fields["phases"] = timing.field()
	reported := time.Now()
	a.finish(run, res.Status, res.Error, res.Steps, fields)
	log.Debug("job reported", "verdict_and_status_ms", float64(time.Since(reported).Microseconds())/1000)
}

// pipelineSecrets reads the values of the secrets the pipeline's steps name.
// The error never holds a value; a job whose secrets cannot be read ends in
// error rather than run its steps without them.
func (a *Agent) pipelineSecrets(ctx context.Context, job *ci.Job, p *pipeline.Pipeline) (map[string]string, error) {
	names := p.SecretNames()
	if len(names) == 0 {
		return nil, nil
	}
	if pr := job.PullRequest; pr != nil && pr.FromFork {
		// A fork's author controls its pipeline: it must not read ours.
		return nil, nil
	}
	if a.opts.PipelineSecrets == nil {
		return nil, fmt.Errorf("the pipeline names secrets (%s) but this agent has no --secrets-key-file", strings.Join(names, ", "))
	}
	vals, err := a.opts.PipelineSecrets.ForRepo(ctx, job.Repo, names)
	if err != nil {
		return nil, fmt.Errorf("pipeline secrets: %w", err)
	}
	return vals, nil
}

// sandboxFor prepares the sandbox of a job's steps: their HOME, the
// directories they write handed to the build user, and how a step starts
// in a sandbox showing what the steps may see. Without a sandbox it
// returns nothing.
func (a *Agent) sandboxFor(ctx context.Context, job *ci.Job, ws, mirrors string, keep bool, build buildSetup, devices map[string]string) (start func(argv, env []string) (runner.Process, error), env []string, err error) {
	sb := a.opts.Sandbox
	if sb == nil {
		// Unsandboxed steps run as the agent's user: a link serves.
		for name, dir := range build.Shown {
			if err := linkShown(ws, name, dir); err != nil {
				return nil, nil, err
			}
		}
		return nil, nil, nil
	}
	shown := map[string]string{}
	for rel, dir := range build.Shown {
		shown[filepath.Join(ws, rel)] = dir
	}
	writable := build.Writable
	home, err := a.stepHome(ws, keep)
	if err != nil {
		return nil, nil, err
	}
	changed, err := sb.Own(ws)
	if err != nil {
		return nil, nil, err
	}
	if keep && changed > 0 {
		// The checkout wrote these files as the agent; handing them over
		// changed their owner and ctime, which git would take for an edit
		// and rewrite next job, giving cargo new times for old sources.
		// Recording the handed-over state keeps them; an edit by the build
		// still changes the ctime git compares.
		a.opts.Repos.refreshIndex(ctx, mirrors, ws)
	}
	if err := a.giveToBuildUser(append([]string{home}, writable...)...); err != nil {
		return nil, nil, err
	}
	env = []string{"HOME=" + home}
	if sb.UID() != os.Geteuid() {
		// The workspace's git metadata stays the agent's (read-only to
		// steps); git in a step would otherwise refuse it as "dubious".
		env = append(env, "GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=safe.directory", "GIT_CONFIG_VALUE_0=*")
	}
	sjob := sandbox.Job{Dir: ws, Writable: append([]string{home}, writable...), Shown: shown, Devices: devices,
		ReadOnly: []string{mirrorDir(mirrors, job.CloneURL), filepath.Join(ws, ".git")}}
	return func(argv, env []string) (runner.Process, error) {
		p, err := sb.Start(argv, env, sjob)
		if err != nil {
			return runner.Process{}, err
		}
		return runner.Process{Pid: p.Pid, Stdout: p.Stdout, Stderr: p.Stderr, Wait: p.Wait}, nil
	}, env, nil
}

// linkShown makes name (one path component) in the workspace ws a link to
// dir. A file the repository itself has there is left alone: its own
// wins. The workspace is a build's to write: everything goes through its
// directory descriptor, and a link a build left there is replaced, never
// followed.
func linkShown(ws, name, dir string) error {
	d, err := safefs.OpenDir(ws)
	if err != nil {
		return err
	}
	defer d.Close()
	dfd := int(d.Fd())
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			return nil
		}
		if err := unix.Unlinkat(dfd, name, 0); err != nil {
			return fmt.Errorf("replace %s/%s: %w", ws, name, err)
		}
	}
	if err := unix.Symlinkat(dir, dfd, name); err != nil {
		return fmt.Errorf("link %s/%s: %w", ws, name, err)
	}
	return nil
}

// stepHome is the HOME of a sandboxed step: a directory per workspace slot,
// kept with the slot when there is a build cache, else made anew.
func (a *Agent) stepHome(ws string, keep bool) (string, error) {
	home := filepath.Join(a.opts.WorkDir, cache.HomesDir, filepath.Base(ws))
	if !keep {
		if err := os.RemoveAll(home); err != nil {
			return "", err
		}
	}
	return home, os.MkdirAll(home, 0o755)
}

// giveToBuildUser hands the directories a step writes to the sandbox's build
// user (a no-op unless the agent is root).
func (a *Agent) giveToBuildUser(dirs ...string) error {
	for _, d := range dirs {
		if _, err := a.opts.Sandbox.Own(d); err != nil {
			return err
		}
	}
	return nil
}

// watch renews the lease and looks for a cancel until jobCtx ends.
func (a *Agent) watch(jobCtx context.Context, run *jobs.Claimed, interrupt context.CancelCauseFunc) {
	beat := time.NewTicker(a.opts.Jobs.Lease() / 3)
	defer beat.Stop()
	poll := time.NewTicker(a.opts.CancelPoll)
	defer poll.Stop()
	for {
		select {
		case <-jobCtx.Done():
			return
		case <-beat.C:
			err := run.Heartbeat(jobCtx)
			if errors.Is(err, jobs.ErrLeaseLost) {
				interrupt(errLeaseLost)
				return
			}
			if err != nil && jobCtx.Err() == nil {
				a.log.Warn("lease heartbeat", "job_id", run.Job.ID, "err", err)
			}
		case <-poll.C:
			if cancelled, err := run.Cancelled(jobCtx); err == nil && cancelled {
				interrupt(errJobCancelled)
				return
			}
		}
	}
}

// interrupted ends a run stopped from outside the pipeline.
func (a *Agent) interrupted(run *jobs.Claimed, cause error, steps []ci.Step) {
	job := run.Job
	log := a.log.With("job_id", job.ID)
	fctx, cancel := final()
	defer cancel()
	switch {
	case errors.Is(cause, errLeaseLost):
		// Another agent holds the entry now and will write the verdict.
		log.Warn("lease lost; abandoning the job to its new holder")
	case errors.Is(cause, errJobCancelled):
		if err := run.EndCancelled(fctx, steps); err != nil {
			log.Warn("end cancelled job", "err", err)
		}
		log.Info("job cancelled")
		a.postStatus(job.ID, ci.StatusCancelled, "cancelled", job)
	case errors.Is(cause, errShutdown):
		// Pending again and a new entry, in one step: the next agent finds
		// a pending job, not one that looks like it is still running here.
		if err := run.Release(fctx); err != nil {
			log.Error("hand back; the job will be reaped after the lease", "err", err)
			return
		}
		log.Info("agent stopping: job handed back to the queue")
	}
}

// finish records the verdict and acks (one step), then reports the commit
// status.
func (a *Agent) finish(run *jobs.Claimed, status ci.Status, errMsg string, steps []ci.Step, fields map[string]string) {
	a.conclude(run, jobs.Verdict{Status: status, Error: errMsg, Steps: steps, Fields: fields}, errMsg)
}

// conclude is finish with the verdict whole and the commit status's detail
// apart from the job's error (a skipped pipeline passes, saying why).
func (a *Agent) conclude(run *jobs.Claimed, v jobs.Verdict, detail string) {
	job, status := run.Job, v.Status
	fctx, cancel := final()
	defer cancel()
	done, err := run.Finish(fctx, v)
	switch {
	case errors.Is(err, ci.ErrConflict), errors.Is(err, ci.ErrNotFound):
		a.log.Info("job changed status meanwhile; verdict dropped", "job_id", job.ID, "verdict", status)
	case errors.Is(err, jobs.ErrLeaseLost):
		a.log.Warn("lease lost; verdict dropped for the job's new holder", "job_id", job.ID, "verdict", status)
		return
	case err != nil:
		// Without the verdict stored, the entry stays for the reaper:
		// another delivery will run the job again rather than lose it.
		a.log.Error("record verdict", "job_id", job.ID, "err", err)
		return
	}
	a.log.Info("job finished", "job_id", job.ID, "status", status, "error", v.Error)
	if done != nil {
		job = done
	}
	a.postStatus(job.ID, status, detail, job)
}

// retry gives the delivery up for a system failure: back to pending and into
// the queue, or a dead letter when it has been delivered too often.
func (a *Agent) retry(run *jobs.Claimed, reason string) {
	job := run.Job
	fctx, cancel := final()
	defer cancel()
	dead, err := run.Requeue(fctx, reason)
	if err != nil {
		a.log.Error("retry: requeue; the job will be reaped after the lease", "job_id", job.ID, "err", err)
		return
	}
	if dead {
		a.log.Warn("job dead-lettered", "job_id", job.ID, "reason", reason)
		a.postStatus(job.ID, ci.StatusError, reason, job)
		return
	}
	a.log.Warn("system failure; job requeued", "job_id", job.ID, "reason", reason)
}

// postStatus reports the verdict to the forge: stored in the status outbox
// (internal/statuses), which posts it, retrying across outages; a forge
// outage never changes the job.
func (a *Agent) postStatus(jobID string, status ci.Status, detail string, job *ci.Job) {
	if a.opts.Status == nil || job.Commit == "" {
		return
	}
	j := *job
	j.ID, j.Status = jobID, status
	ctx, cancel := final()
	defer cancel()
	st := statuses.ForJob(&j, detail, a.opts.PublicURL, time.Now())
	for _, sha := range []string{job.Commit, job.TagObject} {
		if sha == "" {
			continue
		}
		if err := a.opts.Status.PostStatus(ctx, job.Repo, sha, st); err != nil {
			a.log.Warn("commit status not stored", "job_id", jobID, "err", err)
		}
	}
	if err := statuses.PostAggregate(ctx, a.opts.Store, a.opts.Status, job, a.opts.PublicURL); err != nil {
		a.log.Warn("matrix commit status not stored", "group", job.Group, "err", err)
	}
}

// hasArtifacts reports whether a step of p leaves artifacts.
func hasArtifacts(p *pipeline.Pipeline) bool {
	for _, s := range p.Steps {
		if len(s.Artifacts) > 0 {
			return true
		}
	}
	return false
}

// jobEnv is what every step sees about its job and the event behind it.
func jobEnv(j *ci.Job) []string {
	env := []string{
		"CI=true", "RAIBID=true",
		"RAIBID_JOB_ID=" + j.ID, "RAIBID_REPO=" + j.Repo, "RAIBID_BRANCH=" + j.Branch,
		"RAIBID_COMMIT=" + j.Commit, "RAIBID_ATTEMPT=" + strconv.Itoa(j.Attempt),
		"RAIBID_EVENT=" + j.Event, "RAIBID_TAG=" + j.Tag,
	}
	for k, v := range j.Matrix {
		env = append(env, "RAIBID_MATRIX_"+strings.ToUpper(k)+"="+v)
	}
	if pr := j.PullRequest; pr != nil {
		env = append(env, "RAIBID_PR="+strconv.Itoa(pr.Number), "RAIBID_BASE_BRANCH="+pr.BaseBranch, "RAIBID_HEAD_BRANCH="+pr.HeadBranch)
	} else {
		env = append(env, "RAIBID_PR=", "RAIBID_BASE_BRANCH=", "RAIBID_HEAD_BRANCH=")
	}
	return env
}

func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	if s == "" {
		return "HEAD"
	}
	return s
}

// stepReporter records the steps' states on the job as they change, off
// the steps' own path (a step's start waits for no Redis write): a state
// not yet written is replaced by a newer one, and close waits for the
// last write, so the verdict comes after every state.
type stepReporter struct {
	latest chan []ci.Step
	done   chan struct{}
}

func reportSteps(run *jobs.Claimed, log *slog.Logger) *stepReporter {
	r := &stepReporter{latest: make(chan []ci.Step, 1), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for steps := range r.latest {
			ctx, cancel := final()
			if err := run.Progress(ctx, steps); err != nil && !errors.Is(err, ci.ErrConflict) {
				log.Warn("record steps", "err", err)
			}
			cancel()
		}
	}()
	return r
}

// send queues steps as the state to write, replacing one still queued.
// The pipeline calls it one call at a time.
func (r *stepReporter) send(steps []ci.Step) {
	for {
		select {
		case r.latest <- steps:
			return
		default:
			select {
			case <-r.latest:
			default:
			}
		}
	}
}

// close waits until the last state sent is written.
func (r *stepReporter) close() {
	close(r.latest)
	<-r.done
}
