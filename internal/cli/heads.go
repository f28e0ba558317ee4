package cli

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"strings"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
)

// forgeRepos reads what the server needs of a repository before it queues
// a job — a branch's head (manual jobs), the pipeline file (its when:) —
// from the configured Gitea through its API, or from a local checkout
// (raibid up only) with git. Anything else stays unknown: the agent finds
// out when it clones.
type forgeRepos struct {
	gitea      *gitea.Client // nil without --gitea-url
	allowLocal bool
}

func (h forgeRepos) BranchHead(ctx context.Context, repo, cloneURL, branch string) (string, error) {
	if path, ok := ci.LocalClonePath(cloneURL); ok {
		if !h.allowLocal {
			return "", nil
		}
		// "--" before the path and the ref: neither is ever an option.
		out, err := exec.CommandContext(ctx, "git", "ls-remote", "--heads", "--", path, "refs/heads/"+branch).Output()
		if err != nil {
			return "", fmt.Errorf("git ls-remote %s: %w", path, err)
		}
		f := strings.Fields(string(out))
		if len(f) < 2 {
			return "", fmt.Errorf("branch %s: %w", branch, ci.ErrNotFound)
		}
		return f[0], nil
	}
	if h.gitea == nil || !sameHost(cloneURL, h.gitea.BaseURL) {
		return "", nil
	}
	sha, err := h.gitea.BranchHead(ctx, repo, branch)
	if errors.Is(err, gitea.ErrNotFound) {
		return "", fmt.Errorf("branch %s of %s: %w", branch, repo, ci.ErrNotFound)
	}
	return sha, err
}

// sameHost reports whether a clone URL is on base's host ("" counts: the
// server derives it from --gitea-url).
func sameHost(cloneURL, base string) bool {
	if cloneURL == "" {
		return true
	}
	a, err1 := url.Parse(cloneURL)
	b, err2 := url.Parse(base)
	return err1 == nil && err2 == nil && strings.EqualFold(a.Host, b.Host)
}
