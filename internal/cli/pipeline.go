package cli

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/pipeline"
)

// newPipelineCmd is `raibid pipeline show|validate`: what a repository's
// pipeline is, on the developer's own machine, before a push.
func newPipelineCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "pipeline", Short: "Show the pipeline a repository gets, or validate a .raibid.yml"}
	// asked is the event show evaluates when: against (its flags).
	var asked pipeline.Context
	show := &cobra.Command{
		Use:   "show [DIR]",
		Short: "Print the pipeline of the repository in DIR (default .): its .raibid.yml or the default for its language",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			p, err := pipeline.Load(dir, pipeline.DetectTools)
			if errors.Is(err, pipeline.ErrNoPipeline) {
				return &UsageError{err}
			}
			if err != nil {
				return err
			}
			var when *pipeline.Context
			if f := cmd.Flags(); f.Changed("event") || f.Changed("branch") || f.Changed("tag") || f.Changed("changed") {
				c := asked // Changed nil when not given: unknown, path conditions hold
				when = &c
			}
			printPipeline(cmd, p, when)
			return nil
		},
	}
	show.Flags().StringVar(&asked.Event, "event", "push", "evaluate when: for this event (push, pull_request, tag, manual, cron)")
	show.Flags().StringVar(&asked.Branch, "branch", "main", "… this branch (a pull request's base branch)")
	show.Flags().StringVar(&asked.Tag, "tag", "", "… this tag")
	show.Flags().StringSliceVar(&asked.Changed, "changed", nil, "… these changed files (comma separated; not given: unknown, path conditions hold)")
	validate := &cobra.Command{
		Use:   "validate [FILE]",
		Short: "Check a .raibid.yml (default ./.raibid.yml) with the agents' strict parser",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := pipeline.FileName
			if len(args) == 1 {
				file = args[0]
			}
			b, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			p, err := pipeline.Parse(file, b)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid, %s\n", file, ci.Plural(len(p.Steps), "step"))
			return nil
		},
	}
	cmd.AddCommand(show, validate)
	return cmd
}

// printPipeline prints p; with when, also whether it and each step apply.
func printPipeline(cmd *cobra.Command, p *pipeline.Pipeline, when *pipeline.Context) {
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "%s, timeout %s\n", p.Origin, p.Timeout)
	if when != nil {
		if ok, why := p.When.Match(*when); !ok {
			fmt.Fprintf(out, "SKIPPED for this event: %s\n", why)
		} else {
			fmt.Fprintf(out, "runs for this event\n")
		}
	} else if d := p.When.Describe(); d != "" {
		fmt.Fprintf(out, "runs %s\n", d)
	}
	for _, k := range sortedKeys(p.Env) {
		fmt.Fprintf(out, "  env %s=%s\n", k, p.Env[k])
	}
	if combos := p.Matrix.Combinations(); len(combos) > 0 {
		fmt.Fprintf(out, "matrix: %s\n", ci.Plural(len(combos), "job"))
		for _, c := range combos {
			fmt.Fprintf(out, "  %s\n", ci.MatrixLabel(c))
		}
	}
	for _, s := range p.Steps {
		line := fmt.Sprintf("- %s: %s", s.Name, s.Run)
		var notes []string
		if s.SkipReason != "" {
			notes = append(notes, "skipped: "+s.SkipReason)
		}
		if len(s.DependsOn) > 0 {
			notes = append(notes, "depends on "+strings.Join(s.DependsOn, ", "))
		}
		if s.AllowFailure {
			notes = append(notes, "may fail")
		}
		if s.Timeout > 0 {
			notes = append(notes, "timeout "+s.Timeout.String())
		}
		for _, r := range s.Secrets {
			notes = append(notes, "secret "+r.Name+" as $"+r.Env)
		}
		if when != nil {
			if ok, why := s.When.Match(*when); !ok {
				notes = append(notes, "skipped: "+why)
			}
		} else if d := s.When.Describe(); d != "" {
			notes = append(notes, "runs "+d)
		}
		if s.When != nil && len(s.When.Status) > 0 {
			notes = append(notes, "after: "+strings.Join(s.When.Status, ", "))
		}
		if len(notes) > 0 {
			line += "  (" + strings.Join(notes, "; ") + ")"
		}
		fmt.Fprintln(out, line)
	}
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
