package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/raibid-labs/raibid-ci/internal/api"
)

// newScheduleCmd is `raibid schedule add|list|rm`: cron schedules that queue
// a job (event cron) for a branch.
func newScheduleCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schedule",
		Short: "Cron schedules: a job for a branch at set times (event cron)",
	}
	addClientFlags(cmd)
	var fields api.NewSchedule // add's flags
	add := &cobra.Command{
		Use:   "add OWNER/REPO --branch BRANCH --cron \"0 3 * * *\"",
		Short: "Add a schedule (five cron fields in the server's time zone, or @hourly, @daily, @weekly)",
		Long: `Add a schedule (five cron fields in the server's time zone, or @hourly, @daily, @weekly).

It fires at the start of each minute its fields name, as cron does, from the
first such minute after it is added: "* * * * *" added at 12:00:53 first fires
at 12:01:00. A firing missed while no server ran (up to 5 minutes back) is
caught up once when a server starts; several servers fire it once between them.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n := fields
			n.Repo = args[0]
			if n.Cron == "" {
				return &UsageError{fmt.Errorf("--cron is required, e.g. --cron \"0 3 * * *\"")}
			}
			c, asJSON, err := clientAndFormat(cmd)
			if err != nil {
				return err
			}
			s, err := c.AddSchedule(cmd.Context(), n)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), s)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "schedule %s: %s@%s at %q\n", s.ID, s.Repo, s.Branch, s.Cron)
			return nil
		},
	}
	add.Flags().StringVar(&fields.Branch, "branch", "main", "the branch to build")
	add.Flags().StringVar(&fields.Cron, "cron", "", "when: minute hour day month weekday (\"0 3 * * *\" is 03:00 daily)")
	add.Flags().StringVar(&fields.CloneURL, "clone-url", "", "where agents clone from (default the server's Gitea)")

	list := &cobra.Command{
		Use:   "list",
		Short: "List the schedules, with their last firing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, asJSON, err := clientAndFormat(cmd)
			if err != nil {
				return err
			}
			ss, err := c.Schedules(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), ss)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tREPO\tBRANCH\tCRON\tLAST FIRED\tLAST JOB")
			for _, s := range ss {
				last := "never"
				if !s.LastFired.IsZero() {
					last = s.LastFired.Local().Format("2006-01-02 15:04")
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Repo, s.Branch, s.Cron, last, dashIfBlank(s.LastJob))
			}
			return tw.Flush()
		},
	}
	rm := &cobra.Command{
		Use:   "rm ID",
		Short: "Remove a schedule",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := clientAndFormat(cmd)
			if err != nil {
				return err
			}
			if err := c.RemoveSchedule(cmd.Context(), strings.TrimSpace(args[0])); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "schedule %s removed\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(add, list, rm)
	return cmd
}

func dashIfBlank(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
