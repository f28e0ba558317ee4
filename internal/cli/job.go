package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/raibid-labs/raibid-ci/internal/api"
	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/client"
	"github.com/raibid-labs/raibid-ci/internal/termtext"
)

// addClientFlags declares how a client command finds the server.
func addClientFlags(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.String("server", "", "server URL (default: the one raibid up wrote in the data dir, else http://127.0.0.1:8080)")
	f.String("token-file", "", "file holding the API token (or set RAIBID_TOKEN; default: the data dir's api-token)")
	f.String("data-dir", DefaultDataDir(), "where raibid up keeps its server URL and token")
	f.StringP("output", "o", "text", "output format: text or json")
}

// newClient resolves server and token: flag or env first, then the files
// `raibid up` wrote in the data dir. A server without a scheme is http.
func newClient(cmd *cobra.Command) (*client.Client, error) {
	f := cmd.Flags()
	r := readFlags(f)
	var server, dataDir, tokenFile string
	read(r, "server", &server, f.GetString)
	read(r, "data-dir", &dataDir, f.GetString)
	read(r, "token-file", &tokenFile, f.GetString)
	if err := r.Err(); err != nil {
		return nil, err
	}
	if server == "" {
		if b, err := os.ReadFile(filepath.Join(dataDir, FileServerURL)); err == nil {
			server = strings.TrimSpace(string(b))
		} else {
			server = "http://127.0.0.1:8080"
		}
	}
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	if u, err := url.Parse(server); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, &UsageError{fmt.Errorf("--server %q: want http(s)://host:port", server)}
	}
	token, source := os.Getenv("RAIBID_TOKEN"), "RAIBID_TOKEN"
	if token == "" {
		source = "none"
		path := tokenFile
		if path == "" {
			path = filepath.Join(dataDir, FileAPIToken)
			if _, err := os.Stat(path); err != nil {
				path = ""
			}
		}
		if path != "" {
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("token file: %w", err)
			}
			token, source = strings.TrimSpace(string(b)), path
		}
	}
	c := client.New(server, token)
	c.TokenSource = source
	return c, nil
}

func outputJSON(cmd *cobra.Command) (bool, error) {
	o, err := cmd.Flags().GetString("output")
	if err != nil {
		return false, err
	}
	switch o {
	case "text", "":
		return false, nil
	case "json":
		return true, nil
	}
	return false, &UsageError{fmt.Errorf("--output %q: use text or json", o)}
}

// clientAndFormat is what every job subcommand starts with.
func clientAndFormat(cmd *cobra.Command) (*client.Client, bool, error) {
	asJSON, err := outputJSON(cmd)
	if err != nil {
		return nil, false, err
	}
	c, err := newClient(cmd)
	return c, asJSON, err
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// jobEndedBadly is a job that ended in anything but success: exit code 1.
type jobEndedBadly struct {
	id     string
	status ci.Status
}

func (e *jobEndedBadly) Error() string { return fmt.Sprintf("job %s ended %s", e.id, e.status) }

func newJobCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "job",
		Short: "List, show, follow, start, cancel and retry jobs",
	}
	addClientFlags(cmd)
	cmd.AddCommand(newJobListCmd(), newJobShowCmd(), newJobLogsCmd(), newJobRunCmd(), newJobArtifactsCmd(), newJobDeadLettersCmd(),
		newJobActionCmd("cancel", "Cancel a pending or running job (or every one of a matrix)", (*client.Client).CancelJob,
			func(c *client.Client, ctx context.Context, g string) (any, error) { return c.CancelGroup(ctx, g) }),
		newJobActionCmd("retry", "Run a finished job again as a new job (or a matrix's that did not pass)", (*client.Client).RetryJob,
			func(c *client.Client, ctx context.Context, g string) (any, error) { return c.RetryGroup(ctx, g) }))
	for _, sub := range cmd.Commands() {
		if strings.HasSuffix(sub.Use, " ID") {
			sub.ValidArgsFunction = completeJobIDs
		}
		if sub.Flags().Lookup("status") != nil {
			_ = sub.RegisterFlagCompletionFunc("status", completeStatuses)
		}
	}
	return cmd
}

// completeJobIDs offers the short ids of the newest jobs, described by
// repository, branch and status (bash and zsh show the description).
func completeJobIDs(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	c, err := newClient(cmd)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Second)
	defer cancel()
	page, err := c.ListJobs(ctx, api.JobFilter{Limit: 50})
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	out := make([]string, 0, len(page.Jobs))
	for _, j := range page.Jobs {
		out = append(out, fmt.Sprintf("%s\t%s %s %s", shortID(j.ID), j.Repo, j.Branch, j.Status))
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeStatuses offers the job statuses.
func completeStatuses(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return []string{"pending", "running", "success", "failed", "cancelled", "error"}, cobra.ShellCompDirectiveNoFileComp
}

func newJobListCmd() *cobra.Command {
	var filter api.JobFilter
	var status string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List jobs, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, asJSON, err := clientAndFormat(cmd)
			if err != nil {
				return err
			}
			filter.Status = ci.Status(status)
			page, err := c.ListJobs(cmd.Context(), filter)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), page)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATUS\tREPO\tBRANCH\tEVENT\tMATRIX\tCOMMIT\tDURATION\tAGENT\tCREATED")
			now := time.Now()
			for _, j := range page.Jobs {
				j := *termtext.Job(&j) // fields from webhooks and builds, shown as data
				matrix := dash(ci.MatrixLabel(j.Matrix))
				if j.Group != "" {
					matrix += " (group " + shortID(j.Group) + ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, j.Status, j.Repo, dash(firstOf(j.Branch, j.Tag)),
					dash(j.Event), matrix, short(j.Commit, 8), duration(&j, now), dash(j.Agent), j.CreatedAt.Local().Format("2006-01-02 15:04:05"))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if page.NextCursor != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "more: --cursor %s\n", page.NextCursor)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&status, "status", "", "only jobs in this status")
	f.StringVar(&filter.Repo, "repo", "", "only jobs of this owner/name")
	f.StringVar(&filter.Branch, "branch", "", "only jobs of this branch")
	f.StringVar(&filter.Group, "group", "", "only the jobs of this matrix (its group id, or the short id printed beside it)")
	f.StringVar(&filter.Event, "event", "", "only jobs of this event: push, pull_request, tag, manual, cron")
	f.IntVar(&filter.Limit, "limit", 20, "jobs per page (1-500)")
	f.StringVar(&filter.Cursor, "cursor", "", "the page after this cursor")
	return cmd
}

func short(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return dash(s)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func duration(j *ci.Job, now time.Time) string {
	if j.StartedAt == nil {
		return "-"
	}
	return j.Duration(now).Round(100 * time.Millisecond).String()
}

func newJobShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show one job and its steps",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, asJSON, err := clientAndFormat(cmd)
			if err != nil {
				return err
			}
			j, err := c.GetJob(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), j)
			}
			printJob(cmd.OutOrStdout(), j)
			return nil
		},
	}
}

func printJob(w io.Writer, j *ci.Job) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	now := time.Now()
	j = termtext.Job(j) // every value may come from a webhook or a build: shown as data
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("ID", j.ID)
	row("Status", string(j.Status))
	row("Repo", j.Repo+" @ "+j.Branch)
	row("Commit", dash(j.Commit))
	if j.Author != "" || j.Message != "" {
		row("Author", dash(j.Author))
		row("Message", strings.SplitN(strings.TrimSpace(j.Message), "\n", 2)[0])
	}
	row("Attempt", fmt.Sprint(j.Attempt))
	if j.RetryOf != "" {
		row("Retry of", j.RetryOf)
	}
	row("Event", dash(j.Event))
	if len(j.Matrix) > 0 {
		row("Matrix", ci.MatrixLabel(j.Matrix)+" (group "+j.Group+")")
	}
	row("Agent", dash(j.Agent))
	row("Created", j.CreatedAt.Local().Format(time.RFC3339))
	row("Duration", duration(j, now))
	if j.CacheArtifacts > 0 {
		row("Build cache", fmt.Sprintf("%d of %d artifacts fresh (%.0f%%)", j.CacheFresh, j.CacheArtifacts, 100*float64(j.CacheFresh)/float64(j.CacheArtifacts)))
	}
	if j.Error != "" {
		row("Error", j.Error)
	}
	for _, a := range j.Artifacts {
		row("Artifact", fmt.Sprintf("%s  %d bytes  sha256 %s", a.Name, a.Size, a.SHA256))
	}
	tw.Flush()
	if len(j.Steps) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tSTATUS\tEXIT\tDURATION")
	for _, s := range j.Steps {
		exit := "-"
		if s.ExitCode != nil {
			exit = fmt.Sprint(*s.ExitCode)
		}
		d := "-"
		if s.StartedAt != nil {
			d = ci.StepDuration(s.DurationMS)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, ci.StepStatus(s), exit, d)
	}
	tw.Flush()
}

func newJobLogsCmd() *cobra.Command {
	var follow, raw bool
	var step string
	cmd := &cobra.Command{
		Use:   "logs ID",
		Short: "Print a job's log; -f follows it until the job ends (exit 1 unless it succeeded)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, asJSON, err := clientAndFormat(cmd)
			if err != nil {
				return err
			}
			if !follow && !asJSON {
				// A finished job's log is read line by line with each
				// line's step, so mixed lines of steps run at once are
				// marked; a running one's is the plain log so far.
				if j, err := c.GetJob(cmd.Context(), args[0]); err != nil || !j.Status.Final() || step != "" {
					out := cmd.OutOrStdout()
					if !raw {
						out = termtext.NewWriter(out)
					}
					return c.Logs(cmd.Context(), args[0], step, out)
				}
			}
			return followLogs(cmd.Context(), c, args[0], step, cmd.OutOrStdout(), logFormat{json: asJSON, raw: raw}, follow)
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "follow the log until the job ends")
	cmd.Flags().StringVar(&step, "step", "", "only this step's lines")
	addRawFlag(cmd, &raw)
	return cmd
}

// logFormat is how log lines are printed: JSON lines, the step's bytes as
// they are (raw), or — the default — with only their colours kept
// (termtext.Log): a step's output never drives the operator's terminal.
type logFormat struct{ json, raw bool }

// addRawFlag adds --raw to a command that prints a step's output.
func addRawFlag(cmd *cobra.Command, raw *bool) {
	cmd.Flags().BoolVar(raw, "raw", false, "print the steps' output byte for byte, escape sequences included (default: colours only)")
}

// stepMarks tells which step the lines that follow belong to when steps of
// a graph run at once and their lines arrive mixed: a line of a step that
// wrote before, after another step's lines, gets a "── step ──" line above
// it. Steps that run one after the other write in runs and get none.
type stepMarks struct {
	last string
	seen map[string]bool
}

// next is the mark to print before a line of step, or "".
func (m *stepMarks) next(step string) string {
	if m.seen == nil {
		m.seen = map[string]bool{}
	}
	mark := ""
	if step != m.last && m.seen[step] {
		mark = "── " + step + " ──"
	}
	m.last, m.seen[step] = step, true
	return mark
}

// followLogs prints lines as they come (JSON lines with format.json) and
// turns a job that did not succeed into exit code 1 when following.
// With step, only that step's lines; a line cut into pieces is joined.
func followLogs(ctx context.Context, c *client.Client, id, step string, w io.Writer, format logFormat, follow bool) error {
	enc := json.NewEncoder(w)
	open := false // a line is printed without its newline: a piece may follow
	var steps stepMarks
	status, err := c.FollowLogs(ctx, id, func(l ci.LogLine) {
		if step != "" && l.Step != step {
			return
		}
		if format.json {
			_ = enc.Encode(l)
			return
		}
		if open && !l.Cont {
			fmt.Fprintln(w)
		}
		if !l.Cont {
			if mark := steps.next(l.Step); mark != "" {
				fmt.Fprintln(w, mark)
			}
		}
		if format.raw {
			fmt.Fprint(w, l.Text)
		} else {
			fmt.Fprint(w, termtext.Log(l.Text))
		}
		open = true
	})
	if open {
		fmt.Fprintln(w)
	}
	if err != nil {
		return err
	}
	if !follow {
		return nil
	}
	if format.json {
		return verdict(id, status)
	}
	// A job may have become the first member of a matrix (its agent
	// queued the other combinations): the verdict is the whole group's.
	j, err := c.GetJob(ctx, id)
	if err != nil || j.Group == "" {
		return verdict(id, status)
	}
	return followGroup(ctx, c, j, w, format)
}

// verdict is nil for success, else the error that exits 1.
func verdict(id string, status ci.Status) error {
	if status != ci.StatusSuccess {
		return &jobEndedBadly{id: id, status: status}
	}
	return nil
}

// groupPoll is how often followGroup looks at the members still running.
const groupPoll = 500 * time.Millisecond

// followGroup waits for every member of first's matrix group to end. It
// prints a line per member as it ends (first, whose log was followed,
// included), then the log of each member that did not pass, and returns
// the worst verdict: what `raibid run` of a matrix exits with.
func followGroup(ctx context.Context, c *client.Client, first *ci.Job, w io.Writer, format logFormat) error {
	ended := map[string]*ci.Job{}
	var order []*ci.Job
	for {
		page, err := c.ListJobs(ctx, api.JobFilter{Group: first.Group, Limit: 500})
		if err != nil {
			return err
		}
		running := 0
		members := page.Jobs
		sort.Slice(members, func(a, b int) bool { return members[a].ID < members[b].ID })
		for i := range members {
			m := &members[i]
			if !m.Status.Final() {
				running++
				continue
			}
			if ended[m.ID] == nil {
				ended[m.ID] = m
				order = append(order, m)
				fmt.Fprintf(w, "matrix %s: %s (job %s)\n", memberLabel(m), m.Status, shortID(m.ID))
			}
		}
		if running == 0 && len(ended) > 0 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(groupPoll):
		}
	}
	var worst *ci.Job
	passed := 0
	for _, m := range order {
		if m.Status == ci.StatusSuccess {
			passed++
			continue
		}
		if worst == nil || severity(m.Status) > severity(worst.Status) {
			worst = m
		}
		if m.ID == first.ID {
			continue // its log is above
		}
		fmt.Fprintf(w, "\n--- log of matrix %s (job %s, %s) ---\n", memberLabel(m), shortID(m.ID), m.Status)
		// A build's output drives no terminal: colours only, as the
		// followed log (unless --raw).
		logs := w
		if !format.raw {
			logs = termtext.NewWriter(w)
		}
		if err := c.Logs(ctx, m.ID, "", logs); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "matrix group %s: %d of %d passed\n", shortID(first.Group), passed, len(order))
	if worst == nil {
		return nil
	}
	return &jobEndedBadly{id: worst.ID, status: worst.Status}
}

// severity orders verdicts for a group's worst: an error (the CI's fault)
// over a failure (the build's), over a cancel, over a skip.
func severity(s ci.Status) int {
	switch s {
	case ci.StatusError:
		return 4
	case ci.StatusFailed:
		return 3
	case ci.StatusCancelled:
		return 2
	case ci.StatusSkipped:
		return 1
	}
	return 0
}

// memberLabel names a matrix member by its combination.
func memberLabel(j *ci.Job) string {
	if l := ci.MatrixLabel(j.Matrix); l != "" {
		return l
	}
	return shortID(j.ID)
}

// shortID is the last 8 characters of an id, as lists show it.
func shortID(id string) string {
	if len(id) > 8 {
		return id[len(id)-8:]
	}
	return id
}

func newJobRunCmd() *cobra.Command {
	var n api.NewJob
	var wait, raw bool
	cmd := &cobra.Command{
		Use:   "run --repo OWNER/NAME --branch BRANCH",
		Short: "Start a job by hand; --wait follows it (exit 1 unless it succeeded)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, asJSON, err := clientAndFormat(cmd)
			if err != nil {
				return err
			}
			if n.Repo == "" || n.Branch == "" {
				return &UsageError{fmt.Errorf("--repo and --branch are required")}
			}
			j, err := c.CreateJob(cmd.Context(), n)
			if err != nil {
				return err
			}
			if !wait {
				if asJSON {
					return printJSON(cmd.OutOrStdout(), j)
				}
				fmt.Fprintln(cmd.OutOrStdout(), j.ID)
				return nil
			}
			if !asJSON {
				fmt.Fprintf(cmd.ErrOrStderr(), "job %s queued; following\n", j.ID)
			}
			return followLogs(cmd.Context(), c, j.ID, "", cmd.OutOrStdout(), logFormat{json: asJSON, raw: raw}, true)
		},
	}
	f := cmd.Flags()
	f.StringVar(&n.Repo, "repo", "", "owner/name")
	f.StringVar(&n.Branch, "branch", "", "branch to build")
	f.StringVar(&n.Commit, "commit", "", "commit to build (default: the branch head)")
	f.StringVar(&n.CloneURL, "clone-url", "", "clone URL (default: <gitea-url>/<repo>.git on the server)")
	f.BoolVar(&wait, "wait", false, "follow the job's log until it ends")
	addRawFlag(cmd, &raw)
	return cmd
}

func newJobActionCmd(name, short string, act func(*client.Client, context.Context, string) (*ci.Job, error),
	group func(*client.Client, context.Context, string) (any, error)) *cobra.Command {
	var wholeGroup bool
	cmd := &cobra.Command{
		Use:   name + " ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, asJSON, err := clientAndFormat(cmd)
			if err != nil {
				return err
			}
			if wholeGroup {
				out, err := group(c, cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return printJSON(cmd.OutOrStdout(), out)
			}
			j, err := act(c, cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), j)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", j.ID, j.Status)
			return nil
		},
	}
	cmd.Flags().BoolVar(&wholeGroup, "group", false, "ID is a matrix's group id: act on the whole matrix")
	return cmd
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// newJobArtifactsCmd is `raibid job artifacts ID [NAME] [-O DIR]`: download
// a job's artifacts (or one), each checked against the sha256 the server
// recorded.
func newJobArtifactsCmd() *cobra.Command {
	var listOnly bool
	var dir string
	cmd := &cobra.Command{
		Use:   "artifacts ID [NAME]",
		Short: "Download a job's artifacts (or one) into -O DIR, sha256-checked; --list only lists them",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, asJSON, err := clientAndFormat(cmd)
			if err != nil {
				return err
			}
			list, err := c.Artifacts(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if listOnly {
				if asJSON {
					return printJSON(cmd.OutOrStdout(), list)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tSIZE\tSHA256\tSTEP")
				for _, a := range list {
					name := a.Name
					if a.Expired {
						name += " (expired)"
					}
					fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", name, a.Size, a.SHA256, dash(a.Step))
				}
				return tw.Flush()
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			got := 0
			for _, a := range list {
				if len(args) == 2 && a.Name != args[1] {
					continue
				}
				if a.Expired {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s expired\n", a.Name)
					continue
				}
				path := filepath.Join(dir, filepath.Base(a.Name))
				f, err := os.Create(path)
				if err != nil {
					return err
				}
				sum, err := c.DownloadArtifact(cmd.Context(), args[0], a.Name, f)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					os.Remove(path)
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s  %d bytes  sha256 %s\n", path, a.Size, sum)
				got++
			}
			if got == 0 && len(args) == 2 {
				return fmt.Errorf("job %s has no artifact %s", args[0], args[1])
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&dir, "output-dir", "O", ".", "directory to write the artifacts into")
	cmd.Flags().BoolVar(&listOnly, "list", false, "list the artifacts, do not download")
	return cmd
}

// newJobDeadLettersCmd is `raibid job dead-letters`: the entries delivered
// too often (their jobs ended in error), and --requeue ID to run one's job
// again.
func newJobDeadLettersCmd() *cobra.Command {
	var requeue string
	var limit int
	cmd := &cobra.Command{
		Use:   "dead-letters",
		Short: "List the dead letters (jobs delivered more often than --max-deliveries allows); --requeue ID runs one's job again",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, asJSON, err := clientAndFormat(cmd)
			if err != nil {
				return err
			}
			if requeue != "" {
				j, err := c.RequeueDeadLetter(cmd.Context(), requeue)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), j)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "requeued as job %s (%s %s)\n", j.ID, j.Repo, j.Branch)
				return nil
			}
			letters, err := c.DeadLetters(cmd.Context(), limit)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), letters)
			}
			if len(letters) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no dead letters")
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "LETTER\tJOB\tREPO\tBRANCH\tDELIVERIES\tAGE\tREASON")
			for _, d := range letters {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, shortID(d.JobID), termtext.Field(d.Repo), termtext.Field(d.Branch), d.Deliveries,
					ci.ShortAge(time.Since(d.At)), termtext.Field(d.Reason))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&requeue, "requeue", "", "run the job of this dead letter (its LETTER id) again, as a new job")
	cmd.Flags().IntVar(&limit, "limit", 50, "how many, newest first (at most 500)")
	return cmd
}
