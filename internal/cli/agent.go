package cli

import (
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/raibid-labs/raibid-ci/internal/agent"
	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
	"github.com/raibid-labs/raibid-ci/internal/pipeline"
	"github.com/raibid-labs/raibid-ci/internal/sandbox"
	"github.com/raibid-labs/raibid-ci/internal/secrets"
)

// addAgentFlags are shared by `raibid agent` and `raibid up`.
func addAgentFlags(cmd *cobra.Command, workdir string) {
	f := cmd.Flags()
	f.String("workdir", workdir, "per-job workspaces live here")
	f.String("buildkit-addr", "", "buildkitd the image step uses when there is no docker buildx (tcp://buildkitd:1234)")
	f.String("registry", "", "OCI registry the image step pushes <registry>/<owner>/<repo>:<commit> to, e.g. gitea.local:3000")
	f.String("sandbox", sandbox.ModeBwrap, "how steps are isolated from the agent: bwrap (own PID namespace, no credentials, read-only system) or off")
	f.String("build-user", "nobody", "when the agent runs as root, steps run as this user (name or uid)")
	f.String("max-log-bytes", "64MiB", "cap of one job's log; past it a marker says what was not stored and the last MiB is kept")
	f.StringSlice("clone-hosts", nil, "other names of the forge (host[:port] of Gitea's ROOT_URL): their clone URLs are fetched from --gitea-url")
	f.StringSlice("pass-env", nil, "agent environment variables steps inherit besides PATH, HOME, locale, proxies and toolchain locations")
	f.Bool("service-sidecars", false, "the pod runs the pipeline's image services as sidecars (set by the Kubernetes executor)")
	_ = f.MarkHidden("service-sidecars")
	f.Bool("shaped-pod", false, "the pod was made for the job it claims: a pipeline that needs a GPU or sidecars it lacks is handed to a pod of its own (set by the Kubernetes executor)")
	_ = f.MarkHidden("shaped-pod")
	f.Int("gpus", -1, "GPU slots of this machine, shared by its agents: jobs with resources.gpu wait for a free one (-1: count nvidia-smi -L)")
	f.Int("step-concurrency", defaultStepConcurrency(), "steps of one job running at once when its pipeline uses depends_on (default: half the CPUs, at least 2)")
}

func newAgentCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Claim jobs from the queue and run them",
		Long: "Claim jobs from the Redis stream and run them, one at a time. With --once, take at most\n" +
			"one job (waiting up to --wait) and exit 0: the mode of KEDA ScaledJob pods.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(cmd, true)
			if err != nil {
				return err
			}
			cfg, err := agentConfigFromFlags(cmd)
			if err != nil {
				return err
			}
			rdb, err := connectRedis(cmd.Context(), cfg.RedisURL, 10)
			if err != nil {
				return err
			}
			defer rdb.Close()
			if cfg.Name == "" {
				host, _ := os.Hostname()
				cfg.Name = fmt.Sprintf("%s-%d", host, os.Getpid())
			}
			a, err := newAgent(cfg, rdb, log, gpuSlots(cfg))
			if err != nil {
				return err
			}
			return a.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.String("redis-url", "redis://127.0.0.1:6379/0", "redis://[:password@]host:port/db")
	f.String("name", "", "agent name (default host-pid); the queue consumer name")
	f.Bool("once", false, "take at most one job, then exit 0")
	f.Duration("wait", 30*time.Second, "with --once: how long to wait for a job")
	f.String("ready-file", "/tmp/claimed", "with --once: touched after a job is claimed (readiness probe)")
	f.String("gitea-url", "", "the Gitea instance: clone URLs must be on its host; commit statuses go there")
	f.String("public-url", "", "the server's base URL, for commit status links")
	f.String("server-url", "", "where this agent reaches the server to upload artifacts (default --public-url)")
	f.Bool("allow-local-clone", false, "accept local paths as clone URLs")
	f.StringSlice("mask", nil, "names of environment variables whose values are masked in logs")
	addSecretFlags(f, "gitea-token")
	addJobsFlags(f, "lease of a claimed job (heartbeats renew it)")
	f.String("secrets-key-file", "", "key of the pipeline secrets (the server's file); needed for jobs whose steps name secrets")
	addAgentFlags(cmd, filepath.Join(os.TempDir(), "raibid-work"))
	addCacheFlags(cmd, defaultCacheDir())
	return cmd
}

// gpuSlots is the machine's GPU slots for cfg: --gpus, or nvidia-smi's count.
func gpuSlots(cfg AgentConfig) *agent.GPUSlots {
	n := cfg.GPUs
	if n < 0 {
		n = agent.DetectGPUs()
	}
	return agent.NewGPUSlots(n)
}

// newAgent builds an agent from cfg; gpus are the machine's GPU slots,
// shared by every agent of the process.
func newAgent(cfg AgentConfig, rdb *redis.Client, log *slog.Logger, gpus *agent.GPUSlots) (*agent.Agent, error) {
	st, _, lc := cfg.Jobs.open(rdb)
	c := cfg.Cache.open()
	opts := agent.Options{
		Name: cfg.Name, Jobs: lc, Store: st, Logger: log, WorkDir: cfg.WorkDir, GPUs: gpus,
		Repos:     agent.Repos{ForgeURL: cfg.GiteaURL, Token: cfg.GiteaToken.Reveal(), AllowLocal: cfg.AllowLocalClone, Hosts: cfg.CloneHosts},
		PublicURL: cfg.PublicURL, ServerURL: cfg.ServerURL, Cache: c, CacheMaxAge: cfg.Cache.MaxAge, CacheMaxSize: cfg.Cache.MaxSize,
		PassEnv: cfg.PassEnv, MaxLogBytes: cfg.MaxLogBytes, StepConcurrency: cfg.StepConcurrency,
		Sidecars: cfg.ServiceSidecars, ShapedPod: cfg.ShapedPod,
		Once: cfg.Once, Wait: cfg.Wait, ReadyFile: cfg.ReadyFile,
	}
	opts.Tools = func() pipeline.Tools {
		t := pipeline.DetectTools()
		t.Registry, t.BuildkitAddr = cfg.Registry, cfg.BuildkitAddr
		return t
	}
	if cfg.GiteaURL != "" && cfg.GiteaToken != "" {
		gt := gitea.NewClient(cfg.GiteaURL, cfg.GiteaToken.Reveal(), log)
		opts.Status = cfg.Jobs.openStatuses(rdb, gt, log)
		opts.Packages = gt
	}
	for _, n := range cfg.Mask {
		if v := os.Getenv(n); v != "" {
			opts.Secrets = append(opts.Secrets, v)
		}
	}
	if cfg.SecretsKeyFile != "" {
		opts.PipelineSecrets = secrets.NewStore(rdb, cfg.Jobs.KeyPrefix, secrets.FileKeys(cfg.SecretsKeyFile))
	}
	// Every agent knows the GPU stream: one without GPUs hands the jobs
	// whose pipeline needs one there (it claims from it only with GPUs).
	opts.GPUJobs = cfg.Jobs.openGPU(st, rdb)
	var err error
	if opts.Sandbox, err = newSandbox(cfg, log); err != nil {
		return nil, err
	}
	if rh := rustupHome(); opts.Sandbox != nil && rh != "" && os.Getenv("RUSTUP_HOME") == "" {
		// Steps get a HOME of their own; rustup's proxies must still find
		// the agent's toolchains.
		opts.Env = append(opts.Env, "RUSTUP_HOME="+rh)
	}
	return agent.New(opts), nil
}

// newSandbox builds the step sandbox, or nil with --sandbox=off. It hides
// from steps everything of the agent's that holds a credential or another
// job's data: cfg.Hidden (the data dir of raibid up, every --*-file), the
// agent's home (its toolchains on PATH stay visible, read-only),
// Kubernetes' and Docker's secret mounts, the work dir and the cache root
// (each job sees only its own workspace and cache dirs).
func newSandbox(cfg AgentConfig, log *slog.Logger) (*sandbox.Sandbox, error) {
	if cfg.Sandbox == sandbox.ModeOff {
		log.Warn("sandbox off: builds run unsandboxed as this agent's user and can read its credentials and stop it")
		return nil, nil
	}
	o := sandbox.Options{Hidden: append([]string{cfg.WorkDir, "/var/run/secrets", "/run/secrets"}, cfg.Hidden...)}
	if c := cfg.Cache.open(); c != nil {
		o.Hidden = append(o.Hidden, c.Root)
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "/" {
		home = ""
	}
	if home != "" {
		o.Hidden = append(o.Hidden, home)
	}
	// Toolchains: every absolute PATH entry and the version managers' roots
	// they lead into (pyenv's shims need its libexec and versions), and
	// rustup's home (its proxies on PATH are copies, not links; steps get
	// RUSTUP_HOME pointing at it).
	o.ReadOnly = append(o.ReadOnly, sandbox.ToolchainRoots(os.Getenv("PATH"), home, os.Getenv)...)
	if rh := rustupHome(); rh != "" {
		o.ReadOnly = append(o.ReadOnly, rh)
	}
	if cfg.BuildUser != "" {
		uid, gid, err := lookupUser(cfg.BuildUser)
		if err != nil {
			return nil, &UsageError{fmt.Errorf("--build-user %s: %w", cfg.BuildUser, err)}
		}
		o.UID, o.GID = uid, gid
	}
	return sandbox.New(o)
}

// rustupHome is where rustup keeps its toolchains for this agent.
func rustupHome() string {
	if h := os.Getenv("RUSTUP_HOME"); h != "" {
		return h
	}
	if home, err := os.UserHomeDir(); err == nil {
		if st, err := os.Stat(filepath.Join(home, ".rustup")); err == nil && st.IsDir() {
			return filepath.Join(home, ".rustup")
		}
	}
	return ""
}

// lookupUser resolves a user name or numeric uid to its uid and primary gid.
func lookupUser(name string) (uid, gid int, err error) {
	u, err := user.Lookup(name)
	if err != nil {
		if u, err = user.LookupId(name); err != nil {
			return 0, 0, fmt.Errorf("no such user")
		}
	}
	uid, err = strconv.Atoi(u.Uid)
	if err != nil {
		return 0, 0, err
	}
	gid, err = strconv.Atoi(u.Gid)
	if err != nil {
		return 0, 0, err
	}
	if uid == 0 {
		return 0, 0, fmt.Errorf("steps must not run as root")
	}
	return uid, gid, nil
}
