// Package cli holds raibid's commands, one file per subcommand: each turns its
// flags (or their RAIBID_* environment variables) into a configuration and
// runs the packages that do the work. No business logic lives here.
package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Version is set at build time with -ldflags "-X ...cli.Version=v1.2.3".
var Version = "dev"

// UsageError marks a mistake in how raibid was called: exit code 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// ExitCode maps an error from Execute to the process exit code: 0 ok,
// 1 failure, 2 usage error.
func ExitCode(err error) int {
	var u *UsageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &u), strings.HasPrefix(err.Error(), "unknown command"),
		strings.HasPrefix(err.Error(), "unknown flag"), strings.HasPrefix(err.Error(), "unknown shorthand flag"):
		return 2
	}
	return 1
}

// NewRoot builds the raibid command tree.
func NewRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "raibid",
		Short:         "Self-hosted, terminal-first CI with ephemeral agents on Redis Streams",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return bindEnv(cmd)
		},
	}
	root.Version = Version
	root.SetVersionTemplate("raibid {{.Version}}\n")
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &UsageError{err} })
	root.PersistentFlags().String("log-level", "info", "log level: debug, info, warn, error")
	root.AddCommand(newVersionCmd(), newServerCmd(), newUpCmd(), newAgentCmd(), newJobCmd(), newTUICmd(), newCacheCmd(), newMirrorCmd(), newSecretCmd(), newRunCmd(), newPipelineCmd(), newScheduleCmd(), newBackupCmd(), newRestoreCmd())
	for _, c := range root.Commands() {
		wrapArgs(c)
	}
	return root
}

// wrapArgs makes argument-count errors usage errors.
func wrapArgs(c *cobra.Command) {
	if c.Args != nil {
		inner := c.Args
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := inner(cmd, args); err != nil {
				return &UsageError{argsError(cmd, args)}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		wrapArgs(sub)
	}
}

// argsError says in one line what is wrong with a command's arguments,
// from the placeholders of its Use line ("logs ID": "missing ID") rather
// than cobra's "accepts 1 arg(s), received 0".
func argsError(cmd *cobra.Command, args []string) error {
	usage := cmd.UseLine()
	name := strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
	var required []string
	for _, w := range strings.Fields(cmd.Use)[1:] {
		if w == "|" {
			break // the first form is enough to name what is missing
		}
		if !strings.HasPrefix(w, "-") && !strings.HasPrefix(w, "[") && !strings.HasPrefix(w, "\"") && w == strings.ToUpper(w) {
			required = append(required, w)
		}
	}
	if len(args) < len(required) {
		return fmt.Errorf("%s: missing %s (usage: %s)", name, required[len(args)], usage)
	}
	return fmt.Errorf("%s: too many arguments (usage: %s)", name, usage)
}

// EnvName is the environment variable that sets a flag: RAIBID_ and the flag
// name in upper snake case (--redis-url → RAIBID_REDIS_URL).
func EnvName(flag string) string {
	return "RAIBID_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// bindEnv gives every flag not set on the command line its RAIBID_* value.
func bindEnv(cmd *cobra.Command) error {
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		if v, ok := os.LookupEnv(EnvName(f.Name)); ok {
			if serr := cmd.Flags().Set(f.Name, v); serr != nil {
				err = &UsageError{fmt.Errorf("%s: %w", EnvName(f.Name), serr)}
			}
		}
	})
	return err
}

// newLogger returns JSON logs for servers (a log collector reads them) and
// text on a terminal.
func newLogger(cmd *cobra.Command, json bool) (*slog.Logger, error) {
	var level slog.Level
	name, err := cmd.Flags().GetString("log-level")
	if err != nil {
		return nil, err
	}
	if err := level.UnmarshalText([]byte(name)); err != nil {
		return nil, &UsageError{fmt.Errorf("--log-level: %w", err)}
	}
	opts := &slog.HandlerOptions{Level: level}
	if json {
		return slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), opts)), nil
	}
	return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), opts)), nil
}
