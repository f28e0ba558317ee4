package cli

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/raibid-labs/raibid-ci/internal/artifacts"
	"github.com/raibid-labs/raibid-ci/internal/cache"
	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
	"github.com/raibid-labs/raibid-ci/internal/forge/github"
	"github.com/raibid-labs/raibid-ci/internal/mirror"
	"github.com/raibid-labs/raibid-ci/internal/server"
)

// ServerConfig is everything `raibid server` (and the server of `raibid up`)
// runs with, built once from flags and environment; nothing reads a flag
// after it.
type ServerConfig struct {
	Addr      string
	RedisURL  string
	GiteaURL  string
	PublicURL string
	UIPublic  bool
	// AllowLocalClones lets manual jobs name local checkouts (raibid up).
	AllowLocalClones bool
	Jobs             JobsConfig
	// Limits against slow or oversized clients.
	HeaderTimeout     time.Duration
	BodyTimeout       time.Duration
	BodyBytesInFlight int64
	// SecretsKeyFile keys the pipeline secrets; "" turns their API off.
	SecretsKeyFile string
	// Artifacts: where uploads are kept, how long, how much per job.
	ArtifactsDir      string
	ArtifactRetention time.Duration
	ArtifactMaxBytes  int64
	Mirrors           MirrorConfig
	Kube              KubeConfig
	// Secrets are loaded once, from RAIBID_* or --*-file.
	WebhookSecret       Secret
	APIToken            Secret
	GitHubWebhookSecret Secret
	GiteaToken          Secret
}

// MirrorConfig is the server's GitHub → Gitea mirroring.
type MirrorConfig struct {
	File           string // mirrors.yaml; "" turns mirroring off
	Rescan         time.Duration
	GitHubAPIURL   string
	MigrateTimeout time.Duration
	GitHubToken    Secret
}

// KubeConfig is where agents come from on Kubernetes.
type KubeConfig struct {
	Executor       string // none, keda or kubernetes
	Namespace      string
	ScaledJob      string
	AgentImage     string
	AgentRedisURL  string
	RedisSecret    string
	ForgeSecret    string
	ConfigMap      string
	ServiceAccount string
	PriorityClass  string
	CachePVC       string
	MaxAgents      int
}

// DefaultServerConfig is ServerConfig's defaults (the flags' defaults).
func DefaultServerConfig() ServerConfig {
	return ServerConfig{
		Addr: ":8080", RedisURL: "redis://127.0.0.1:6379/0", Jobs: DefaultJobsConfig(),
		HeaderTimeout: server.DefaultHeaderTimeout, BodyTimeout: server.DefaultBodyTimeout,
		BodyBytesInFlight: server.DefaultBodyBytesInFlight,
		ArtifactsDir:      filepath.Join(DefaultDataDir(), "artifacts"), ArtifactRetention: artifacts.DefaultRetention,
		ArtifactMaxBytes: artifacts.DefaultMaxJobBytes,
		Mirrors: MirrorConfig{Rescan: mirror.DefaultRescan, GitHubAPIURL: github.DefaultAPIURL,
			MigrateTimeout: gitea.DefaultMigrateTimeout},
		Kube: KubeConfig{Executor: executorNone, Namespace: "ci", ScaledJob: "raibid-agent",
			RedisSecret: "redis-auth", ForgeSecret: "raibid-secrets", ConfigMap: "raibid-config", ServiceAccount: "raibid-agent",
			PriorityClass: "raibid-agent", CachePVC: "raibid-cache", MaxAgents: 6},
	}
}

// Validate says what is wrong, naming the flag.
func (c ServerConfig) Validate() error {
	if err := c.Jobs.Validate(); err != nil {
		return err
	}
	if c.Addr == "" {
		return errors.New("--addr: a listen address is needed")
	}
	for flag, u := range map[string]string{"--gitea-url": c.GiteaURL, "--public-url": c.PublicURL} {
		if u == "" {
			continue
		}
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return fmt.Errorf("%s %q: want an http(s) URL", flag, u)
		}
	}
	if c.BodyBytesInFlight <= 0 || c.HeaderTimeout <= 0 || c.BodyTimeout <= 0 {
		return errors.New("--header-timeout, --body-timeout and --body-bytes-in-flight must be positive")
	}
	if c.Mirrors.File != "" && c.GiteaURL == "" {
		return errors.New("--mirrors: --gitea-url (or RAIBID_GITEA_URL) is needed for mirroring")
	}
	switch c.Kube.Executor {
	case executorNone, "", executorKEDA, executorKubernetes:
	default:
		return fmt.Errorf("--executor %q: use none, keda or kubernetes", c.Kube.Executor)
	}
	if c.Kube.MaxAgents < 0 {
		return fmt.Errorf("--max-agents %d: must not be negative", c.Kube.MaxAgents)
	}
	return nil
}

// serverConfigFromFlags reads the flags addServerFlags declared, and the
// secrets, into a validated ServerConfig.
func serverConfigFromFlags(cmd *cobra.Command) (ServerConfig, error) {
	f := cmd.Flags()
	c := DefaultServerConfig()
	c.Addr, _ = f.GetString("addr")
	c.RedisURL, _ = f.GetString("redis-url")
	c.GiteaURL, _ = f.GetString("gitea-url")
	c.PublicURL, _ = f.GetString("public-url")
	c.UIPublic, _ = f.GetBool("ui-public")
	c.Jobs = jobsConfigFromFlags(f)
	c.HeaderTimeout, _ = f.GetDuration("header-timeout")
	c.BodyTimeout, _ = f.GetDuration("body-timeout")
	inFlight, _ := f.GetString("body-bytes-in-flight")
	var err error
	if c.BodyBytesInFlight, err = cache.ParseSize(inFlight); err != nil {
		return c, &UsageError{fmt.Errorf("--body-bytes-in-flight: %w", err)}
	}
	c.SecretsKeyFile, _ = f.GetString("secrets-key-file")
	c.ArtifactsDir, _ = f.GetString("artifacts-dir")
	if dataDir, _ := f.GetString("data-dir"); dataDir != "" && !f.Changed("artifacts-dir") {
		c.ArtifactsDir = filepath.Join(dataDir, "artifacts") // raibid up keeps them in its data dir
	}
	c.ArtifactRetention, _ = f.GetDuration("artifact-retention")
	maxArt, _ := f.GetString("artifact-max-bytes")
	if c.ArtifactMaxBytes, err = cache.ParseSize(maxArt); err != nil || c.ArtifactMaxBytes <= 0 {
		return c, &UsageError{fmt.Errorf("--artifact-max-bytes %q: a size such as 1GiB", maxArt)}
	}
	c.Mirrors.File, _ = f.GetString("mirrors")
	c.Mirrors.Rescan, _ = f.GetDuration("mirror-rescan")
	c.Mirrors.GitHubAPIURL, _ = f.GetString("github-api-url")
	c.Mirrors.MigrateTimeout, _ = f.GetDuration("migrate-timeout")
	k := &c.Kube
	k.Executor, _ = f.GetString("executor")
	k.Namespace, _ = f.GetString("namespace")
	k.ScaledJob, _ = f.GetString("scaled-job")
	k.AgentImage, _ = f.GetString("agent-image")
	k.AgentRedisURL, _ = f.GetString("agent-redis-url")
	k.RedisSecret, _ = f.GetString("redis-secret")
	k.ForgeSecret, _ = f.GetString("forge-secret")
	k.ConfigMap, _ = f.GetString("agent-config-map")
	k.ServiceAccount, _ = f.GetString("agent-service-account")
	k.PriorityClass, _ = f.GetString("agent-priority-class")
	k.CachePVC, _ = f.GetString("cache-pvc")
	k.MaxAgents, _ = f.GetInt("max-agents")
	for name, dst := range map[string]*Secret{"webhook-secret": &c.WebhookSecret, "api-token": &c.APIToken,
		"github-webhook-secret": &c.GitHubWebhookSecret, "gitea-token": &c.GiteaToken, "github-token": &c.Mirrors.GitHubToken} {
		if *dst, err = loadSecret(cmd, name); err != nil {
			return c, err
		}
	}
	if err := c.Validate(); err != nil {
		return c, &UsageError{err}
	}
	return c, nil
}
