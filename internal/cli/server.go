package cli

import (
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/raibid-labs/raibid-ci/internal/cache"
	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
	"github.com/raibid-labs/raibid-ci/internal/jobs"
	"github.com/raibid-labs/raibid-ci/internal/mirror"
	"github.com/raibid-labs/raibid-ci/internal/queue"
	"github.com/raibid-labs/raibid-ci/internal/secrets"
	"github.com/raibid-labs/raibid-ci/internal/server"
	"github.com/raibid-labs/raibid-ci/internal/store"
)

// serverFlags are shared by `raibid server` and `raibid up`.
func addServerFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.String("addr", ":8080", "listen address of the HTTP API")
	f.String("gitea-url", "", "the Gitea instance: agents fetch only from its host; commit statuses; clone URLs of manual triggers")
	f.String("public-url", "", "base URL used in links, e.g. commit status target URLs")
	f.String("key-prefix", "", "prefix of every Redis key")
	f.Duration("lease", queue.DefaultLease, "how long a claimed job stays with an agent that stopped heartbeating")
	f.Int("max-deliveries", jobs.DefaultMaxDeliveries, "deliveries of one job before it becomes a dead letter")
	f.Bool("ui-public", false, "let anyone who can reach the server read the web pages (/ui/); cancel and retry still need the token")
	f.String("mirrors", "", "mirrors file (mirrors.yaml): serve /webhook/github-sync and /mirrors, create new org repositories' mirrors")
	f.Duration("mirror-rescan", mirror.DefaultRescan, "how often org entries of the mirrors file are re-listed for new repositories")
	f.String("secrets-key-file", "", "key of the pipeline secrets (AES-256, made 0600 when missing); without it the secrets API is off")
	f.Duration("header-timeout", server.DefaultHeaderTimeout, "time a client has to send a request's headers")
	f.Duration("body-timeout", server.DefaultBodyTimeout, "time a client has to send a request's body")
	f.String("body-bytes-in-flight", "64MiB", "webhook body bytes read at once, across all clients; past it webhooks get 503 with Retry-After")
	addRetentionFlags(f)
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
			redisURL, _ := cmd.Flags().GetString("redis-url")
			rdb, err := connectRedis(cmd.Context(), redisURL, 200)
			if err != nil {
				return err
			}
			defer rdb.Close()
			cfg, err := serverConfig(cmd, rdb, log)
			if err != nil {
				return err
			}
			l, err := net.Listen("tcp", cfg.addr)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", cfg.addr, err)
			}
			log.Info("raibid server listening", "addr", l.Addr().String(), "redis", redactURL(redisURL), "version", Version)
			return cfg.srv.Serve(cmd.Context(), l)
		},
	}
	addServerFlags(cmd)
	cmd.Flags().String("redis-url", "redis://127.0.0.1:6379/0", "redis://[:password@]host:port/db")
	groupKubeFlags(cmd)
	return cmd
}

type serverSetup struct {
	addr  string
	srv   *server.Server
	store *store.Store
	queue *queue.Queue
}

// serverConfig builds the store, queue and server from flags.
func serverConfig(cmd *cobra.Command, rdb *redis.Client, log *slog.Logger) (*serverSetup, error) {
	f := cmd.Flags()
	addr, _ := f.GetString("addr")
	prefix, _ := f.GetString("key-prefix")
	lease, _ := f.GetDuration("lease")
	giteaURL, _ := f.GetString("gitea-url")
	if lease < time.Second {
		return nil, &UsageError{fmt.Errorf("--lease %s: must be at least 1s", lease)}
	}
	webhookSecret, err := secret(cmd, "webhook-secret")
	if err != nil {
		return nil, err
	}
	apiToken, err := secret(cmd, "api-token")
	if err != nil {
		return nil, err
	}
	if webhookSecret == "" {
		log.Warn("no webhook secret (RAIBID_WEBHOOK_SECRET or --webhook-secret-file): every webhook will be refused with 401")
	}
	if apiToken == "" {
		log.Warn("no API token (RAIBID_API_TOKEN or --api-token-file): the API is open to anyone who can reach it")
	}
	st, q, lc := lifecycle(cmd, rdb)
	publicURL, _ := f.GetString("public-url")
	uiPublic, _ := f.GetBool("ui-public")
	opts := server.Options{
		Store: st, Queue: q, Jobs: lc, Logger: log, WebhookSecret: webhookSecret, APIToken: apiToken,
		GiteaURL: giteaURL, Version: Version, PublicURL: publicURL, UIPublic: uiPublic,
	}
	opts.HeaderTimeout, _ = f.GetDuration("header-timeout")
	opts.BodyTimeout, _ = f.GetDuration("body-timeout")
	inFlight, _ := f.GetString("body-bytes-in-flight")
	if opts.BodyBytesInFlight, err = cache.ParseSize(inFlight); err != nil {
		return nil, &UsageError{fmt.Errorf("--body-bytes-in-flight: %w", err)}
	}
	if keyFile, _ := f.GetString("secrets-key-file"); keyFile != "" {
		// A missing key that cannot be made (an optional Secret not created
		// yet) turns the secrets API off with a warning; the API says why.
		if _, err := secrets.LoadOrCreateKeyring(keyFile); err != nil {
			log.Warn("pipeline secrets off", "err", err)
		} else {
			opts.Secrets, opts.SecretsKeyFile = secrets.NewStore(rdb, prefix, secrets.FileKeys(keyFile)), keyFile
		}
	}
	giteaToken, err := secret(cmd, "gitea-token")
	if err != nil {
		return nil, err
	}
	if giteaURL != "" && giteaToken != "" {
		opts.Status = gitea.NewClient(giteaURL, giteaToken, log)
	}
	if opts.Mirrors, err = mirrorService(cmd, log); err != nil {
		return nil, err
	}
	if opts.GitHubWebhookSecret, err = secret(cmd, "github-webhook-secret"); err != nil {
		return nil, err
	}
	if err := kubeOptions(cmd, &opts, log); err != nil {
		return nil, err
	}
	srv := server.New(opts)
	return &serverSetup{addr: addr, srv: srv, store: st, queue: q}, nil
}

// mirrorService builds the server's mirror service from --mirrors, or nil.
func mirrorService(cmd *cobra.Command, log *slog.Logger) (*mirror.Service, error) {
	file, _ := cmd.Flags().GetString("mirrors")
	if file == "" {
		return nil, nil
	}
	cfg, err := mirror.Load(file)
	if err != nil {
		return nil, &UsageError{err}
	}
	gh, gt, ghToken, err := mirrorClients(cmd, log)
	if err != nil {
		return nil, err
	}
	rescan, _ := cmd.Flags().GetDuration("mirror-rescan")
	log.Info("mirroring on", "file", file, "entries", len(cfg.Entries), "rescan", rescan)
	return mirror.NewService(mirror.ServiceOptions{Config: cfg, GitHub: gh, Gitea: gt,
		GitHubToken: ghToken, Log: log, Rescan: rescan}), nil
}
