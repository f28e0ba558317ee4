package cli

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/raibid-labs/raibid-ci/internal/api"
	"github.com/raibid-labs/raibid-ci/internal/ci"
)

// newRunCmd is `raibid run [DIR]`: a developer's own loop before pushing —
// build the current commit of a local checkout on the running raibid, follow
// its log, exit with its verdict (what `woodpecker-cli exec` and `act` give).
func newRunCmd() *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run [DIR]",
		Short: "Build the current commit of a local checkout on the running raibid and follow its log",
		Long: "Queue the commit checked out in DIR (default .) on the raibid this machine runs (raibid up),\n" +
			"follow its log, and exit 0 when it succeeds, 1 when not. Only committed work is built: the\n" +
			"agent clones the commit, not the working tree. --branch/--commit build another one.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runRun(cmd, args, o) },
	}
	addClientFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&o.repo, "repo", "", "owner/name the job is filed under (default local/<directory name>)")
	f.StringVar(&o.branch, "branch", "", "branch to build (default the checked-out one)")
	f.StringVar(&o.commit, "commit", "", "commit to build (default HEAD, or the --branch head)")
	f.BoolVar(&o.detach, "detach", false, "queue the job, print its id and do not follow it")
	f.StringVar(&o.event, "event", "", "run as this event, to try a pipeline's when: push, tag, pull_request, cron (default manual)")
	f.StringVar(&o.tag, "tag", "", "the tag of --event tag (default: a tag at the commit)")
	f.StringVar(&o.base, "base", "", "the branch --event pull_request would land on (default main)")
	f.IntVar(&o.pr, "pr", 0, "the number of --event pull_request (default 1)")
	addRawFlag(cmd, &o.raw)
	return cmd
}

// runOptions are `raibid run`'s flags.
type runOptions struct {
	repo, branch, commit string
	event, tag, base     string
	pr                   int
	detach, raw          bool
}

var repoNamePart = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

func runRun(cmd *cobra.Command, args []string, o runOptions) error {
	dir := "."
	if len(args) == 1 {
		dir = args[0]
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	git := func(a ...string) (string, error) {
		var out, errb bytes.Buffer
		c := exec.CommandContext(cmd.Context(), "git", append([]string{"-C", abs}, a...)...)
		c.Stdout, c.Stderr = &out, &errb
		if err := c.Run(); err != nil {
			return "", fmt.Errorf("git %s in %s: %s", a[0], abs, ci.FirstLine(strings.TrimSpace(errb.String()), err.Error()))
		}
		return strings.TrimSpace(out.String()), nil
	}
	top, err := git("rev-parse", "--show-toplevel")
	if err != nil {
		return &UsageError{fmt.Errorf("%s is not a git checkout: %w", abs, err)}
	}
	f := cmd.Flags()
	branch, commit, repo := o.branch, o.commit, o.repo
	if repo == "" {
		repo = "local/" + strings.Trim(repoNamePart.ReplaceAllString(filepath.Base(top), "-"), "-.")
	}
	if branch == "" {
		if branch, err = git("rev-parse", "--abbrev-ref", "HEAD"); err != nil {
			return err
		}
		if branch == "HEAD" { // detached
			branch = "detached"
		}
	}
	if commit == "" {
		ref := "HEAD"
		if f.Changed("branch") {
			ref = "refs/heads/" + branch
		}
		if commit, err = git("rev-parse", "--verify", "--end-of-options", ref+"^{commit}"); err != nil {
			return &UsageError{fmt.Errorf("no commit for %s: %w", ref, err)}
		}
	}
	if dirty, _ := git("status", "--porcelain", "--untracked-files=no"); dirty != "" && !f.Changed("commit") {
		fmt.Fprintf(cmd.ErrOrStderr(), "note: uncommitted changes in %s are not built (raibid builds commit %.12s)\n", top, commit)
	}
	c, asJSON, err := clientAndFormat(cmd)
	if err != nil {
		return err
	}
	n := api.NewJob{Repo: repo, Branch: branch, Commit: commit, CloneURL: top}
	n.Event, n.Tag, n.Base, n.PR = o.event, o.tag, o.base, o.pr
	// The pages show who wrote the commit and why, as for a push.
	if info, err := git("log", "-1", "--format=%an%x00%B", "--end-of-options", commit); err == nil {
		n.Author, n.Message, _ = strings.Cut(info, "\x00")
		n.Author, n.Message = ci.Truncate(n.Author, 250), ci.Truncate(strings.TrimSpace(n.Message), 16<<10-8)
	}
	switch n.Event {
	case ci.EventTag:
		if n.Tag == "" {
			tags, _ := git("tag", "--points-at", commit)
			if n.Tag, _, _ = strings.Cut(tags, "\n"); n.Tag == "" {
				return &UsageError{fmt.Errorf("--event tag needs --tag (no tag points at %.12s)", commit)}
			}
		}
	case ci.EventPullRequest:
		if n.Base == "" {
			n.Base = "main"
		}
	}
	j, err := c.CreateJob(cmd.Context(), n)
	if err != nil {
		return err
	}
	if o.detach {
		if asJSON {
			return printJSON(cmd.OutOrStdout(), j)
		}
		fmt.Fprintln(cmd.OutOrStdout(), j.ID)
		return nil
	}
	if !asJSON {
		fmt.Fprintf(cmd.ErrOrStderr(), "job %s: %s %s@%.12s — following (Ctrl-C stops following, not the job)\n", shortID(j.ID), repo, branch, commit)
	}
	return followLogs(cmd.Context(), c, j.ID, "", cmd.OutOrStdout(), logFormat{json: asJSON, raw: o.raw}, true)
}
