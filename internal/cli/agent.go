package cli

import (
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/raibid-labs/raibid-ci/internal/agent"
	"github.com/raibid-labs/raibid-ci/internal/cache"
	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
	"github.com/raibid-labs/raibid-ci/internal/jobs"
	"github.com/raibid-labs/raibid-ci/internal/pipeline"
	"github.com/raibid-labs/raibid-ci/internal/queue"
	"github.com/raibid-labs/raibid-ci/internal/sandbox"
	"github.com/raibid-labs/raibid-ci/internal/secrets"
)

// addAgentFlags are shared by `raibid agent` and `raibid up`.
func addAgentFlags(cmd *cobra.Command, workdir string) {
	f := cmd.Flags()
	f.String("workdir", workdir, "per-job workspaces live here")
	f.String("registry", "", "OCI registry the image step pushes <registry>/<owner>/<repo>:<commit> to, e.g. gitea.local:3000")
	f.String("sandbox", sandbox.ModeBwrap, "how steps are isolated from the agent: bwrap (own PID namespace, no credentials, read-only system) or off")
	f.String("build-user", "nobody", "when the agent runs as root, steps run as this user (name or uid)")
	f.String("max-log-bytes", "64MiB", "cap of one job's log; past it a marker says what was not stored and the last MiB is kept")
	f.StringSlice("pass-env", nil, "agent environment variables steps inherit besides PATH, HOME, locale, proxies and toolchain locations")
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
			f := cmd.Flags()
			redisURL, _ := f.GetString("redis-url")
			rdb, err := connectRedis(cmd.Context(), redisURL, 10)
			if err != nil {
				return err
			}
			defer rdb.Close()
			name, _ := f.GetString("name")
			if name == "" {
				host, _ := os.Hostname()
				name = fmt.Sprintf("%s-%d", host, os.Getpid())
			}
			a, err := buildAgent(cmd, rdb, log, name, false)
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
	f.String("key-prefix", "", "prefix of every Redis key")
	f.Duration("lease", queue.DefaultLease, "lease of a claimed job (heartbeats renew it)")
	f.Int("max-deliveries", jobs.DefaultMaxDeliveries, "deliveries of one job before it becomes a dead letter")
	f.Bool("allow-local-clone", false, "accept local paths as clone URLs")
	f.StringSlice("mask", nil, "names of environment variables whose values are masked in logs")
	addSecretFlags(f, "gitea-token")
	addRetentionFlags(f)
	f.String("secrets-key-file", "", "key of the pipeline secrets (the server's file); needed for jobs whose steps name secrets")
	addAgentFlags(cmd, filepath.Join(os.TempDir(), "raibid-work"))
	addCacheFlags(cmd, defaultCacheDir())
	return cmd
}

// buildAgent makes an agent from the flags both `agent` and `up` have.
func buildAgent(cmd *cobra.Command, rdb *redis.Client, log *slog.Logger, name string, local bool) (*agent.Agent, error) {
	f := cmd.Flags()
	prefix, _ := f.GetString("key-prefix")
	lease, _ := f.GetDuration("lease")
	giteaURL, _ := f.GetString("gitea-url")
	publicURL, _ := f.GetString("public-url")
	workdir, _ := f.GetString("workdir")
	registry, _ := f.GetString("registry")
	allowLocal := local
	if f.Lookup("allow-local-clone") != nil {
		allowLocal, _ = f.GetBool("allow-local-clone")
		allowLocal = allowLocal || local
	}
	if lease < time.Second {
		return nil, &UsageError{fmt.Errorf("--lease %s: must be at least 1s", lease)}
	}
	st, _, lc := lifecycle(cmd, rdb)
	token, err := secret(cmd, "gitea-token")
	if err != nil {
		return nil, err
	}
	opts := agent.Options{
		Name: name, Jobs: lc, Store: st, Logger: log, WorkDir: workdir,
		Repos:     agent.Repos{ForgeURL: giteaURL, Token: token, AllowLocal: allowLocal},
		PublicURL: strings.TrimRight(publicURL, "/"),
	}
	c, age, size, err := cacheFromFlags(cmd)
	if err != nil {
		return nil, err
	}
	opts.Cache, opts.CacheMaxAge, opts.CacheMaxSize = c, age, size
	opts.Tools = func() pipeline.Tools {
		t := pipeline.DetectTools()
		t.Registry = registry
		return t
	}
	if giteaURL != "" && token != "" {
		opts.Status = gitea.NewClient(giteaURL, token, log)
	}
	if f.Lookup("mask") != nil {
		names, _ := f.GetStringSlice("mask")
		for _, n := range names {
			if v := os.Getenv(n); v != "" {
				opts.Secrets = append(opts.Secrets, v)
			}
		}
	}
	opts.PassEnv, _ = f.GetStringSlice("pass-env")
	maxLog, _ := f.GetString("max-log-bytes")
	if opts.MaxLogBytes, err = cache.ParseSize(maxLog); err != nil || opts.MaxLogBytes < 2<<20 {
		return nil, &UsageError{fmt.Errorf("--max-log-bytes %q: a size of at least 2MiB", maxLog)}
	}
	if keyFile, _ := f.GetString("secrets-key-file"); keyFile != "" {
		opts.PipelineSecrets = secrets.NewStore(rdb, prefix, secrets.FileKeys(keyFile))
	}
	if opts.Sandbox, err = sandboxFromFlags(cmd, workdir, c, log); err != nil {
		return nil, err
	}
	if rh := rustupHome(); opts.Sandbox != nil && rh != "" && os.Getenv("RUSTUP_HOME") == "" {
		// Steps get a HOME of their own; rustup's proxies must still find
		// the agent's toolchains.
		opts.Env = append(opts.Env, "RUSTUP_HOME="+rh)
	}
	if f.Lookup("once") != nil {
		opts.Once, _ = f.GetBool("once")
		opts.Wait, _ = f.GetDuration("wait")
		opts.ReadyFile, _ = f.GetString("ready-file")
	}
	return agent.New(opts), nil
}

// sandboxFromFlags builds the step sandbox, or nil with --sandbox=off. It
// hides from steps everything of the agent's that holds a credential or
// another job's data: the data dir of raibid up, every --*-file the command
// was given, the agent's home (its toolchains on PATH stay visible,
// read-only), Kubernetes' and Docker's secret mounts, the work dir and the
// cache root (each job sees only its own workspace and cache dirs).
func sandboxFromFlags(cmd *cobra.Command, workdir string, c *cache.Cache, log *slog.Logger) (*sandbox.Sandbox, error) {
	f := cmd.Flags()
	mode, _ := f.GetString("sandbox")
	switch mode {
	case sandbox.ModeOff:
		log.Warn("sandbox off: builds run unsandboxed as this agent's user and can read its credentials and stop it")
		return nil, nil
	case sandbox.ModeBwrap:
	default:
		return nil, &UsageError{fmt.Errorf("--sandbox %q: want bwrap or off", mode)}
	}
	o := sandbox.Options{Hidden: []string{workdir, "/var/run/secrets", "/run/secrets"}}
	if c != nil {
		o.Hidden = append(o.Hidden, c.Root)
	}
	if fl := f.Lookup("data-dir"); fl != nil {
		o.Hidden = append(o.Hidden, fl.Value.String())
	}
	f.VisitAll(func(fl *pflag.Flag) {
		if strings.HasSuffix(fl.Name, "-file") && fl.Value.String() != "" && fl.Name != "ready-file" {
			if p, err := filepath.Abs(fl.Value.String()); err == nil {
				o.Hidden = append(o.Hidden, p)
			}
		}
	})
	if home, err := os.UserHomeDir(); err == nil && home != "/" {
		o.Hidden = append(o.Hidden, home)
	}
	// Toolchains: every absolute PATH entry, and rustup's home (its proxies
	// on PATH need it; steps get RUSTUP_HOME pointing at it).
	for _, p := range filepath.SplitList(os.Getenv("PATH")) {
		if filepath.IsAbs(p) {
			o.ReadOnly = append(o.ReadOnly, p)
		}
	}
	if rh := rustupHome(); rh != "" {
		o.ReadOnly = append(o.ReadOnly, rh)
	}
	if name, _ := f.GetString("build-user"); name != "" {
		uid, gid, err := lookupUser(name)
		if err != nil {
			return nil, &UsageError{fmt.Errorf("--build-user %s: %w", name, err)}
		}
		o.UID, o.GID = uid, gid
	}
	sb, err := sandbox.New(o)
	if err != nil {
		return nil, err
	}
	return sb, nil
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
