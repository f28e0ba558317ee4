package cli

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/raibid-labs/raibid-ci/internal/agent"
	"github.com/raibid-labs/raibid-ci/internal/localredis"
	"github.com/raibid-labs/raibid-ci/internal/server"
)

// Files `raibid up` keeps in its data directory. `raibid tui` and `raibid job`
// on the same machine read the token and URL from here.
const (
	FileAPIToken      = "api-token"
	FileWebhookSecret = "webhook-secret"
	FileServerURL     = "server-url"
)

// DefaultDataDir is ~/.local/share/raibid (XDG_DATA_HOME honoured).
func DefaultDataDir() string {
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "raibid")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".raibid"
	}
	return filepath.Join(home, ".local", "share", "raibid")
}

func newUpCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run everything on this machine: server, Redis and local agents",
		Long: "Run the server with a Redis (--redis-url, else a supervised redis-server from PATH with\n" +
			"its AOF in the data dir, else an in-process Redis that keeps nothing) and print the URL,\n" +
			"webhook URL, webhook secret and API token. Secrets are generated once and kept 0600.",
		Args: cobra.NoArgs,
		RunE: runUp,
	}
	addServerFlags(cmd)
	// On one machine the server answers this machine only; --addr :8080
	// opens it to the network (Gitea on another host, say).
	addr := cmd.Flags().Lookup("addr")
	addr.DefValue, addr.Usage = "127.0.0.1:8080", "listen address (default loopback only; :8080 listens on every interface)"
	_ = addr.Value.Set(addr.DefValue)
	cmd.Flags().String("redis-url", "", "use this Redis instead of starting one")
	cmd.Flags().String("data-dir", DefaultDataDir(), "state of raibid up: secrets, Redis data")
	cmd.Flags().Int("agents", 2, "local agents to run")
	addAgentFlags(cmd, "")
	cmd.Flags().Lookup("workdir").DefValue = "<data-dir>/work"
	addCacheFlags(cmd, "")
	cmd.Flags().Lookup("cache-dir").DefValue = "<data-dir>/cache"
	groupKubeFlags(cmd)
	return cmd
}

// UpConfig is everything `raibid up` runs with: its server's and its
// agents' configurations, assembled once from the flags and the data dir.
type UpConfig struct {
	Server  ServerConfig
	Agent   AgentConfig
	DataDir string
	Agents  int
	// RedisURL is the user's Redis; "" starts one in the data dir.
	RedisURL string
	// shown is what the banner prints for each generated-or-given secret.
	shown map[string]string
}

// upConfigFromFlags reads the flags and fills what raibid up keeps in its
// data dir: the webhook secret and API token (generated once, kept 0600)
// unless given, the pipeline secrets key, the agents' work dir and cache.
func upConfigFromFlags(cmd *cobra.Command) (*UpConfig, error) {
	f := cmd.Flags()
	r := readFlags(f)
	c := &UpConfig{shown: map[string]string{}}
	read(r, "data-dir", &c.DataDir, f.GetString)
	read(r, "agents", &c.Agents, f.GetInt)
	read(r, "redis-url", &c.RedisURL, f.GetString)
	if err := r.Err(); err != nil {
		return nil, err
	}
	if c.Agents < 0 || c.Agents > server.MaxScale {
		return nil, &UsageError{fmt.Errorf("--agents %d: from 0 to %d", c.Agents, server.MaxScale)}
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	// It holds the secrets and the API token: only its owner may enter it,
	// whatever mode a directory that already existed had.
	if err := os.Chmod(c.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	var err error
	if c.Server, err = serverConfigFromFlags(cmd); err != nil {
		return nil, err
	}
	if c.Agent, err = agentConfigFromFlags(cmd); err != nil {
		return nil, err
	}
	// What to print for each secret: the value when raibid up owns it, only
	// its source when the user supplied it (theirs is theirs to know).
	for name, dst := range map[string]*Secret{"webhook-secret": &c.Server.WebhookSecret, "api-token": &c.Server.APIToken} {
		if *dst != "" {
			c.shown[name] = "(from " + secretSource(cmd, name) + ")"
			continue
		}
		v, err := dataDirSecret(c.DataDir, name)
		if err != nil {
			return nil, err
		}
		*dst, c.shown[name] = Secret(v), v
	}
	if c.Server.SecretsKeyFile == "" {
		c.Server.SecretsKeyFile = filepath.Join(c.DataDir, "secrets-key")
	}
	c.Agent.SecretsKeyFile = c.Server.SecretsKeyFile
	// `raibid run` queues local checkouts.
	c.Agent.AllowLocalClone, c.Server.AllowLocalClones = true, true
	return c, nil
}

func runUp(cmd *cobra.Command, _ []string) error {
	ctx := cmd.Context()
	log, err := newLogger(cmd, false)
	if err != nil {
		return err
	}
	cfg, err := upConfigFromFlags(cmd)
	if err != nil {
		return err
	}
	redisURL := cfg.RedisURL
	if redisURL == "" {
		inst, err := localredis.Start(ctx, filepath.Join(cfg.DataDir, "redis"), log)
		if err != nil {
			return err
		}
		defer inst.Stop()
		redisURL = inst.URL
	}
	cfg.Server.RedisURL, cfg.Agent.RedisURL = redisURL, redisURL
	rdb, err := connectRedis(ctx, redisURL, 200)
	if err != nil {
		return err
	}
	defer rdb.Close()
	srv, err := newServer(cfg.Server, rdb, log)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", cfg.Server.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Server.Addr, err)
	}
	base := localURL(l.Addr().(*net.TCPAddr))
	if err := os.WriteFile(filepath.Join(cfg.DataDir, FileServerURL), []byte(base+"\n"), 0o600); err != nil {
		return fmt.Errorf("write server url: %w", err)
	}
	// Probe the sandbox before saying anything is up: an agent that cannot
	// sandbox refuses to start unless --sandbox=off.
	sb, err := newSandbox(cfg.Agent, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	var sandboxLine string
	if sb == nil {
		sandboxLine = "OFF (--sandbox=off): UNSANDBOXED, builds can read this machine's secrets and stop raibid"
	} else {
		sandboxLine = fmt.Sprintf("bwrap: each step in its own PID namespace, credentials hidden, as uid %d", sb.UID())
	}
	gpus := gpuSlots(cfg.Agent) // one pool: the machine's GPUs, for every agent
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "raibid %s is up\n", Version)
	fmt.Fprintf(out, "  URL             %s\n", base)
	fmt.Fprintf(out, "  Web pages       %s/ui/   (log in with the API token)\n", base)
	fmt.Fprintf(out, "  Webhook URL     %s/webhook/gitea   (Gitea: POST, application/json; events Push, Create, Pull Request, Pull Request Synchronized)\n", base)
	fmt.Fprintf(out, "  Webhook secret  %s\n", cfg.shown["webhook-secret"])
	fmt.Fprintf(out, "  API token       %s\n", cfg.shown["api-token"])
	fmt.Fprintf(out, "  Redis           %s\n", redactURL(redisURL))
	fmt.Fprintf(out, "  Data dir        %s\n", cfg.DataDir)
	fmt.Fprintf(out, "  Agents          %d local", cfg.Agents)
	if gpus.Total() > 0 {
		fmt.Fprintf(out, ", sharing %d GPU slots", gpus.Total())
	}
	fmt.Fprintln(out)
	fmt.Fprintf(out, "  Sandbox         %s\n", sandboxLine)
	fmt.Fprintf(out, "\nNext: `raibid run` in a git checkout builds its current commit here; `raibid tui` shows the\n"+
		"dashboard; %s/ui/ the web pages. Ctrl-C stops raibid (running jobs go back to the queue).\n", base)
	// Agents and server stop together on the signal; agents hand running
	// jobs back to the queue, which needs Redis, so Redis stops last (defer).
	cfg.Agent.ServerURL = base // agents upload artifacts here
	pool := agent.NewPool(ctx, func(name string) (*agent.Agent, error) {
		c := cfg.Agent
		c.Name = name
		return newAgent(c, rdb, log, gpus)
	}, log)
	if err := pool.SetMaxAgents(ctx, cfg.Agents); err != nil {
		return err
	}
	srv.SetScaler(pool)
	err = srv.Serve(ctx, l)
	pool.Wait()
	return err
}

// secretSource names where a given secret came from: its environment
// variable or its --<name>-file.
func secretSource(cmd *cobra.Command, name string) string {
	if os.Getenv(EnvName(name)) != "" {
		return EnvName(name)
	}
	f, err := cmd.Flags().GetString(name + "-file")
	if err != nil {
		return "--" + name + "-file" // never: loadSecret read it first
	}
	return f
}

// dataDirSecret is the secret raibid up keeps in its data dir, generated
// and stored 0600 the first time.
func dataDirSecret(dataDir, name string) (string, error) {
	path := filepath.Join(dataDir, name)
	b, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	v := hex.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(v+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return v, nil
}

// localURL is how a client on this machine reaches a listener.
func localURL(a *net.TCPAddr) string {
	host := a.IP.String()
	if a.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, fmt.Sprint(a.Port))
}
