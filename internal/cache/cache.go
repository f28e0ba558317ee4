// Package cache owns the agents' build cache on disk: one cargo target
// directory per scope (a repository, or a fork's pull request) and
// toolchain, and one cargo home per scope, kept between jobs so a rebuild
// compiles only what changed, and pruned least recently used first when it
// grows past its size or age limits. Builds write these directories, so the
// cache's own bookkeeping (in-use locks) lives beside them, never inside,
// and what it writes inside goes through internal/safefs. It knows nothing
// of jobs or queues.
package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/safefs"
)

// Cache is a cache root.
type Cache struct{ Root string }

// The kinds of scoped directory a cache root holds, one per scope and
// (for target dirs) toolchain: <Root>/<kind>/<name>.
const (
	targetKind    = "target"
	cargoHomeKind = "cargo-homes"
	// legacyCargoHome is the cargo home every repository once shared: a
	// build could leave there what another repository's build then ran. It
	// is never used now; Prune removes it.
	legacyCargoHome = "cargo-home"
	// locksDir holds the in-use locks of scoped directories. It is the
	// agent's alone: a lock inside a directory a build writes could be
	// replaced by a link the agent would then open as root.
	locksDir = "locks"
)

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// TargetDir is the cargo target directory of builds in scope made with
// toolchain, made if missing, and marked used now (pruning goes by that
// mark). A scope is what may share a cache (see ci.CacheScope: a
// repository, and a fork's pull request apart from it). Two jobs of the
// same scope may share it: cargo locks a build directory itself.
func (c Cache) TargetDir(scope, toolchain string) (string, error) {
	return c.scoped(targetKind, scope, toolchain)
}

// scoped is <Root>/<kind>/<readable scope>-<hash of scope and extra>, made
// if missing and marked used now.
func (c Cache) scoped(kind, scope, extra string) (string, error) {
	sum := sha256.Sum256([]byte(scope + "\x00" + extra))
	name := unsafeChars.ReplaceAllString(strings.ReplaceAll(scope, "/", "_"), "-")
	if len(name) > 60 {
		name = name[:60]
	}
	parent := filepath.Join(c.Root, kind)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("cache: %w", err)
	}
	dir := filepath.Join(parent, name+"-"+hex.EncodeToString(sum[:6]))
	// The parent is the agent's (builds cannot write it), so dir itself is
	// never a link a build planted: Mkdir and Chtimes act on dir itself.
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("cache: %w", err)
	}
	now := time.Now()
	if err := os.Chtimes(dir, now, now); err != nil {
		return "", fmt.Errorf("cache: %w", err)
	}
	return dir, nil
}

// Entry is one target directory.
type Entry struct {
	Path     string    `json:"path"`
	Size     int64     `json:"size_bytes"`
	LastUsed time.Time `json:"last_used"`
}

// Entries lists the scoped directories (target dirs and cargo homes),
// least recently used first.
func (c Cache) Entries() ([]Entry, error) {
	var out []Entry
	for _, kind := range []string{targetKind, cargoHomeKind} {
		dirs, err := os.ReadDir(filepath.Join(c.Root, kind))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
		for _, d := range dirs {
			if !d.IsDir() { // a DirEntry's type is the entry's own: links are not dirs
				continue
			}
			info, err := d.Info()
			if err != nil {
				continue
			}
			p := filepath.Join(c.Root, kind, d.Name())
			out = append(out, Entry{Path: p, Size: duSize(p), LastUsed: info.ModTime()})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LastUsed.Before(out[j].LastUsed) })
	return out, nil
}

func duSize(root string) int64 {
	var n int64
	_ = filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// Prune keeps everything agents keep within the limits: it removes what
// was not used for longer than maxAge (0: no age limit), then the least
// recently used until the whole — the cache root's target dirs, sccache
// store and cargo homes, and workDir's mirrors and workspace slots — fits in
// maxSize bytes (0: no size limit). Target dirs, cargo homes, mirrors and
// slots are what it removes (the sccache store has its own limit); nothing
// a running job or fetch holds is ever removed. workDir
// "" leaves the work dir alone. It returns what it removed.
func (c Cache) Prune(workDir string, maxAge time.Duration, maxSize int64, now time.Time) ([]Entry, error) {
	targets, err := c.Entries()
	if err != nil {
		return nil, err
	}
	var items []prunable
	for _, e := range targets {
		path := e.Path
		items = append(items, prunable{e, func() (bool, error) { return c.removeUnused(path) }})
	}
	// The cargo home all repositories once shared: nothing uses it now.
	if err := os.RemoveAll(filepath.Join(c.Root, legacyCargoHome)); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	if workDir != "" {
		items = append(items, workEntries(workDir)...)
	}
	sort.Slice(items, func(i, j int) bool { return items[i].LastUsed.Before(items[j].LastUsed) })
	var total int64
	for _, p := range c.Usage(workDir) {
		total += p.Size
	}
	var removed []Entry
	for _, it := range items { // least recently used first
		tooOld := maxAge > 0 && now.Sub(it.LastUsed) > maxAge
		tooBig := maxSize > 0 && total > maxSize
		if !tooOld && !tooBig {
			continue
		}
		gone, err := it.remove()
		if err != nil {
			return removed, fmt.Errorf("cache: %w", err)
		}
		if !gone {
			continue // a running job or fetch holds it
		}
		total -= it.Size
		removed = append(removed, it.Entry)
	}
	return removed, nil
}

// ParseSize reads sizes such as 50GB, 512MiB, 1.5G or 1000 (bytes).
func ParseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{{"TIB", 1 << 40}, {"GIB", 1 << 30}, {"MIB", 1 << 20}, {"KIB", 1 << 10},
		{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3},
		{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}}
	u := strings.ToUpper(strings.TrimSpace(s))
	mult := 1.0
	for _, x := range units {
		if strings.HasSuffix(u, x.suffix) {
			u, mult = strings.TrimSpace(strings.TrimSuffix(u, x.suffix)), x.mult
			break
		}
	}
	var v float64
	if _, err := fmt.Sscanf(u, "%g", &v); err != nil || v < 0 {
		return 0, fmt.Errorf("size %q: use a number with KB, MB, GB, TB (or KiB, MiB, GiB)", s)
	}
	return int64(v * mult), nil
}

// ParseAge reads durations with a day unit too: 7d, 36h, 90m.
func ParseAge(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(strings.TrimSpace(s), "d"); ok {
		var n float64
		if _, err := fmt.Sscanf(d, "%g", &n); err != nil || n < 0 {
			return 0, fmt.Errorf("age %q: use e.g. 7d, 36h or 90m", s)
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("age %q: use e.g. 7d, 36h or 90m", s)
	}
	return v, nil
}

// cargoConfigFiles are what a cargo home holds besides downloads: settings
// (source replacement, registries, net) and registry tokens.
var cargoConfigFiles = []string{"config.toml", "config"}

// CargoHome is the cargo home of builds in scope: the registry index,
// crate downloads and git checkouts are fetched once per scope. It is not
// shared between scopes because a build can write it: what one repository's
// build leaves in bin/ or the registry cache, another's must never run. The
// agent's own cargo configuration (from userHome, its CARGO_HOME or ~/.cargo)
// is copied in so source replacements still apply inside a sandbox that
// cannot see the agent's home; its credentials never are (a build that
// publishes gets a pipeline secret).
func (c Cache) CargoHome(scope, userHome string) (string, error) {
	dir, err := c.scoped(cargoHomeKind, scope, "")
	if err != nil {
		return "", err
	}
	if userHome == "" {
		return dir, nil
	}
	for _, name := range cargoConfigFiles {
		b, err := os.ReadFile(filepath.Join(userHome, name))
		if err != nil {
			continue
		}
		if err := safefs.WriteFile(dir, name, b, 0o644); err != nil {
			return "", fmt.Errorf("cache: %w", err)
		}
	}
	return dir, nil
}

// Port is a loopback port for this cache root's sccache server, from 20000 to
// 29999: sccache runs one server per port, and two roots must not share one.
func (c Cache) Port() int {
	sum := sha256.Sum256([]byte(c.Root))
	return 20000 + (int(sum[0])<<8|int(sum[1]))%10000
}
