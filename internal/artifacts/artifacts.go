// Package artifacts keeps what builds upload: one directory per job under
// the artifacts root (the server's data dir, a PVC on Kubernetes), each
// file written through a SHA-256 as it streams in, a size cap per job, and
// a retention of its own after which whole job directories are pruned.
// What a job has is recorded on the job (store.AddArtifact); this package
// knows files only.
package artifacts

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
)

// Defaults of Store.
const (
	DefaultMaxJobBytes = 1 << 30
	DefaultRetention   = 7 * 24 * time.Hour
)

// ErrTooLarge is a job's artifacts passing the cap.
var ErrTooLarge = errors.New("artifacts: past the job's size cap")

// namePattern is what an artifact may be called: a file name, never a path.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$`)

// ValidName reports whether name can name an artifact.
func ValidName(name string) bool { return namePattern.MatchString(name) }

var jobPattern = regexp.MustCompile(`^[0-9a-f]{20}$`)

// Meta is one stored artifact.
type Meta struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Store is the artifacts root.
type Store struct {
	Dir         string
	MaxJobBytes int64         // default DefaultMaxJobBytes
	Retention   time.Duration // default DefaultRetention
}

func (s *Store) maxJob() int64 {
	if s.MaxJobBytes > 0 {
		return s.MaxJobBytes
	}
	return DefaultMaxJobBytes
}

func (s *Store) path(job, name string) (string, error) {
	if !jobPattern.MatchString(job) || !ValidName(name) {
		return "", fmt.Errorf("artifact %q of job %q: %w", ci.Truncate(name, 80), ci.Truncate(job, 40), ci.ErrInvalid)
	}
	return filepath.Join(s.Dir, job, name), nil
}

// Put stores r as job's artifact name, hashing it as it streams in. Past
// the job's cap it stops reading, keeps nothing and returns ErrTooLarge.
// A second Put of a name replaces the first.
func (s *Store) Put(job, name string, r io.Reader) (Meta, error) {
	dst, err := s.path(job, name)
	if err != nil {
		return Meta{}, err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return Meta{}, err
	}
	used, err := s.JobBytes(job)
	if err != nil {
		return Meta{}, err
	}
	if old, err := os.Stat(dst); err == nil {
		used -= old.Size() // it is replaced
	}
	left := s.maxJob() - used
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".upload-*")
	if err != nil {
		return Meta{}, err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(r, left+1))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
		return Meta{}, fmt.Errorf("artifact %s: %w", name, err)
	case n > left:
		return Meta{}, fmt.Errorf("artifact %s: the job's artifacts may total %d bytes: %w", name, s.maxJob(), ErrTooLarge)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return Meta{}, err
	}
	return Meta{Name: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// Open opens job's artifact name; fs.ErrNotExist once pruned.
func (s *Store) Open(job, name string) (*os.File, error) {
	p, err := s.path(job, name)
	if err != nil {
		return nil, err
	}
	return os.Open(p)
}

// JobBytes is what a job's artifacts take.
func (s *Store) JobBytes(job string) (int64, error) {
	var total int64
	entries, err := os.ReadDir(filepath.Join(s.Dir, job))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			total += info.Size()
		}
	}
	return total, err
}

// Usage is what every job's artifacts take (the disk accounting).
func (s *Store) Usage() int64 {
	var total int64
	_ = filepath.WalkDir(s.Dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total
}

// Prune removes the directories of jobs whose artifacts are older than the
// retention (by the newest file) and returns how many bytes went.
func (s *Store) Prune(now time.Time) (int64, error) {
	retention := s.Retention
	if retention <= 0 {
		retention = DefaultRetention
	}
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var freed int64
	for _, e := range entries {
		if !e.IsDir() || !jobPattern.MatchString(e.Name()) {
			continue
		}
		dir := filepath.Join(s.Dir, e.Name())
		newest, size := time.Time{}, int64(0)
		files, _ := os.ReadDir(dir)
		for _, f := range files {
			if info, err := f.Info(); err == nil {
				size += info.Size()
				if info.ModTime().After(newest) {
					newest = info.ModTime()
				}
			}
		}
		if newest.IsZero() {
			if info, err := e.Info(); err == nil {
				newest = info.ModTime()
			}
		}
		if now.Sub(newest) > retention {
			if err := os.RemoveAll(dir); err == nil {
				freed += size
			}
		}
	}
	return freed, nil
}
