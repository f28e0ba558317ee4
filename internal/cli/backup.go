package cli

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/raibid-labs/raibid-ci/internal/localredis"
)

// notBackedUp are the data dir's entries a backup leaves out: the agents'
// work dir (clones and build caches, made again by the next job) and what
// raibid up writes anew at every start.
var notBackedUp = map[string]bool{"work": true, "redis/redis.log": true, "redis/redis.conf": true, "server-url": true}

// newBackupCmd is `raibid backup`: the single box's data dir (Redis's AOF,
// the tokens and secrets key, artifacts) into one archive, while raibid up
// runs or not.
func newBackupCmd() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "backup [FILE]",
		Short: "Back up raibid up's data dir (jobs, logs, secrets, tokens, artifacts) into FILE (default raibid-backup-DATE.tgz)",
		Long: "Back up the data dir of raibid up into a .tgz: its Redis (jobs, logs, schedules, secrets — the AOF\n" +
			"is rewritten first when raibid runs, so it can keep running), the API token, webhook secret and\n" +
			"secrets key, and the artifacts. The agents' work dir (clones, build caches) is left out.\n" +
			"The archive holds credentials: it is written 0600; keep it as safe as the data dir.\n" +
			"raibid restore puts it back. Kubernetes installs back up Redis and Gitea as docs/operations.md says.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := "raibid-backup-" + time.Now().Format("2006-01-02-150405") + ".tgz"
			if len(args) == 1 {
				file = args[0]
			}
			if _, err := os.Stat(filepath.Join(dataDir, "api-token")); err != nil {
				return &UsageError{fmt.Errorf("%s is not a raibid up data dir (no api-token): --data-dir names it", dataDir)}
			}
			rdb, err := localredis.Running(cmd.Context(), filepath.Join(dataDir, "redis"))
			switch {
			case err == nil:
				err = localredis.Checkpoint(cmd.Context(), rdb)
				rdb.Close()
				if err != nil {
					return err
				}
			case errors.Is(err, localredis.ErrNotRunning):
				fmt.Fprintln(cmd.ErrOrStderr(), "raibid is not running on this data dir: its files are copied as they are")
			}
			n, size, err := writeBackup(dataDir, file)
			if err != nil {
				_ = os.Remove(file)
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d files, %.1f MB from %s (it holds the API token and secrets key: keep it safe)\n",
				file, n, float64(size)/1e6, dataDir)
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", DefaultDataDir(), "the data dir of raibid up")
	return cmd
}

// writeBackup packs dataDir, but notBackedUp, into a new 0600 file.
func writeBackup(dataDir, file string) (files int, size int64, err error) {
	out, err := os.OpenFile(file, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, 0, err
	}
	defer out.Close()
	zw := gzip.NewWriter(out)
	tw := tar.NewWriter(zw)
	err = filepath.WalkDir(dataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dataDir, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if notBackedUp[rel] {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return tw.WriteHeader(&tar.Header{Name: rel + "/", Typeflag: tar.TypeDir, Mode: 0o700, ModTime: info.ModTime()})
		case !d.Type().IsRegular():
			return nil // links and the like are not the data dir's own
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		// A file still being appended to (Redis's AOF) is copied up to the
		// size it had: the header's.
		if err := tw.WriteHeader(&tar.Header{Name: rel, Typeflag: tar.TypeReg, Mode: 0o600, Size: info.Size(), ModTime: info.ModTime()}); err != nil {
			return err
		}
		if _, err := io.CopyN(tw, f, info.Size()); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		files++
		size += info.Size()
		return nil
	})
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = zw.Close()
	}
	if err == nil {
		err = out.Close()
	}
	return files, size, err
}

// newRestoreCmd is `raibid restore FILE`: a backup back into a data dir,
// with raibid stopped.
func newRestoreCmd() *cobra.Command {
	var dataDir string
	var force bool
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Put a raibid backup back into the data dir (raibid must be stopped); then start raibid up",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if rdb, err := localredis.Running(cmd.Context(), filepath.Join(dataDir, "redis")); err == nil {
				rdb.Close()
				return &UsageError{fmt.Errorf("raibid is running on %s: stop it first (Ctrl-C raibid up, or systemctl stop raibid)", dataDir)}
			}
			if _, err := os.Stat(filepath.Join(dataDir, "api-token")); err == nil && !force {
				return &UsageError{fmt.Errorf("%s already holds a raibid data dir: --force replaces its Redis, tokens and artifacts with the backup's", dataDir)}
			}
			if force {
				// The backup's AOF must not mix with the files it replaces.
				if err := os.RemoveAll(filepath.Join(dataDir, "redis", "appendonlydir")); err != nil {
					return err
				}
			}
			n, err := readBackup(args[0], dataDir)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored %d files into %s; start it with: raibid up --data-dir %s\n", n, dataDir, dataDir)
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", DefaultDataDir(), "the data dir of raibid up")
	cmd.Flags().BoolVar(&force, "force", false, "replace what the data dir holds")
	return cmd
}

// readBackup unpacks a backup into dataDir: directories and regular files
// only, each path inside dataDir (an archive is input: a name climbing out
// with .. or an absolute one is refused).
func readBackup(file, dataDir string) (int, error) {
	in, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		return 0, fmt.Errorf("%s is not a raibid backup: %w", file, err)
	}
	tr := tar.NewReader(zr)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return 0, err
	}
	n := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("%s: %w", file, err)
		}
		name := path.Clean(h.Name)
		if !fs.ValidPath(name) || name == "." || strings.HasPrefix(name, "../") {
			return n, fmt.Errorf("%s: entry %q is outside the data dir: not a raibid backup", file, h.Name)
		}
		dst := filepath.Join(dataDir, filepath.FromSlash(name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o700); err != nil {
				return n, err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
				return n, err
			}
			f, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY|syscall.O_NOFOLLOW, 0o600)
			if err != nil {
				return n, err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return n, err
			}
			n++
		default:
			return n, fmt.Errorf("%s: entry %q is not a file or directory: not a raibid backup", file, h.Name)
		}
	}
}
