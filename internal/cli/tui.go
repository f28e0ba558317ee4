package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/raibid-labs/raibid-ci/internal/tui"
)

func newTUICmd() *cobra.Command {
	var logPath string
	cmd := &cobra.Command{
		Use:   "tui",
		Short: "The real-time dashboard: jobs, agents, queue, logs, cancel, trigger, scale",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			// The dashboard owns the screen: logs go to a file.
			dataDir, err := cmd.Flags().GetString("data-dir")
			if err != nil {
				return err
			}
			if logPath == "" {
				logPath = filepath.Join(dataDir, "tui.log")
			}
			if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
				return fmt.Errorf("log file: %w", err)
			}
			f, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
			if err != nil {
				return fmt.Errorf("log file: %w", err)
			}
			defer f.Close()
			slog.SetDefault(slog.New(slog.NewTextHandler(f, nil)))
			return tui.Run(cmd.Context(), c, tui.Options{Server: c.BaseURL(), Branch: checkedOutBranch(cmd.Context())})
		},
	}
	addClientFlags(cmd)
	// The dashboard has no machine-readable output.
	_ = cmd.PersistentFlags().MarkHidden("output")
	cmd.Flags().StringVar(&logPath, "log-file", "", "where the dashboard logs (default <data-dir>/tui.log)")
	return cmd
}

// checkedOutBranch is the branch checked out in the working directory, or
// "" outside a checkout (or on a detached head).
func checkedOutBranch(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "git", "rev-parse", "--abbrev-ref", "HEAD").Output()
	b := strings.TrimSpace(string(out))
	if err != nil || b == "HEAD" {
		return ""
	}
	return b
}
