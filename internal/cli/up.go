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

func runUp(cmd *cobra.Command, _ []string) error {
	ctx := cmd.Context()
	log, err := newLogger(cmd, false)
	if err != nil {
		return err
	}
	dataDir, _ := cmd.Flags().GetString("data-dir")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	// What to print for each secret: the value when raibid up owns it, only
	// its source when the user supplied it (theirs is theirs to know).
	shown := map[string]string{}
	for _, name := range []string{"webhook-secret", "api-token"} {
		v, source, err := loadOrGenerate(cmd, dataDir, name)
		if err != nil {
			return err
		}
		shown[name] = v
		if source != "" {
			shown[name] = "(from " + source + ")"
		}
	}
	if k, _ := cmd.Flags().GetString("secrets-key-file"); k == "" {
		_ = cmd.Flags().Set("secrets-key-file", filepath.Join(dataDir, "secrets-key"))
	}
	redisURL, _ := cmd.Flags().GetString("redis-url")
	if redisURL == "" {
		inst, err := localredis.Start(ctx, filepath.Join(dataDir, "redis"), log)
		if err != nil {
			return err
		}
		defer inst.Stop()
		redisURL = inst.URL
	}
	rdb, err := connectRedis(ctx, redisURL, 200)
	if err != nil {
		return err
	}
	defer rdb.Close()
	setup, err := serverConfig(cmd, rdb, log)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", setup.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", setup.addr, err)
	}
	base := localURL(l.Addr().(*net.TCPAddr))
	if err := os.WriteFile(filepath.Join(dataDir, FileServerURL), []byte(base+"\n"), 0o600); err != nil {
		return fmt.Errorf("write server url: %w", err)
	}
	if w, _ := cmd.Flags().GetString("workdir"); w == "" {
		_ = cmd.Flags().Set("workdir", filepath.Join(dataDir, "work"))
	}
	if c, _ := cmd.Flags().GetString("cache-dir"); c == "" {
		_ = cmd.Flags().Set("cache-dir", filepath.Join(dataDir, "cache"))
	}
	// Probe the sandbox before saying anything is up: an agent that cannot
	// sandbox refuses to start unless --sandbox=off.
	workdir, _ := cmd.Flags().GetString("workdir")
	c, _, _, err := cacheFromFlags(cmd)
	if err != nil {
		return err
	}
	sb, err := sandboxFromFlags(cmd, workdir, c, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	var sandboxLine string
	if sb == nil {
		sandboxLine = "OFF (--sandbox=off): UNSANDBOXED, builds can read this machine's secrets and stop raibid"
	} else {
		sandboxLine = fmt.Sprintf("bwrap: each step in its own PID namespace, credentials hidden, as uid %d", sb.UID())
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "raibid %s is up\n", Version)
	fmt.Fprintf(out, "  URL             %s\n", base)
	fmt.Fprintf(out, "  Web pages       %s/ui/   (log in with the API token)\n", base)
	fmt.Fprintf(out, "  Webhook URL     %s/webhook/gitea   (Gitea: POST, application/json, push events)\n", base)
	fmt.Fprintf(out, "  Webhook secret  %s\n", shown["webhook-secret"])
	fmt.Fprintf(out, "  API token       %s\n", shown["api-token"])
	fmt.Fprintf(out, "  Redis           %s\n", redactURL(redisURL))
	fmt.Fprintf(out, "  Data dir        %s\n", dataDir)
	n, _ := cmd.Flags().GetInt("agents")
	fmt.Fprintf(out, "  Agents          %d local\n", n)
	fmt.Fprintf(out, "  Sandbox         %s\n", sandboxLine)
	fmt.Fprintf(out, "\nNext: `raibid run` in a git checkout builds its current commit here; `raibid tui` shows the\n"+
		"dashboard; %s/ui/ the web pages. Ctrl-C stops raibid (running jobs go back to the queue).\n", base)
	// Agents and server stop together on the signal; agents hand running
	// jobs back to the queue, which needs Redis, so Redis stops last (defer).
	pool := agent.NewPool(ctx, func(name string) (*agent.Agent, error) {
		return buildAgent(cmd, rdb, log, name, true)
	}, log)
	if err := pool.SetMaxAgents(ctx, n); err != nil {
		return err
	}
	setup.srv.SetScaler(pool)
	err = setup.srv.Serve(ctx, l)
	pool.Wait()
	return err
}

// loadOrGenerate returns the secret from the environment or --<name>-file
// (source names which), or the one kept in the data dir (source ""), generating
// and storing it 0600 the first time. It points --<name>-file at the data dir
// file, so the server reads it the way it reads any secret.
func loadOrGenerate(cmd *cobra.Command, dataDir, name string) (value, source string, err error) {
	if os.Getenv(EnvName(name)) != "" {
		source = EnvName(name)
	} else if f, _ := cmd.Flags().GetString(name + "-file"); f != "" {
		source = f
	}
	v, err := secret(cmd, name)
	if err != nil || v != "" {
		return v, source, err
	}
	path := filepath.Join(dataDir, name)
	if err := cmd.Flags().Set(name+"-file", path); err != nil {
		return "", "", err
	}
	b, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), "", nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", "", fmt.Errorf("read %s: %w", path, err)
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", "", err
	}
	v = hex.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(v+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("write %s: %w", path, err)
	}
	return v, "", nil
}

// localURL is how a client on this machine reaches a listener.
func localURL(a *net.TCPAddr) string {
	host := a.IP.String()
	if a.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, fmt.Sprint(a.Port))
}
