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
	r := readFlags(f)
	c := DefaultServerConfig()
	read(r, "addr", &c.Addr, f.GetString)
	read(r, "redis-url", &c.RedisURL, f.GetString)
	read(r, "gitea-url", &c.GiteaURL, f.GetString)
	read(r, "public-url", &c.PublicURL, f.GetString)
	read(r, "ui-public", &c.UIPublic, f.GetBool)
	c.Jobs = jobsConfigFromFlags(r)
	read(r, "header-timeout", &c.HeaderTimeout, f.GetDuration)
	read(r, "body-timeout", &c.BodyTimeout, f.GetDuration)
	var inFlight, maxArt, dataDir string
	read(r, "body-bytes-in-flight", &inFlight, f.GetString)
	read(r, "secrets-key-file", &c.SecretsKeyFile, f.GetString)
	read(r, "artifacts-dir", &c.ArtifactsDir, f.GetString)
	optional(r, "data-dir", &dataDir, f.GetString) // raibid up's
	read(r, "artifact-retention", &c.ArtifactRetention, f.GetDuration)
	read(r, "artifact-max-bytes", &maxArt, f.GetString)
	read(r, "mirrors", &c.Mirrors.File, f.GetString)
	read(r, "mirror-rescan", &c.Mirrors.Rescan, f.GetDuration)
	read(r, "github-api-url", &c.Mirrors.GitHubAPIURL, f.GetString)
	read(r, "migrate-timeout", &c.Mirrors.MigrateTimeout, f.GetDuration)
	k := &c.Kube
	read(r, "executor", &k.Executor, f.GetString)
	read(r, "namespace", &k.Namespace, f.GetString)
	read(r, "scaled-job", &k.ScaledJob, f.GetString)
	read(r, "agent-image", &k.AgentImage, f.GetString)
	read(r, "agent-redis-url", &k.AgentRedisURL, f.GetString)
	read(r, "redis-secret", &k.RedisSecret, f.GetString)
	read(r, "forge-secret", &k.ForgeSecret, f.GetString)
	read(r, "agent-config-map", &k.ConfigMap, f.GetString)
	read(r, "agent-service-account", &k.ServiceAccount, f.GetString)
	read(r, "agent-priority-class", &k.PriorityClass, f.GetString)
	read(r, "cache-pvc", &k.CachePVC, f.GetString)
	read(r, "max-agents", &k.MaxAgents, f.GetInt)
	if err := r.Err(); err != nil {
		return c, err
	}
	var err error
	if c.BodyBytesInFlight, err = cache.ParseSize(inFlight); err != nil {
		return c, &UsageError{fmt.Errorf("--body-bytes-in-flight: %w", err)}
	}
	if dataDir != "" && !f.Changed("artifacts-dir") {
		c.ArtifactsDir = filepath.Join(dataDir, "artifacts") // raibid up keeps them in its data dir
	}
	if c.ArtifactMaxBytes, err = cache.ParseSize(maxArt); err != nil || c.ArtifactMaxBytes <= 0 {
		return c, &UsageError{fmt.Errorf("--artifact-max-bytes %q: a size such as 1GiB", maxArt)}
	}
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
