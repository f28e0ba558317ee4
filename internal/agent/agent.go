// Package agent runs jobs: it claims one through internal/jobs (the job
// marked running and its queue entry leased in one step), keeps the lease
// with heartbeats, clones the commit into a workspace slot, plans it (when:,
// matrix, GPU and sidecar hand-overs), runs the pipeline in the step sandbox,
// streams the output to the job's log, and records the verdict and acks in
// one step; commit statuses go through the outbox (internal/statuses). It
// never imports the server: it talks to Redis only, through jobs, the log
// store and the outbox.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/cache"
	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
	"github.com/raibid-labs/raibid-ci/internal/jobs"
	"github.com/raibid-labs/raibid-ci/internal/pipeline"
	"github.com/raibid-labs/raibid-ci/internal/queue"
	"github.com/raibid-labs/raibid-ci/internal/sandbox"
	"github.com/raibid-labs/raibid-ci/internal/secrets"
	"github.com/raibid-labs/raibid-ci/internal/statuses"
	"github.com/raibid-labs/raibid-ci/internal/store"
)

// Jobs is what an agent needs of the job lifecycle: a claim hands it a
// *jobs.Claimed, whose methods are every step it may take on that job
// (heartbeat, progress, finish, requeue, release).
type Jobs interface {
	Claim(ctx context.Context, agent string, block time.Duration, skipped jobs.Skipped) (*jobs.Claimed, error)
	Lease() time.Duration
}

// Store is what an agent writes besides its jobs' lifecycle — their logs
// and its own heartbeat — and reads: a matrix's other jobs (the aggregate
// commit status).
type Store interface {
	List(ctx context.Context, f store.Filter) ([]*ci.Job, string, error)
	AppendLogBatch(ctx context.Context, jobID, writer string, batch int64, lines []ci.LogLine) (int64, error)
	AgentHeartbeat(ctx context.Context, a store.Agent, ttl time.Duration) error
	RemoveAgent(ctx context.Context, name string) error
}

// SecretSource gives the values of the pipeline secrets a repository's
// steps name (the repository's own, else its organisation's).
type SecretSource interface {
	ForRepo(ctx context.Context, repo string, names []string) (map[string]string, error)
}

// StatusPoster reports commit statuses to the forge.
type StatusPoster interface {
	PostStatus(ctx context.Context, repo, sha string, st gitea.CommitStatus) error
}

// statusOutbox is a StatusPoster that stores statuses to post them later
// (internal/statuses): the agent runs its poster while it runs, and drains
// it before it stops.
type statusOutbox interface {
	StatusPoster
	Run(ctx context.Context, poll time.Duration)
	Drain(ctx context.Context) (int, error)
}

var (
	_ Jobs         = (*jobs.Lifecycle)(nil)
	_ Store        = (*store.Store)(nil)
	_ StatusPoster = (*gitea.Client)(nil)
	_ statusOutbox = (*statuses.Outbox)(nil)
	_ SecretSource = (*secrets.Store)(nil)
)

// Options configure an Agent. Jobs, Store and Name are required.
type Options struct {
	Name string
	Jobs Jobs
	// GPUJobs and GPUs, when set, let the agent take jobs that need a GPU
	// (their own stream) whenever enough of the machine's GPU slots are
	// free. Without GPUs, GPUJobs is where the jobs whose pipeline needs one
	// are handed.
	GPUJobs Jobs
	GPUs    *GPUSlots
	// DevDir is where the GPUs' device nodes are (default /dev): a job's
	// sandbox shows the nodes of the slots it holds.
	DevDir string
	Store  Store
	Status StatusPoster // nil: no commit statuses
	Logger *slog.Logger
	// WorkDir holds one directory per running job (default os.TempDir()/raibid-work).
	WorkDir string
	Repos   Repos
	// Tools says which optional tools the default Rust pipeline may use; it
	// is called at most once, when the first Rust pipeline needs it (finding
	// out runs cargo three times, which would double the agent's start time).
	Tools func() pipeline.Tools
	// Secrets are masked in logs, with the forge token.
	Secrets []string
	// PipelineSecrets, when set, gives steps the secrets they name.
	PipelineSecrets SecretSource
	// PublicURL is the server's base URL for commit status links.
	PublicURL string
	// ServerURL is where the agent reaches the server to upload artifacts
	// (default PublicURL).
	ServerURL string
	// Packages, when set, publishes artifacts of steps with publish: gitea.
	Packages PackagePublisher
	// Once: take at most one job, waiting up to Wait for it, then return.
	Once bool
	Wait time.Duration
	// ReadyFile is touched after a job is claimed in Once mode, so a
	// Kubernetes readiness probe tells KEDA the pod is no longer idle.
	ReadyFile string
	// Cache, when set, keeps a cargo target directory per repository and
	// toolchain between jobs; CacheMaxAge and CacheMaxSize prune it at start
	// and hourly (0: no limit).
	Cache        *cache.Cache
	CacheMaxAge  time.Duration
	CacheMaxSize int64
	// Sandbox, when set, runs every step in it (see internal/sandbox); nil
	// runs steps as the agent's own user, which only --sandbox=off allows.
	Sandbox *sandbox.Sandbox
	// PassEnv names agent variables steps inherit beyond runner.PassedEnv.
	PassEnv []string
	// Env adds NAME=value variables every step sees (e.g. RUSTUP_HOME when
	// the sandbox gives steps a HOME of their own).
	Env []string
	// MaxLogBytes caps one job's log (default 64 MiB); past it the last
	// MiB of the output is kept after a marker line.
	MaxLogBytes int64
	// Sidecars: the pod runs the pipeline's image services (the Kubernetes
	// executor sets RAIBID_SERVICE_SIDECARS); the agent starts none of them.
	Sidecars bool
	// ShapedPod: the Kubernetes executor made this pod for the job it
	// claims, with the sidecars the job named; a pipeline that needs others
	// is handed to a pod of its own (RAIBID_SHAPED_POD).
	ShapedPod bool
	// StepConcurrency bounds the steps of one job running at once when its
	// pipeline is a graph (depends_on); default half the CPUs.
	StepConcurrency int
	// CancelPoll is how often a running job's status is checked for a cancel
	// (default 250 ms).
	CancelPoll time.Duration
	// ClaimBlock bounds one blocking claim (default 5 s); it is also how long
	// an idle agent takes to notice shutdown.
	ClaimBlock time.Duration
}

// Agent consumes jobs, one at a time.
type Agent struct {
	opts    Options
	log     *slog.Logger
	started time.Time
	// toolchains prepare each job's language-specific caches.
	toolchains []toolchain
	mu         sync.Mutex
	current    string
	// changed wakes the record loop when current changes, so dashboards
	// see an agent busy or idle when it is, not at the next heartbeat.
	changed chan struct{}
}

// New returns an agent.
func New(opts Options) *Agent {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.WorkDir == "" {
		opts.WorkDir = os.TempDir() + "/raibid-work"
	}
	if opts.ServerURL == "" {
		opts.ServerURL = opts.PublicURL
	}
	if opts.DevDir == "" {
		opts.DevDir = "/dev"
	}
	if opts.StepConcurrency <= 0 {
		opts.StepConcurrency = max(runtime.NumCPU()/2, 2)
	}
	if opts.CancelPoll <= 0 {
		opts.CancelPoll = 250 * time.Millisecond
	}
	if opts.ClaimBlock <= 0 {
		opts.ClaimBlock = 5 * time.Second
	}
	if opts.Wait <= 0 {
		opts.Wait = 30 * time.Second
	}
	if opts.Tools == nil {
		opts.Tools = func() pipeline.Tools { return pipeline.Tools{} }
	}
	opts.Tools = sync.OnceValue(opts.Tools)
	if opts.Repos.Token != "" {
		opts.Secrets = append(opts.Secrets, opts.Repos.Token)
	}
	a := &Agent{opts: opts, log: opts.Logger.With("agent", opts.Name), started: time.Now(), changed: make(chan struct{}, 1)}
	a.toolchains = []toolchain{rustBuild{a}}
	return a
}

// Run claims and runs jobs until ctx ends (or, in Once mode, after one job or
// Wait without one). A running job is handed back to the queue on shutdown.
func (a *Agent) Run(ctx context.Context) error {
	if err := os.MkdirAll(a.opts.WorkDir, 0o755); err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	// The sandbox set up ahead for the next step goes with the agent.
	defer a.opts.Sandbox.Close()
	beatCtx, stopBeat := context.WithCancel(context.Background())
	beatDone := make(chan struct{})
	go func() { defer close(beatDone); a.recordLoop(beatCtx) }()
	defer func() {
		stopBeat()
		<-beatDone
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.opts.Store.RemoveAgent(fctx, a.opts.Name)
	}()

	if a.opts.Cache != nil && (a.opts.CacheMaxAge > 0 || a.opts.CacheMaxSize > 0) {
		go a.pruneLoop(beatCtx)
	}
	if out, ok := a.opts.Status.(statusOutbox); ok {
		postCtx, stopPosting := context.WithCancel(context.Background())
		posted := make(chan struct{})
		go func() { defer close(posted); out.Run(postCtx, time.Second) }()
		defer func() {
			stopPosting()
			<-posted
			// The statuses of the last job go out before the agent does
			// (a pod's agent exits after one job); what does not make it in
			// time stays in the outbox for the server's poster.
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for fctx.Err() == nil {
				if n, err := out.Drain(fctx); n == 0 || err != nil {
					break
				}
			}
		}()
	}
	deadline := time.Now().Add(a.opts.Wait)
	a.log.Debug("waiting for work", "since_start", time.Since(a.started))
	for ctx.Err() == nil {
		block := a.opts.ClaimBlock
		if a.opts.Once {
			left := time.Until(deadline)
			if left <= 0 {
				a.log.Info("no job within the wait; exiting", "wait", a.opts.Wait)
				return nil
			}
			block = min(block, left)
		}
		run, gpus, err := a.claim(ctx, block)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			a.log.Warn("claim failed; retrying", "err", err)
			sleep(ctx, time.Second)
			continue
		}
		if run == nil {
			continue
		}
		if a.opts.Once && a.opts.ReadyFile != "" {
			if err := os.WriteFile(a.opts.ReadyFile, []byte(run.Job.ID+"\n"), 0o644); err != nil {
				a.log.Warn("ready file", "err", err)
			}
		}
		a.handle(ctx, run, gpus)
		a.opts.GPUs.Give(gpus)
		if a.opts.Once {
			return nil
		}
	}
	return nil
}

// pruneLoop keeps the build cache within its limits: at start, then hourly.
func (a *Agent) pruneLoop(ctx context.Context) {
	for {
		removed, err := a.opts.Cache.Prune(a.opts.WorkDir, a.opts.CacheMaxAge, a.opts.CacheMaxSize, time.Now())
		if err != nil {
			a.log.Warn("cache prune", "err", err)
		}
		for _, e := range removed {
			a.log.Info("cache pruned", "dir", e.Path, "bytes", e.Size, "last_used", e.LastUsed)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Hour):
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// recordLoop keeps agent:<name> alive for dashboards.
func (a *Agent) recordLoop(ctx context.Context) {
	interval := a.opts.Jobs.Lease() / 3
	for {
		a.mu.Lock()
		cur := a.current
		a.mu.Unlock()
		status := "idle"
		if cur != "" {
			status = "busy"
		}
		host, _ := os.Hostname()
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := a.opts.Store.AgentHeartbeat(wctx, store.Agent{Name: a.opts.Name, Status: status,
			CurrentJob: cur, StartedAt: a.started, Host: host, Sandbox: a.SandboxMode(),
			GPUs: a.opts.GPUs.Total(), GPUsBusy: a.opts.GPUs.InUse()}, 3*interval); err != nil && ctx.Err() == nil {
			a.log.Warn("agent heartbeat", "err", err)
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-a.changed:
		case <-time.After(interval):
		}
	}
}

// SandboxMode is how this agent isolates steps: "bwrap" or "off".
func (a *Agent) SandboxMode() string {
	if a.opts.Sandbox == nil {
		return sandbox.ModeOff
	}
	return sandbox.ModeBwrap
}

func (a *Agent) setCurrent(id string) {
	a.mu.Lock()
	a.current = id
	a.mu.Unlock()
	select {
	case a.changed <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// Why a job's run was interrupted.
var (
	errLeaseLost    = errors.New("lease lost to another agent")
	errJobCancelled = errors.New("job cancelled")
	errShutdown     = errors.New("agent shutting down")
)

// final is a detached, bounded context for a job's last writes, so a job
// interrupted by shutdown still records how it ended.
func final() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

// claim takes the next job: first, when a GPU slot is free, one that
// needs a GPU (a short wait), then any other (shorter waits when there are
// GPUs, so GPU jobs are not kept waiting behind an idle CPU claim). It
// returns the GPU slots the job holds.
func (a *Agent) claim(ctx context.Context, block time.Duration) (*jobs.Claimed, []int, error) {
	if a.opts.GPUJobs == nil || a.opts.GPUs.Total() == 0 {
		run, err := a.opts.Jobs.Claim(ctx, a.opts.Name, block, a.skipped)
		return run, nil, err
	}
	if ids, ok := a.opts.GPUs.Take(1); ok {
		run, err := a.opts.GPUJobs.Claim(ctx, a.opts.Name, 200*time.Millisecond, a.skipped)
		if err != nil || run == nil {
			a.opts.GPUs.Give(ids)
			if err != nil {
				return nil, nil, err
			}
		} else {
			if run.Job.GPUs > a.opts.GPUs.Total() {
				a.opts.GPUs.Give(ids)
				fctx, cancel := final()
				defer cancel()
				msg := fmt.Sprintf("the job needs %d GPUs; the agents here have %d", run.Job.GPUs, a.opts.GPUs.Total())
				_, err := run.Finish(fctx, jobs.Verdict{Status: ci.StatusError, Error: msg})
				return nil, nil, err
			}
			if more := run.Job.GPUs - 1; more > 0 {
				extra, ok := a.opts.GPUs.Take(more)
				if !ok {
					// Not enough free slots here now: back to the queue
					// for this agent or another, not counted as a delivery.
					a.opts.GPUs.Give(ids)
					fctx, cancel := final()
					defer cancel()
					err := run.Release(fctx)
					sleep(ctx, time.Second) // until a slot frees
					return nil, nil, err
				}
				ids = append(ids, extra...)
			}
			return run, ids, nil
		}
	}
	run, err := a.opts.Jobs.Claim(ctx, a.opts.Name, min(block, time.Second), a.skipped)
	return run, nil, err
}

// skipped logs a claimed entry that did not start (see jobs.Skipped).
func (a *Agent) skipped(d *queue.Delivery, why string) {
	a.log.Info("queue entry skipped", "job_id", d.JobID(), "entry", d.ID, "why", why)
}
