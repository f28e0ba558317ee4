package cache

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// The agents' work directory holds, besides one directory per workspace
// slot, these: the bare mirrors of clone URLs, the slots' locks and the
// sandboxed steps' homes. Named here so the agent and the accounting agree.
const (
	MirrorsDir = ".mirrors"
	SlotsDir   = ".slots"
	HomesDir   = ".home"
)

// Use marks dir, a scoped directory of this cache (TargetDir, CargoHome),
// as in use until release: Prune never removes it meanwhile. Any number of
// jobs may use one directory at once. The lock is a file of the agent's
// own, outside dir: dir is the build's to write, and a lock there could be
// a link the agent would open.
func (c Cache) Use(dir string) (release func(), err error) {
	f, err := c.openLock(dir)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
		f.Close()
		return nil, fmt.Errorf("cache: lock %s: %w", dir, err)
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// openLock opens the lock file of a scoped directory:
// <Root>/locks/<kind>/<name>.lock.
func (c Cache) openLock(dir string) (*os.File, error) {
	kind, name := filepath.Base(filepath.Dir(dir)), filepath.Base(dir)
	if filepath.Dir(filepath.Dir(dir)) != filepath.Clean(c.Root) {
		return nil, fmt.Errorf("cache: %s is not a directory of the cache at %s", dir, c.Root)
	}
	locks := filepath.Join(c.Root, locksDir, kind)
	if err := os.MkdirAll(locks, 0o755); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(locks, name+".lock"), os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	return f, nil
}

// removeUnused removes dir unless a job uses it; it reports whether it did.
// os.RemoveAll unlinks links, never follows them.
func (c Cache) removeUnused(dir string) (bool, error) {
	f, err := c.openLock(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return false, nil // in use: kept
	}
	return true, os.RemoveAll(dir)
}

// Part is one kind of thing an agent keeps on disk, and its size.
type Part struct {
	Name string `json:"name"`
	Path string `json:"path"`
	Size int64  `json:"size_bytes"`
}

// Usage is one accounting of everything agents keep: the cache root's
// target dirs, sccache store and cargo homes, and the work
// directory's workspace slots, bare mirrors and step homes.
func (c Cache) Usage(workDir string) []Part {
	parts := []Part{
		{Name: "target dirs", Path: filepath.Join(c.Root, "target")},
		{Name: "sccache", Path: filepath.Join(c.Root, "sccache")},
		{Name: "cargo homes", Path: filepath.Join(c.Root, cargoHomeKind)},
	}
	if workDir != "" {
		parts = append(parts,
			Part{Name: "mirrors", Path: filepath.Join(workDir, MirrorsDir)},
			Part{Name: "step homes", Path: filepath.Join(workDir, HomesDir)})
		var slots int64
		entries, _ := os.ReadDir(workDir)
		for _, e := range entries {
			if e.IsDir() && e.Name()[0] != '.' {
				slots += duSize(filepath.Join(workDir, e.Name()))
			}
		}
		parts = append(parts, Part{Name: "workspaces", Path: workDir, Size: slots})
	}
	for i := range parts {
		if parts[i].Size == 0 {
			parts[i].Size = duSize(parts[i].Path)
		}
	}
	return parts
}

// workEntries lists the work directory's prunable parts — bare mirrors
// and workspace slots — each with how to remove it when nobody holds it.
func workEntries(workDir string) []prunable {
	var out []prunable
	add := func(dir, lock string, also ...string) {
		info, err := os.Stat(dir)
		if err != nil || !info.IsDir() {
			return
		}
		out = append(out, prunable{Entry{Path: dir, Size: duSize(dir), LastUsed: info.ModTime()},
			func() (bool, error) { return removeLocked(lock, append([]string{dir}, also...)...) }})
	}
	mirrors, _ := filepath.Glob(filepath.Join(workDir, MirrorsDir, "*.git"))
	for _, m := range mirrors {
		// The mirror's lock file lives inside it: taken, then gone with it.
		add(m, filepath.Join(m, MirrorLock))
	}
	entries, _ := os.ReadDir(workDir)
	for _, d := range entries {
		if d.IsDir() && d.Name()[0] != '.' {
			add(filepath.Join(workDir, d.Name()), filepath.Join(workDir, SlotsDir, d.Name()+".lock"),
				filepath.Join(workDir, HomesDir, d.Name()))
		}
	}
	return out
}

// removeLocked removes dirs while holding lock exclusively, when it is
// free (no fetch, no job); it reports whether it did.
func removeLocked(lock string, dirs ...string) (bool, error) {
	if err := os.MkdirAll(filepath.Dir(lock), 0o755); err != nil {
		return false, err
	}
	f, err := os.OpenFile(lock, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return false, nil // in use
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	for _, d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			return false, err
		}
	}
	return true, nil
}

// prunable is something Prune may remove, and how.
type prunable struct {
	Entry
	remove func() (bool, error)
}

// MirrorLock is the lock file inside a bare mirror that a fetch holds.
const MirrorLock = "raibid.lock"
