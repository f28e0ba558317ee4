// Package forge runs a real Gitea for raibid's forge suite (make
// test-forge): the Gitea 1.27.3 that `make forge-bins` builds from its Go
// module, on a random loopback port, with SQLite, an admin user and a
// token — the Gitea a team runs, not the project's fake of it.
package forge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Version is the Gitea the suite runs (test/forge/build builds it).
const Version = "v1.27.3"

// Org is the organisation Start creates (the admin owns it).
const Org = "acme"

// Binary is the Gitea binary `make forge-bins` built.
func Binary() (string, error) {
	dir := os.Getenv("RAIBID_FORGE_DIR")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(home, ".cache", "raibid", "forge")
	}
	bin := filepath.Join(dir, "gitea-"+Version)
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("%s missing: run `make forge-bins` first", bin)
	}
	return bin, nil
}

// Gitea is a running Gitea.
type Gitea struct {
	URL      string // http://127.0.0.1:port (its ROOT_URL, without the slash)
	User     string // the admin
	Password string
	Token    string   // the admin's, with the scopes install.md names
	Scopes   []string // those scopes
	bin, dir string
	port     int
	cmd      *exec.Cmd
	logFile  *os.File
}

// Start runs a Gitea with its state in dir.
func Start(ctx context.Context, dir string) (*Gitea, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	// A Gitea built without bindata reads its locales and templates from
	// its source: the module directory the build used.
	src, err := moduleDir(ctx)
	if err != nil {
		return nil, err
	}
	g := &Gitea{URL: fmt.Sprintf("http://127.0.0.1:%d", port), User: "raibid", Password: "forge-suite-pw-1", bin: bin, dir: dir, port: port}
	ini := fmt.Sprintf(`APP_NAME = raibid forge suite
RUN_MODE = prod
WORK_PATH = %[1]s
[server]
HTTP_ADDR = 127.0.0.1
HTTP_PORT = %[2]d
ROOT_URL = http://127.0.0.1:%[2]d/
DISABLE_SSH = true
OFFLINE_MODE = true
LFS_START_SERVER = false
STATIC_ROOT_PATH = %[3]s
[database]
DB_TYPE = sqlite3
PATH = %[1]s/gitea.db
[repository]
ROOT = %[1]s/repos
[security]
ALLOWED_HOST_LIST = loopback
INSTALL_LOCK = true
SECRET_KEY = forge-suite-secret-key-0123456789abcdef
INTERNAL_TOKEN = eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJuYmYiOjE3MDAwMDAwMDB9.forge-suite-internal-token-0123456789
[oauth2]
ENABLED = false
[service]
DISABLE_REGISTRATION = true
[webhook]
DELIVER_TIMEOUT = 10
[packages]
ENABLED = true
[migrations]
ALLOW_LOCALNETWORKS = true
[log]
LEVEL = Warn
ROOT_PATH = %[1]s/log
[cron]
ENABLED = false
`, dir, port, src)
	if err := os.WriteFile(g.ini(), []byte(ini), 0o600); err != nil {
		return nil, err
	}
	if out, err := g.admin(ctx, "migrate"); err != nil {
		return nil, fmt.Errorf("gitea migrate: %w\n%s", err, out)
	}
	if out, err := g.admin(ctx, "admin", "user", "create", "--admin", "--username", g.User, "--password", g.Password,
		"--email", "raibid@forge.test", "--must-change-password=false"); err != nil {
		return nil, fmt.Errorf("gitea admin user create: %w\n%s", err, out)
	}
	if err := g.Up(ctx); err != nil {
		return nil, err
	}
	if err := g.API(ctx, "POST", "/orgs", map[string]any{"username": Org}, nil, true); err != nil {
		return nil, fmt.Errorf("create organisation: %w", err)
	}
	var tok struct {
		SHA1 string `json:"sha1"`
	}
	scopes, err := DocumentedScopes()
	if err != nil {
		return nil, err
	}
	if err := g.API(ctx, "POST", "/users/"+g.User+"/tokens", map[string]any{"name": "raibid", "scopes": scopes}, &tok, true); err != nil {
		return nil, fmt.Errorf("create token: %w", err)
	}
	g.Scopes = scopes
	g.Token = tok.SHA1
	return g, nil
}

func (g *Gitea) ini() string { return filepath.Join(g.dir, "app.ini") }

func (g *Gitea) env() []string {
	return append(os.Environ(), "GITEA_WORK_DIR="+g.dir, "GITEA_I_AM_BEING_UNSAFE_RUNNING_AS_ROOT=true", "HOME="+g.dir)
}

func (g *Gitea) admin(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, g.bin, append(args, "--config", g.ini())...)
	cmd.Env, cmd.Dir = g.env(), g.dir
	return cmd.CombinedOutput()
}

// Up starts Gitea's web server (again, after Down) and waits for its API.
func (g *Gitea) Up(ctx context.Context) error {
	logf, err := os.OpenFile(filepath.Join(g.dir, "web.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(g.bin, "web", "--config", g.ini())
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = g.env(), g.dir, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	g.cmd, g.logFile = cmd, logf
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(g.URL + "/api/v1/version")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	b, _ := os.ReadFile(filepath.Join(g.dir, "web.log"))
	return fmt.Errorf("gitea did not answer within 90 s:\n%s", b)
}

// Down stops the web server (its state stays for Up).
func (g *Gitea) Down() {
	if g.cmd == nil {
		return
	}
	_ = syscall.Kill(-g.cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { g.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	g.logFile.Close()
	g.cmd = nil
}

// API calls Gitea's REST API (path under /api/v1) as the admin, with the
// token or, with basic, the password; out may be nil.
func (g *Gitea) API(ctx context.Context, method, path string, in, out any, basic ...bool) error {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, g.URL+"/api/v1"+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if len(basic) > 0 && basic[0] {
		req.SetBasicAuth(g.User, g.Password)
	} else {
		req.Header.Set("Authorization", "token "+g.Token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return &APIError{Code: resp.StatusCode, Body: string(data)}
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}

// APIError is Gitea's answer to a call that did not succeed.
type APIError struct {
	Code int
	Body string
}

func (e *APIError) Error() string { return "gitea " + strconv.Itoa(e.Code) + ": " + e.Body }

// IsCode reports whether err is Gitea's answer code.
func IsCode(err error, code int) bool {
	var e *APIError
	return errors.As(err, &e) && e.Code == code
}

// As is g seen as another user (with basic auth: API calls pass basic),
// for a second account — a fork's author.
func As(g *Gitea, user, password string) *Gitea {
	other := *g
	other.User, other.Password, other.Token = user, password, ""
	other.cmd = nil
	return &other
}

// Stop ends Gitea.
func (g *Gitea) Stop() { g.Down() }

// PushURL is repo's URL with the admin's credentials, for git push.
func (g *Gitea) PushURL(repo string) string {
	return fmt.Sprintf("http://%s:%s@127.0.0.1:%d/%s.git", g.User, g.Password, g.port, repo)
}

// DocumentedScopes is the token scopes docs/install.md tells a team to
// give raibid's token (its "Gitea tokens" paragraph): the suite's token has
// exactly these, so the docs cannot drift from what raibid needs.
func DocumentedScopes() ([]string, error) {
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return nil, fmt.Errorf("find docs/install.md: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "docs", "install.md"))
	if err != nil {
		return nil, err
	}
	text := string(b)
	start := strings.Index(text, "**Gitea tokens.**")
	if start < 0 {
		return nil, errors.New(`docs/install.md has no "Gitea tokens" paragraph`)
	}
	para := text[start:]
	if end := strings.Index(para, "\n\n"); end >= 0 {
		para = para[:end]
	}
	var scopes []string
	for _, m := range scopePattern.FindAllStringSubmatch(para, -1) {
		if !slices.Contains(scopes, m[1]) {
			scopes = append(scopes, m[1])
		}
	}
	if len(scopes) == 0 {
		return nil, errors.New("docs/install.md names no token scope")
	}
	return scopes, nil
}

var scopePattern = regexp.MustCompile("`((?:read|write):[a-z]+)`")

// moduleDir is Gitea's module directory in the module cache.
func moduleDir(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "mod", "download", "-json", "code.gitea.io/gitea@"+Version).Output()
	if err != nil {
		return "", fmt.Errorf("go mod download gitea: %w", err)
	}
	var m struct{ Dir string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		return "", fmt.Errorf("go mod download gitea: no directory in %s", out)
	}
	return m.Dir, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
