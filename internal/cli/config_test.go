package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// command returns the named subcommand with args parsed and RAIBID_*
// bound, as Execute would leave it before RunE.
func command(t *testing.T, name string, args ...string) *cobra.Command {
	t.Helper()
	root := NewRoot(io.Discard, io.Discard)
	cmd, _, err := root.Find([]string{name})
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	if err := bindEnv(cmd); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// No flags, no environment: the configuration is the documented defaults.
func TestConfigDefaultsAreTheFlagDefaults(t *testing.T) {
	for _, k := range []string{"RAIBID_API_TOKEN", "RAIBID_WEBHOOK_SECRET", "RAIBID_GITEA_TOKEN", "RAIBID_GITHUB_TOKEN", "RAIBID_GITHUB_WEBHOOK_SECRET"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	got, err := serverConfigFromFlags(command(t, "server"))
	if err != nil {
		t.Fatal(err)
	}
	if want := DefaultServerConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("server config\n got %+v\nwant %+v", got, want)
	}
	agentCfg, err := agentConfigFromFlags(command(t, "agent"))
	if err != nil {
		t.Fatal(err)
	}
	if want := DefaultAgentConfig(); !reflect.DeepEqual(agentCfg, want) {
		t.Errorf("agent config\n got %+v\nwant %+v", agentCfg, want)
	}
}

// Flags and RAIBID_* land in the struct once; a bad value is a usage error
// naming the flag.
func TestServerConfigFromFlagsAndEnv(t *testing.T) {
	t.Setenv("RAIBID_API_TOKEN", "tok-from-env")
	t.Setenv("RAIBID_LEASE", "45s")
	key := filepath.Join(t.TempDir(), "webhook")
	os.WriteFile(key, []byte("hook-secret\n"), 0o600)
	cfg, err := serverConfigFromFlags(command(t, "server", "--addr", "127.0.0.1:9", "--webhook-secret-file", key,
		"--max-deliveries", "5", "--executor", "keda", "--key-prefix", "ci:"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.APIToken.Reveal() != "tok-from-env" || cfg.WebhookSecret.Reveal() != "hook-secret" || cfg.Jobs.Lease != 45*time.Second ||
		cfg.Jobs.MaxDeliveries != 5 || cfg.Kube.Executor != "keda" || cfg.Addr != "127.0.0.1:9" || cfg.Jobs.KeyPrefix != "ci:" {
		t.Fatalf("config = %+v", cfg)
	}
	for _, bad := range [][]string{
		{"--lease", "10ms"}, {"--max-deliveries", "0"}, {"--executor", "docker"}, {"--gitea-url", "gitea.local"},
		{"--body-bytes-in-flight", "lots"}, {"--mirrors", "m.yaml"},
	} {
		_, err := serverConfigFromFlags(command(t, "server", bad...))
		var u *UsageError
		if !errors.As(err, &u) || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%v: err = %v, want a usage error naming %s", bad, err, bad[0])
		}
	}
}

// A configuration printed or logged whole shows whether a secret is set,
// never its value.
func TestSecretsNeverPrint(t *testing.T) {
	cfg := DefaultServerConfig()
	cfg.APIToken, cfg.WebhookSecret, cfg.Mirrors.GitHubToken = "tok-3f9a", "hook-77c1", "ghp-0b2e"
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(format, cfg)
		for _, v := range []string{"tok-3f9a", "hook-77c1", "ghp-0b2e"} {
			if strings.Contains(out, v) {
				t.Errorf("%s of the config shows %s: %s", format, v, out)
			}
		}
	}
}

// raibid up assembles its server's and agents' configurations: secrets
// generated once into the data dir and the structs (the flags are left as
// given), the same on the next start; work dir, cache and secrets key in
// the data dir; local clones allowed.
func TestUpConfigFillsFromTheDataDir(t *testing.T) {
	t.Setenv("RAIBID_API_TOKEN", "")
	os.Unsetenv("RAIBID_API_TOKEN")
	t.Setenv("RAIBID_WEBHOOK_SECRET", "given-secret")
	dir := t.TempDir()
	cmd := command(t, "up", "--data-dir", dir)
	cfg, err := upConfigFromFlags(cmd)
	if err != nil {
		t.Fatal(err)
	}
	token, _ := os.ReadFile(filepath.Join(dir, "api-token"))
	if cfg.Server.APIToken.Reveal() == "" || strings.TrimSpace(string(token)) != cfg.Server.APIToken.Reveal() {
		t.Fatalf("api token %q, file %q", cfg.Server.APIToken.Reveal(), token)
	}
	if cfg.shown["api-token"] != cfg.Server.APIToken.Reveal() || cfg.shown["webhook-secret"] != "(from RAIBID_WEBHOOK_SECRET)" {
		t.Fatalf("banner shows %q", cfg.shown)
	}
	if cfg.Server.WebhookSecret.Reveal() != "given-secret" {
		t.Fatalf("webhook secret %q", cfg.Server.WebhookSecret.Reveal())
	}
	if f, _ := cmd.Flags().GetString("api-token-file"); f != "" {
		t.Fatalf("raibid up rewrote --api-token-file to %q", f)
	}
	if cfg.Agent.WorkDir != filepath.Join(dir, "work") || cfg.Agent.Cache.Dir != filepath.Join(dir, "cache") ||
		cfg.Server.SecretsKeyFile != filepath.Join(dir, "secrets-key") || cfg.Agent.SecretsKeyFile != cfg.Server.SecretsKeyFile ||
		!cfg.Agent.AllowLocalClone || cfg.Server.Addr != "127.0.0.1:8080" {
		t.Fatalf("up config = %+v / %+v", cfg.Server, cfg.Agent)
	}
	again, err := upConfigFromFlags(command(t, "up", "--data-dir", dir))
	if err != nil || again.Server.APIToken != cfg.Server.APIToken {
		t.Fatalf("second start: token %q vs %q, %v", again.Server.APIToken.Reveal(), cfg.Server.APIToken.Reveal(), err)
	}
}

// flagTestValues are values each flag accepts that differ from its
// default, for the flags a generic value would not fit.
var flagTestValues = map[string]string{
	"sandbox": "off", "executor": "keda", "build-user": "0", "gpus": "2",
	"max-log-bytes": "3MiB", "cache-max-age": "2d", "cache-max-size": "1GB", "cache-dir": "off",
	"body-bytes-in-flight": "9MiB", "artifact-max-bytes": "2GiB",
	"redis-url": "redis://127.0.0.1:1/2", "gitea-url": "http://gitea.test:3000", "public-url": "http://ci.test",
	"server-url": "http://ci-internal.test", "github-api-url": "http://gh.test/api", "agent-redis-url": "redis://redis.test:6379/0",
	"addr": "127.0.0.1:1", "lease": "2m", "log-retention": "1h", "job-retention": "2h", "max-agents": "3",
}

// flagTestNeeds are the other flags a flag is only valid with.
var flagTestNeeds = map[string][]string{"mirrors": {"--gitea-url=http://gitea.test:3000"}}

// Every flag a command declares reaches its configuration: given a value
// other than its default, the configuration changes. A flag declared but
// never read — or read under another name — fails here.
func TestEveryFlagReachesTheConfig(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	build := map[string]func(*cobra.Command) (any, error){
		"agent":  func(c *cobra.Command) (any, error) { return agentConfigFromFlags(c) },
		"server": func(c *cobra.Command) (any, error) { return serverConfigFromFlags(c) },
		"up":     func(c *cobra.Command) (any, error) { return upConfigFromFlags(c) },
	}
	// Read where they are used, not into these configurations.
	elsewhere := map[string]bool{"help": true, "log-level": true}
	for name, buildCfg := range build {
		base := []string{}
		if name == "up" {
			base = []string{"--data-dir", t.TempDir()}
		}
		command(t, name).Flags().VisitAll(func(fl *pflag.Flag) {
			if elsewhere[fl.Name] || fl.Name == "data-dir" {
				return
			}
			v, ok := flagTestValues[fl.Name]
			switch {
			case ok:
			case strings.HasSuffix(fl.Name, "-file"):
				v = secretFile
			default:
				switch fl.Value.Type() {
				case "bool":
					v = fmt.Sprint(fl.DefValue != "true")
				case "int", "int64":
					v = "7"
				case "duration":
					v = "17s"
				default:
					v = "flag-test-value"
				}
			}
			args := append(append([]string(nil), base...), flagTestNeeds[fl.Name]...)
			want, err := buildCfg(command(t, name, args...))
			if err != nil {
				t.Fatalf("%s %v: %v", name, args, err)
			}
			got, err := buildCfg(command(t, name, append(args, "--"+fl.Name+"="+v)...))
			if err != nil {
				t.Errorf("%s --%s=%s: %v", name, fl.Name, v, err)
				return
			}
			if reflect.DeepEqual(got, want) {
				t.Errorf("%s --%s=%s changes nothing in the configuration", name, fl.Name, v)
			}
		})
	}
}
