package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/raibid-labs/raibid-ci/internal/cache"
	"github.com/raibid-labs/raibid-ci/internal/ci"
)

// addCacheFlags are shared by `raibid agent`, `raibid up` and `raibid cache`.
func addCacheFlags(cmd *cobra.Command, dir string) {
	f := cmd.Flags()
	f.String("cache-dir", dir, "build cache root: cargo target dirs per repository and toolchain (\"off\" disables)")
	f.String("cache-max-age", "7d", "prune target dirs unused this long (at start and hourly)")
	f.String("cache-max-size", "50GB", "prune least recently used target dirs past this size")
}

// cacheFromFlags returns the cache and its limits, or nil when it is off.
func cacheFromFlags(cmd *cobra.Command) (*cache.Cache, time.Duration, int64, error) {
	c, err := cacheConfigFromFlags(readFlags(cmd.Flags()))
	return c.open(), c.MaxAge, c.MaxSize, err
}

func newCacheCmd() *cobra.Command {
	var pruneWork, statsWork string // --workdir of each (their defaults differ)
	cmd := &cobra.Command{Use: "cache", Short: "Inspect and prune the agents' build cache"}
	prune := &cobra.Command{
		Use:   "prune",
		Short: "Remove target dirs past --cache-max-age, then least recently used past --cache-max-size",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := useDataDir(cmd); err != nil {
				return err
			}
			c, age, size, err := cacheFromFlags(cmd)
			if err != nil || c == nil {
				return err
			}
			removed, err := c.Prune(pruneWork, age, size, time.Now())
			for _, e := range removed {
				fmt.Fprintf(cmd.OutOrStdout(), "removed %s (%s, last used %s)\n", e.Path, human(e.Size), e.LastUsed.Local().Format(time.DateTime))
			}
			if err == nil && len(removed) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "nothing to prune")
			}
			return err
		},
	}
	stats := &cobra.Command{
		Use:   "stats",
		Short: "Show what agents keep on disk, part by part, and the cached target dirs, least recently used first",
		Long: "Everything an agent keeps: target dirs, the sccache store, the cargo homes (one per repository, under\n" +
			"--cache-dir), workspace slots, bare mirrors and step homes (under --workdir). With\n" +
			"--data-dir (raibid up's), both are read from there.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			if err := useDataDir(cmd); err != nil {
				return err
			}
			c, _, _, err := cacheFromFlags(cmd)
			if err != nil || c == nil {
				return err
			}
			parts := c.Usage(statsWork)
			entries, err := c.Entries()
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), map[string]any{"parts": parts, "target_dirs": entries})
			}
			var all int64
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PART\tSIZE\tWHERE")
			for _, p := range parts {
				all += p.Size
				fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Name, human(p.Size), p.Path)
			}
			fmt.Fprintf(tw, "all\t%s\t\n\n", human(all))
			if err := tw.Flush(); err != nil {
				return err
			}
			var total int64
			tw = tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TARGET DIR\tSIZE\tLAST USED")
			for _, e := range entries {
				total += e.Size
				fmt.Fprintf(tw, "%s\t%s\t%s\n", filepath.Base(e.Path), human(e.Size), e.LastUsed.Local().Format(time.DateTime))
			}
			fmt.Fprintf(tw, "total\t%s\t%s\n", human(total), ci.Plural(len(entries), "dir"))
			return tw.Flush()
		},
	}
	for _, c := range []*cobra.Command{prune, stats} {
		addCacheFlags(c, defaultCacheDir())
		c.Flags().StringP("output", "o", "text", "output format: text or json")
	}
	prune.Flags().StringVar(&pruneWork, "workdir", "", "the agents' work dir: its mirrors and workspace slots are pruned too")
	stats.Flags().StringVar(&statsWork, "workdir", filepath.Join(os.TempDir(), "raibid-work"), "the agents' work dir (workspaces, mirrors)")
	for _, c := range []*cobra.Command{prune, stats} {
		c.Flags().String("data-dir", "", "raibid up's data dir: its cache and work dir")
	}
	cmd.AddCommand(prune, stats)
	return cmd
}

// useDataDir points --cache-dir and --workdir into --data-dir (raibid up's)
// unless they were given.
func useDataDir(cmd *cobra.Command) error {
	f := cmd.Flags()
	dataDir, err := f.GetString("data-dir")
	if err != nil {
		return err
	}
	if dataDir != "" {
		if !f.Changed("cache-dir") {
			if err := f.Set("cache-dir", filepath.Join(dataDir, "cache")); err != nil {
				return err
			}
		}
		if !f.Changed("workdir") {
			if err := f.Set("workdir", filepath.Join(dataDir, "work")); err != nil {
				return err
			}
		}
	}
	return nil
}

// defaultCacheDir is where `raibid agent` keeps its cache; `raibid up` uses
// <data-dir>/cache.
func defaultCacheDir() string { return filepath.Join(os.TempDir(), "raibid-cache") }

func human(n int64) string {
	const unit = 1 << 10
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
