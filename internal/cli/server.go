package cli

import (
	"fmt"
	"log/slog"
	"net"
	"path/filepath"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/raibid-labs/raibid-ci/internal/artifacts"
	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
	"github.com/raibid-labs/raibid-ci/internal/mirror"
	"github.com/raibid-labs/raibid-ci/internal/schedule"
	"github.com/raibid-labs/raibid-ci/internal/secrets"
	"github.com/raibid-labs/raibid-ci/internal/server"
)

// serverFlags are shared by `raibid server` and `raibid up`.
func addServerFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.String("addr", ":8080", "listen address of the HTTP API")
	f.String("gitea-url", "", "the Gitea instance: agents fetch only from its host; commit statuses; clone URLs of manual triggers")
	f.String("public-url", "", "base URL used in links, e.g. commit status target URLs")
	f.Bool("ui-public", false, "let anyone who can reach the server read the web pages (/ui/); cancel and retry still need the token")
	f.String("mirrors", "", "mirrors file (mirrors.yaml): serve /webhook/github-sync and /mirrors, create new org repositories' mirrors")
	f.Duration("mirror-rescan", mirror.DefaultRescan, "how often org entries of the mirrors file are re-listed for new repositories")
	f.String("secrets-key-file", "", "key of the pipeline secrets (AES-256, made 0600 when missing); without it the secrets API is off")
	f.Duration("header-timeout", server.DefaultHeaderTimeout, "time a client has to send a request's headers")
	f.Duration("body-timeout", server.DefaultBodyTimeout, "time a client has to send a request's body")
	f.String("artifacts-dir", filepath.Join(DefaultDataDir(), "artifacts"), "where artifacts uploaded by agents are kept (\"off\": no artifacts)")
	f.Duration("artifact-retention", artifacts.DefaultRetention, "how long artifacts are kept")
	f.String("artifact-max-bytes", "1GiB", "the artifacts of one job may total this much")
	f.String("body-bytes-in-flight", "64MiB", "webhook body bytes read at once, across all clients; past it webhooks get 503 with Retry-After")
	addJobsFlags(f, "how long a claimed job stays with an agent that stopped heartbeating")
	addSecretFlags(f, "webhook-secret", "api-token", "github-webhook-secret")
	addForgeFlags(f)
	addKubeFlags(f)
}

func newServerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the HTTP API (webhooks, jobs, logs, events)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(cmd, true)
			if err != nil {
				return err
			}
			cfg, err := serverConfigFromFlags(cmd)
			if err != nil {
				return err
			}
			rdb, err := connectRedis(cmd.Context(), cfg.RedisURL, 200)
			if err != nil {
				return err
			}
			defer rdb.Close()
			srv, err := newServer(cfg, rdb, log)
			if err != nil {
				return err
			}
			l, err := net.Listen("tcp", cfg.Addr)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
			}
			log.Info("raibid server listening", "addr", l.Addr().String(), "redis", redactURL(cfg.RedisURL), "version", Version)
			return srv.Serve(cmd.Context(), l)
		},
	}
	addServerFlags(cmd)
	cmd.Flags().String("redis-url", "redis://127.0.0.1:6379/0", "redis://[:password@]host:port/db")
	groupKubeFlags(cmd)
	return cmd
}

// newServer builds the store, the queue, the job lifecycle and the server
// from cfg.
func newServer(cfg ServerConfig, rdb *redis.Client, log *slog.Logger) (*server.Server, error) {
	if cfg.WebhookSecret == "" {
		log.Warn("no webhook secret (RAIBID_WEBHOOK_SECRET or --webhook-secret-file): every webhook will be refused with 401")
	}
	if cfg.APIToken == "" {
		log.Warn("no API token (RAIBID_API_TOKEN or --api-token-file): the API is open to anyone who can reach it")
	}
	st, q, lc := cfg.Jobs.open(rdb)
	opts := server.Options{
		Store: st, Queue: q, Jobs: lc, GPUJobs: cfg.Jobs.openGPU(st, rdb), Logger: log,
		WebhookSecret: cfg.WebhookSecret.Reveal(), APIToken: cfg.APIToken.Reveal(),
		GiteaURL: cfg.GiteaURL, Version: Version, PublicURL: cfg.PublicURL, UIPublic: cfg.UIPublic,
		HeaderTimeout: cfg.HeaderTimeout, BodyTimeout: cfg.BodyTimeout, BodyBytesInFlight: cfg.BodyBytesInFlight,
	}
	var secretStore *secrets.Store
	if cfg.SecretsKeyFile != "" {
		// A missing key that cannot be made (an optional Secret not created
		// yet) turns the secrets API off with a warning; the API says why.
		if _, err := secrets.LoadOrCreateKeyring(cfg.SecretsKeyFile); err != nil {
			log.Warn("pipeline secrets off", "err", err)
		} else {
			secretStore = secrets.NewStore(rdb, cfg.Jobs.KeyPrefix, secrets.FileKeys(cfg.SecretsKeyFile))
		}
	}
	heads := forgeRepos{allowLocal: cfg.AllowLocalClones}
	if cfg.GiteaURL != "" {
		heads.gitea = gitea.NewClient(cfg.GiteaURL, cfg.GiteaToken.Reveal(), log)
		if cfg.GiteaToken != "" {
			opts.Status = cfg.Jobs.openStatuses(rdb, heads.gitea, log)
		}
	}
	opts.Heads = heads
	var artifactStore *artifacts.Store
	if cfg.ArtifactsDir != "" && cfg.ArtifactsDir != "off" {
		artifactStore = &artifacts.Store{Dir: cfg.ArtifactsDir, MaxJobBytes: cfg.ArtifactMaxBytes, Retention: cfg.ArtifactRetention}
	}
	mirrors, err := mirrorService(cfg, log)
	if err != nil {
		return nil, err
	}
	// Every feature is served, on or off: one that is off answers its
	// routes with how to turn it on.
	opts.Features = []server.Feature{
		server.Mirrors(mirrors, cfg.GitHubWebhookSecret.Reveal()),
		server.Artifacts(artifactStore),
		server.Schedules(schedule.NewStore(rdb, cfg.Jobs.KeyPrefix)),
		server.Secrets(secretStore, cfg.SecretsKeyFile),
	}
	if err := kubeOptions(cfg.Kube, cfg.RedisURL, &opts, log); err != nil {
		return nil, err
	}
	return server.New(opts), nil
}

// mirrorService builds the server's mirror service from cfg, or nil when
// mirroring is off.
func mirrorService(cfg ServerConfig, log *slog.Logger) (*mirror.Service, error) {
	m := cfg.Mirrors
	if m.File == "" {
		return nil, nil
	}
	file, err := mirror.Load(m.File)
	if err != nil {
		return nil, &UsageError{err}
	}
	gh, gt := forgeClients(cfg.GiteaURL, m.GitHubAPIURL, m.GitHubToken, cfg.GiteaToken, m.MigrateTimeout, log)
	log.Info("mirroring on", "file", m.File, "entries", len(file.Entries), "rescan", m.Rescan)
	return mirror.NewService(mirror.ServiceOptions{Config: file, GitHub: gh, Gitea: gt,
		GitHubToken: m.GitHubToken.Reveal(), Log: log, Rescan: m.Rescan}), nil
}
