package cache

import (
	"errors"
	"fmt"
	"io/fs"
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

// inUseFile is the lock a job holds (shared) on a directory it builds in;
// Prune takes it exclusively, without waiting, before it removes one.
const inUseFile = ".raibid-in-use"

// Use marks dir as in use until release: Prune never removes it meanwhile.
// Any number of jobs may use one directory at once.
func Use(dir string) (release func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, inUseFile), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
		f.Close()
		return nil, fmt.Errorf("cache: lock %s: %w", dir, err)
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// removeUnused removes dir unless a job uses it; it reports whether it did.
func removeUnused(dir string) (bool, error) {
	f, err := os.OpenFile(filepath.Join(dir, inUseFile), os.O_CREATE|os.O_RDWR, 0o644)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
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
// target dirs, sccache store and shared cargo home, and the work
// directory's workspace slots, bare mirrors and step homes.
func (c Cache) Usage(workDir string) []Part {
	parts := []Part{
		{Name: "target dirs", Path: filepath.Join(c.Root, "target")},
		{Name: "sccache", Path: filepath.Join(c.Root, "sccache")},
		{Name: "cargo home", Path: filepath.Join(c.Root, "cargo-home")},
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
