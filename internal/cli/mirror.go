package cli

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
	"github.com/raibid-labs/raibid-ci/internal/forge/github"
	"github.com/raibid-labs/raibid-ci/internal/mirror"
)

// addForgeFlags declares where the mirror code finds GitHub and Gitea.
func addForgeFlags(f *pflag.FlagSet) {
	f.String("github-api-url", github.DefaultAPIURL, "GitHub's REST API (GitHub Enterprise: https://<host>/api/v3)")
	f.Duration("migrate-timeout", gitea.DefaultMigrateTimeout, "how long one mirror migration may take before it is reported as still running in Gitea")
	addSecretFlags(f, "github-token", "gitea-token")
}

// mirrorClients builds the GitHub and Gitea clients from flags and secrets.
func mirrorClients(cmd *cobra.Command, log *slog.Logger) (*github.Client, *gitea.Client, string, error) {
	f := cmd.Flags()
	r := readFlags(f)
	var giteaURL, apiURL string
	var timeout time.Duration
	read(r, "gitea-url", &giteaURL, f.GetString)
	read(r, "github-api-url", &apiURL, f.GetString)
	read(r, "migrate-timeout", &timeout, f.GetDuration)
	if err := r.Err(); err != nil {
		return nil, nil, "", err
	}
	if giteaURL == "" {
		return nil, nil, "", &UsageError{fmt.Errorf("--gitea-url (or RAIBID_GITEA_URL) is needed for mirroring")}
	}
	ghToken, err := loadSecret(cmd, "github-token")
	if err != nil {
		return nil, nil, "", err
	}
	gtToken, err := loadSecret(cmd, "gitea-token")
	if err != nil {
		return nil, nil, "", err
	}
	gh, gt := forgeClients(giteaURL, apiURL, ghToken, gtToken, timeout, log)
	return gh, gt, ghToken.Reveal(), nil
}

// forgeClients are the GitHub and Gitea clients mirroring uses.
func forgeClients(giteaURL, githubAPI string, ghToken, gtToken Secret, migrateTimeout time.Duration, log *slog.Logger) (*github.Client, *gitea.Client) {
	if gtToken == "" {
		log.Warn("no Gitea token (RAIBID_GITEA_TOKEN or --gitea-token-file): Gitea will refuse to create mirrors")
	}
	gt := gitea.NewClient(giteaURL, gtToken.Reveal(), log)
	if migrateTimeout > 0 {
		gt.MigrateTimeout = migrateTimeout
	}
	return github.NewClient(githubAPI, ghToken.Reveal(), log), gt
}

func newMirrorCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mirror",
		Short: "Mirror GitHub repositories and organisations into Gitea (plan, sync, list)",
		Long: "Reads mirrors.yaml and talks to GitHub and Gitea directly.\n" +
			"Tokens come from RAIBID_GITHUB_TOKEN and RAIBID_GITEA_TOKEN (or --github-token-file, --gitea-token-file).",
	}
	pf := cmd.PersistentFlags()
	pf.StringP("file", "f", mirror.DefaultFile, "the mirrors file")
	pf.String("gitea-url", "", "the Gitea instance")
	pf.StringP("output", "o", "text", "output format: text or json")
	addForgeFlags(pf)
	cmd.AddCommand(newMirrorPlanCmd(), newMirrorSyncCmd(), newMirrorListCmd())
	return cmd
}

// mirrorSetup is what each mirror subcommand starts with.
func mirrorSetup(cmd *cobra.Command) (cfg *mirror.Config, gh *github.Client, gt *gitea.Client, ghToken string, asJSON bool, err error) {
	if asJSON, err = outputJSON(cmd); err != nil {
		return
	}
	var file string
	if file, err = cmd.Flags().GetString("file"); err != nil {
		return
	}
	if cfg, err = mirror.Load(file); err != nil {
		return
	}
	log, err := newLogger(cmd, false)
	if err != nil {
		return
	}
	gh, gt, ghToken, err = mirrorClients(cmd, log)
	return
}

func newMirrorPlanCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "plan",
		Short: "Show what sync would do (create / exists / excluded / conflict), changing nothing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, gh, gt, _, asJSON, err := mirrorSetup(cmd)
			if err != nil {
				return err
			}
			items, err := mirror.Plan(cmd.Context(), cfg, gh, gt)
			if err != nil {
				return err
			}
			return printItems(cmd.OutOrStdout(), items, asJSON)
		},
	}
}

func newMirrorSyncCmd() *cobra.Command {
	var opts mirror.SyncOptions
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Create the missing mirrors in Gitea (what exists is left alone)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, gh, gt, ghToken, asJSON, err := mirrorSetup(cmd)
			if err != nil {
				return err
			}
			items, err := mirror.Plan(cmd.Context(), cfg, gh, gt)
			if err != nil {
				return err
			}
			opts.GitHubToken = ghToken
			res := mirror.Sync(cmd.Context(), items, gt, opts)
			if err := printItems(cmd.OutOrStdout(), res, asJSON); err != nil {
				return err
			}
			bad := 0
			for _, it := range res {
				if it.Action == mirror.ActionFailed || it.Action == mirror.ActionConflict || it.Action == mirror.ActionError {
					bad++
				}
			}
			if bad > 0 {
				return fmt.Errorf("%d of %d repositories were not mirrored; see the table", bad, len(res))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&opts.Repair, "repair", false, "delete the empty repository a failed migration left behind and migrate again")
	cmd.Flags().BoolVar(&opts.CreateOwners, "create-owners", false, "create target owners missing in Gitea as organisations")
	return cmd
}

func newMirrorListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the mirrors in Gitea with their last sync (stale after 24 h)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, gt, _, asJSON, err := mirrorSetup(cmd)
			if err != nil {
				return err
			}
			list, err := mirror.List(cmd.Context(), cfg, gt, time.Now())
			if err != nil {
				return err
			}
			if asJSON {
				if list == nil {
					list = []mirror.Mirror{}
				}
				return printJSON(cmd.OutOrStdout(), list)
			}
			printMirrors(cmd.OutOrStdout(), list, time.Now())
			return nil
		},
	}
}

func printItems(w io.Writer, items []mirror.Item, asJSON bool) error {
	if asJSON {
		if items == nil {
			items = []mirror.Item{}
		}
		return printJSON(w, items)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ACTION\tSOURCE\tTARGET\tREASON")
	counts := map[mirror.Action]int{}
	for _, it := range items {
		counts[it.Action]++
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", it.Action, it.Source, it.Target, it.Reason)
	}
	tw.Flush()
	var parts []string
	for _, a := range []mirror.Action{mirror.ActionCreate, mirror.ActionCreated, mirror.ActionRepaired, mirror.ActionExists,
		mirror.ActionExcluded, mirror.ActionRunning, mirror.ActionConflict, mirror.ActionFailed, mirror.ActionError} {
		if counts[a] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[a], a))
		}
	}
	if len(parts) == 0 {
		parts = []string{"no repositories"}
	}
	fmt.Fprintln(w, strings.Join(parts, ", "))
	return nil
}

func printMirrors(w io.Writer, list []mirror.Mirror, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MIRROR\tSOURCE\tLAST SYNC\tINTERVAL\tSTATE")
	stale := 0
	for _, m := range list {
		last, state := "never", "ok"
		if !m.LastSync.IsZero() {
			last = m.LastSync.Local().Format("2006-01-02 15:04") + " (" + ci.ShortAge(now.Sub(m.LastSync)) + " ago)"
		}
		switch {
		case m.Missing:
			state = "MISSING"
		case m.Stale:
			state = "STALE"
		}
		if m.Stale {
			stale++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Target, m.Source, last, dash(m.Interval), state)
	}
	tw.Flush()
	fmt.Fprintf(w, "%d mirrors, %d stale (no sync for %s)\n", len(list), stale, mirror.StaleAfter)
}
