package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/raibid-labs/raibid-ci/internal/cache"
	"github.com/raibid-labs/raibid-ci/internal/sandbox"
)

// AgentConfig is everything an agent (`raibid agent`, or one of the agents
// of `raibid up`) runs with, built once from flags and environment.
type AgentConfig struct {
	Name      string // the queue consumer name; "" takes host-pid
	RedisURL  string
	GiteaURL  string
	PublicURL string
	// ServerURL is where artifacts are uploaded (default PublicURL).
	ServerURL string
	WorkDir   string
	Registry  string
	// BuildkitAddr is the buildkitd image steps use when there is no
	// docker buildx.
	BuildkitAddr string
	Jobs         JobsConfig
	// AllowLocalClone accepts local paths as clone URLs (raibid up).
	AllowLocalClone bool
	// CloneHosts are other names of the forge (its ROOT_URL host).
	CloneHosts []string
	// Once takes at most one job, waiting up to Wait, touching ReadyFile.
	Once      bool
	Wait      time.Duration
	ReadyFile string
	// Mask names environment variables whose values are masked in logs.
	Mask        []string
	PassEnv     []string
	MaxLogBytes int64
	// StepConcurrency bounds a graph pipeline's steps running at once.
	StepConcurrency int
	// GPUs is the machine's GPU slots; -1 counts `nvidia-smi -L`.
	GPUs int
	// ServiceSidecars: the pod runs the image services (Kubernetes).
	ServiceSidecars bool
	// ShapedPod: the Kubernetes executor made the pod for its job.
	ShapedPod bool
	// Sandbox is bwrap or off; steps run as BuildUser when the agent is root.
	Sandbox   string
	BuildUser string
	// Hidden are paths steps never see besides the work dir and the cache:
	// raibid up's data dir and every --*-file the command was given.
	Hidden         []string
	SecretsKeyFile string
	Cache          CacheConfig
	GiteaToken     Secret
}

// CacheConfig is the agents' build cache.
type CacheConfig struct {
	Dir     string // "" or "off": no cache
	MaxAge  time.Duration
	MaxSize int64
}

// open returns the cache, or nil when it is off.
func (c CacheConfig) open() *cache.Cache {
	if c.Dir == "" || c.Dir == "off" {
		return nil
	}
	return &cache.Cache{Root: c.Dir}
}

// DefaultAgentConfig is AgentConfig's defaults (the flags' defaults).
func DefaultAgentConfig() AgentConfig {
	return AgentConfig{
		RedisURL: "redis://127.0.0.1:6379/0", WorkDir: filepath.Join(os.TempDir(), "raibid-work"),
		Jobs: DefaultJobsConfig(), Wait: 30 * time.Second, ReadyFile: "/tmp/claimed",
		MaxLogBytes: 64 << 20, Sandbox: sandbox.ModeBwrap, BuildUser: "nobody", StepConcurrency: defaultStepConcurrency(), GPUs: -1,
		Cache: CacheConfig{Dir: defaultCacheDir(), MaxAge: 7 * 24 * time.Hour, MaxSize: 50e9},
	}
}

// Validate says what is wrong, naming the flag.
func (c AgentConfig) Validate() error {
	if err := c.Jobs.Validate(); err != nil {
		return err
	}
	switch {
	case c.WorkDir == "":
		return errors.New("--workdir: a directory is needed")
	case c.MaxLogBytes < 2<<20:
		return fmt.Errorf("--max-log-bytes %d: a size of at least 2MiB", c.MaxLogBytes)
	case c.Sandbox != sandbox.ModeBwrap && c.Sandbox != sandbox.ModeOff:
		return fmt.Errorf("--sandbox %q: want bwrap or off", c.Sandbox)
	case c.GPUs < -1 || c.GPUs > 64:
		return fmt.Errorf("--gpus %d: -1 (count nvidia-smi's) or 0 to 64", c.GPUs)
	case c.StepConcurrency < 1:
		return fmt.Errorf("--step-concurrency %d: at least 1", c.StepConcurrency)
	case c.Once && c.Wait <= 0:
		return fmt.Errorf("--wait %s: must be positive with --once", c.Wait)
	}
	return nil
}

// agentConfigFromFlags reads the flags the agent commands declared, and
// the Gitea token, into a validated AgentConfig. Flags a command lacks
// (up has no --once) keep their defaults.
func agentConfigFromFlags(cmd *cobra.Command) (AgentConfig, error) {
	f := cmd.Flags()
	r := readFlags(f)
	c := DefaultAgentConfig()
	var maxLog, dataDir string
	read(r, "redis-url", &c.RedisURL, f.GetString)
	read(r, "gitea-url", &c.GiteaURL, f.GetString)
	read(r, "public-url", &c.PublicURL, f.GetString)
	read(r, "workdir", &c.WorkDir, f.GetString)
	read(r, "registry", &c.Registry, f.GetString)
	read(r, "buildkit-addr", &c.BuildkitAddr, f.GetString)
	read(r, "sandbox", &c.Sandbox, f.GetString)
	read(r, "build-user", &c.BuildUser, f.GetString)
	read(r, "secrets-key-file", &c.SecretsKeyFile, f.GetString)
	c.Jobs = jobsConfigFromFlags(r)
	read(r, "pass-env", &c.PassEnv, f.GetStringSlice)
	read(r, "clone-hosts", &c.CloneHosts, f.GetStringSlice)
	read(r, "step-concurrency", &c.StepConcurrency, f.GetInt)
	read(r, "gpus", &c.GPUs, f.GetInt)
	read(r, "service-sidecars", &c.ServiceSidecars, f.GetBool)
	read(r, "shaped-pod", &c.ShapedPod, f.GetBool)
	read(r, "max-log-bytes", &maxLog, f.GetString)
	// Only `raibid agent` declares these (an agent of its own); raibid up
	// names its agents, clones local paths and has the data dir.
	optional(r, "name", &c.Name, f.GetString)
	optional(r, "server-url", &c.ServerURL, f.GetString)
	optional(r, "ready-file", &c.ReadyFile, f.GetString)
	optional(r, "once", &c.Once, f.GetBool)
	optional(r, "wait", &c.Wait, f.GetDuration)
	optional(r, "allow-local-clone", &c.AllowLocalClone, f.GetBool)
	optional(r, "mask", &c.Mask, f.GetStringSlice)
	optional(r, "data-dir", &dataDir, f.GetString)
	if err := r.Err(); err != nil {
		return c, err
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	c.CloneHosts = nilIfEmpty(c.CloneHosts)
	var err error
	if c.MaxLogBytes, err = cache.ParseSize(maxLog); err != nil {
		return c, &UsageError{fmt.Errorf("--max-log-bytes %q: a size of at least 2MiB", maxLog)}
	}
	if c.Cache, err = cacheConfigFromFlags(r); err != nil {
		return c, err
	}
	if dataDir != "" {
		// raibid up keeps its work dir and cache in its data dir.
		if c.WorkDir == "" {
			c.WorkDir = filepath.Join(dataDir, "work")
		}
		if c.Cache.Dir == "" {
			c.Cache.Dir = filepath.Join(dataDir, "cache")
		}
	}
	c.Hidden = hiddenFromFlags(f)
	c.Mask, c.PassEnv = nilIfEmpty(c.Mask), nilIfEmpty(c.PassEnv)
	if c.GiteaToken, err = loadSecret(cmd, "gitea-token"); err != nil {
		return c, err
	}
	if err := c.Validate(); err != nil {
		return c, &UsageError{err}
	}
	return c, nil
}

// hiddenFromFlags is what of the command's own steps must never see: the
// data dir of raibid up and every --*-file it was given (secrets).
func hiddenFromFlags(f *pflag.FlagSet) []string {
	var out []string
	if fl := f.Lookup("data-dir"); fl != nil && fl.Value.String() != "" {
		out = append(out, fl.Value.String())
	}
	f.VisitAll(func(fl *pflag.Flag) {
		if strings.HasSuffix(fl.Name, "-file") && fl.Value.String() != "" && fl.Name != "ready-file" {
			if p, err := filepath.Abs(fl.Value.String()); err == nil {
				out = append(out, p)
			}
		}
	})
	return out
}

// cacheConfigFromFlags reads the flags addCacheFlags declared.
func cacheConfigFromFlags(r *flagReader) (CacheConfig, error) {
	var c CacheConfig
	var ageS, sizeS string
	read(r, "cache-dir", &c.Dir, r.f.GetString)
	read(r, "cache-max-age", &ageS, r.f.GetString)
	read(r, "cache-max-size", &sizeS, r.f.GetString)
	if err := r.Err(); err != nil {
		return c, err
	}
	var err error
	if c.MaxAge, err = cache.ParseAge(ageS); err != nil {
		return c, &UsageError{fmt.Errorf("--cache-max-age: %w", err)}
	}
	if c.MaxSize, err = cache.ParseSize(sizeS); err != nil {
		return c, &UsageError{fmt.Errorf("--cache-max-size: %w", err)}
	}
	return c, nil
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// defaultStepConcurrency is half the CPUs, and at least 2: on a small box a
// pipeline's independent steps (depends_on) still overlap, since most of a
// step's time is often waiting (a download, a test's sleep), not CPU.
func defaultStepConcurrency() int { return max(runtime.NumCPU()/2, 2) }
