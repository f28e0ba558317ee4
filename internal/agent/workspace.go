package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/pipeline"
)

// errCloneRefused marks a clone URL the agent will not fetch: retrying cannot
// help, so the job ends in error at once.
var errCloneRefused = errors.New("clone refused")

// Source says which repositories agents may fetch.
type Source struct {
	// ForgeURL is the Gitea base URL; clone URLs must be on its host.
	ForgeURL string
	// Token authenticates fetches from the forge (sent as an HTTP header
	// through git's environment, never in argv or the URL).
	Token string
	// AllowLocal permits absolute local paths and file:// URLs (raibid up).
	AllowLocal bool
}

// check refuses clone URLs outside the configured forge.
func (s Source) check(cloneURL string) error {
	if strings.HasPrefix(cloneURL, "/") || strings.HasPrefix(cloneURL, "file://") {
		if s.AllowLocal {
			return nil
		}
		return fmt.Errorf("%w: local path %s is not allowed (only raibid up allows local clones)", errCloneRefused, cloneURL)
	}
	u, err := url.Parse(cloneURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: %q is not an http(s) URL", errCloneRefused, redact(cloneURL))
	}
	if s.ForgeURL == "" {
		return fmt.Errorf("%w: host %s is not the configured forge (no --gitea-url set)", errCloneRefused, u.Host)
	}
	f, err := url.Parse(s.ForgeURL)
	if err != nil || !strings.EqualFold(f.Host, u.Host) {
		return fmt.Errorf("%w: host %s is not the configured forge %s", errCloneRefused, u.Host, hostOf(s.ForgeURL))
	}
	return nil
}

func hostOf(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Host
	}
	return "(invalid)"
}

// redact drops credentials from a URL before it is logged or shown.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	u.User = nil
	return u.String()
}

// gitEnv gives git the forge token as an extra HTTP header through
// GIT_CONFIG_* variables, scoped to the forge's URL, and forbids prompts.
func (s Source) gitEnv() []string {
	env := append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=true")
	if s.Token != "" && s.ForgeURL != "" {
		env = append(env, "GIT_CONFIG_COUNT=1",
			"GIT_CONFIG_KEY_0=http."+strings.TrimRight(s.ForgeURL, "/")+"/.extraHeader",
			"GIT_CONFIG_VALUE_0=Authorization: token "+s.Token)
	}
	return env
}

// clone fetches exactly commit (or the branch head when commit is empty)
// into dir with a shallow fetch, and checks it out.
func (s Source) clone(ctx context.Context, dir, cloneURL, branch, commit string, masker *pipeline.Masker) error {
	if err := s.check(cloneURL); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ref := commit
	if ref == "" {
		ref = "refs/heads/" + branch
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	for _, args := range [][]string{
		{"init", "-q"},
		{"remote", "add", "origin", strings.TrimPrefix(cloneURL, "file://")},
		{"fetch", "-q", "--depth", "1", "--no-tags", "origin", ref},
		{"checkout", "-q", "--detach", "FETCH_HEAD"},
	} {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = dir
		cmd.Env = s.gitEnv()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			msg := strings.TrimSpace(stderr.String())
			if i := strings.LastIndex(msg, "\n"); i >= 0 {
				msg = msg[i+1:]
			}
			msg = masker.Apply(strings.ReplaceAll(msg, cloneURL, redact(cloneURL)))
			return fmt.Errorf("git %s: %s", args[0], firstNonEmpty(msg, err.Error()))
		}
	}
	return nil
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// workspaceDir is the per-job directory under root.
func workspaceDir(root, jobID string) string {
	return filepath.Join(root, jobID)
}
