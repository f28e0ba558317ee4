// Package safefs is how the agent touches files in a directory a build can
// write (workspace slots, target dirs, cargo homes, step homes): beneath
// that directory, one path component at a time from directory descriptors,
// never through a symbolic link and never changing a file that has other
// hard links the build could have planted. The agent often runs as root; a
// plain path-based call there would let a build's link point it anywhere.
//
// It knows nothing of jobs or caches, and must never resolve a path with the
// kernel's ordinary lookup below the directory it was given.
package safefs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrLink means a path component the agent would have followed is a
// symbolic link, or a file it would have changed has other hard links.
var ErrLink = errors.New("safefs: refused a link a build could have planted")

// OpenDir opens dir itself (not a link to it) as a directory.
func OpenDir(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("safefs: open %s: %w", dir, linkErr(err))
	}
	return os.NewFile(uintptr(fd), dir), nil
}

// OpenBeneath opens rel (a relative path) beneath dir for reading, with no
// symbolic link anywhere on the way and nothing outside dir reachable
// (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS).
func OpenBeneath(dir, rel string) (*os.File, error) {
	d, err := OpenDir(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return openat2(int(d.Fd()), rel, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW)
}

func openat2(dirfd int, rel string, flags int) (*os.File, error) {
	if filepath.IsAbs(rel) {
		return nil, fmt.Errorf("safefs: %s is not relative", rel)
	}
	how := unix.OpenHow{Flags: uint64(flags), Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}
	fd, err := unix.Openat2(dirfd, rel, &how)
	if errors.Is(err, unix.ENOSYS) {
		// Kernels before 5.6: walk component by component with O_NOFOLLOW.
		return openWalk(dirfd, rel, flags)
	}
	if err != nil {
		return nil, fmt.Errorf("safefs: open %s: %w", rel, linkErr(err))
	}
	return os.NewFile(uintptr(fd), rel), nil
}

// openWalk opens rel beneath dirfd a component at a time, O_NOFOLLOW each.
func openWalk(dirfd int, rel string, flags int) (*os.File, error) {
	parts := strings.Split(filepath.Clean(rel), "/")
	cur := dirfd
	for i, p := range parts {
		if p == ".." {
			return nil, fmt.Errorf("safefs: %s leaves its directory", rel)
		}
		fl := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
		if i == len(parts)-1 {
			fl = flags | unix.O_NOFOLLOW | unix.O_CLOEXEC
		}
		fd, err := unix.Openat(cur, p, fl, 0)
		if cur != dirfd {
			unix.Close(cur)
		}
		if err != nil {
			return nil, fmt.Errorf("safefs: open %s: %w", rel, linkErr(err))
		}
		cur = fd
	}
	return os.NewFile(uintptr(cur), rel), nil
}

// linkErr turns the errors a refused link gives into ErrLink.
func linkErr(err error) error {
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ENOTDIR) {
		return fmt.Errorf("%w (%v)", ErrLink, err)
	}
	return err
}

// WriteFile makes name (one path component) in dir hold data: a new file
// created exclusively after whatever was there (a file, or a link a build
// planted) is unlinked, so nothing outside dir is ever opened. An existing
// regular file with the same bytes is left alone.
func WriteFile(dir, name string, data []byte, perm os.FileMode) error {
	if name == "" || strings.Contains(name, "/") || name == "." || name == ".." {
		return fmt.Errorf("safefs: %q is not a file name", name)
	}
	d, err := OpenDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	dfd := int(d.Fd())
	if fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err == nil {
		f := os.NewFile(uintptr(fd), name)
		st, serr := f.Stat()
		same := false
		if serr == nil && st.Mode().IsRegular() && st.Size() == int64(len(data)) {
			old, rerr := io.ReadAll(io.LimitReader(f, int64(len(data))+1))
			same = rerr == nil && bytes.Equal(old, data)
		}
		f.Close()
		if same {
			return nil
		}
	}
	for range 3 { // a build of the same scope may race us to the name
		if err := unix.Unlinkat(dfd, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("safefs: replace %s/%s: %w", dir, name, err)
		}
		fd, err := unix.Openat(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm.Perm()))
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return fmt.Errorf("safefs: write %s/%s: %w", dir, name, err)
		}
		f := os.NewFile(uintptr(fd), name)
		_, werr := f.Write(data)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		return werr
	}
	return fmt.Errorf("safefs: write %s/%s: it keeps being recreated", dir, name)
}

// Chown gives dir and everything beneath it to uid:gid, walking from
// directory descriptors: a directory swapped for a link mid-walk is not
// entered, links are changed themselves (never their targets), and a file
// with other hard links that uid does not already own is left alone — the
// build could have linked a file of the host there. Entries already owned
// are not written. It returns how many entries it changed, and how many it
// left alone for that reason.
func Chown(dir string, uid, gid int) (changed, refused int, err error) {
	d, err := OpenDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, 0, nil
		}
		return 0, 0, err
	}
	defer d.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(d.Fd()), &st); err != nil {
		return 0, 0, err
	}
	if int(st.Uid) != uid || int(st.Gid) != gid {
		if err := unix.Fchown(int(d.Fd()), uid, gid); err != nil {
			return 0, 0, fmt.Errorf("safefs: chown %s: %w", dir, err)
		}
		changed++
	}
	var c chownCount
	err = c.beneath(int(d.Fd()), dir, uid, gid)
	return changed + c.changed, c.refused, err
}

// chownCount counts what a Chown walk did.
type chownCount struct{ changed, refused int }

func (c *chownCount) beneath(dfd int, path string, uid, gid int) error {
	names, err := readNames(dfd)
	if err != nil {
		return fmt.Errorf("safefs: read %s: %w", path, err)
	}
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			continue // gone meanwhile
		}
		isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
		owned := int(st.Uid) == uid && int(st.Gid) == gid
		if !isDir && st.Nlink > 1 && int(st.Uid) != uid {
			c.refused++ // a hard link to a file that is not the build's
			continue
		}
		if !owned {
			if err := unix.Fchownat(dfd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("safefs: chown %s/%s: %w", path, name, err)
			}
			c.changed++
		}
		if !isDir {
			continue
		}
		cfd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			continue // swapped for a link or gone: not entered
		}
		err = c.beneath(cfd, path+"/"+name, uid, gid)
		unix.Close(cfd)
		if err != nil {
			return err
		}
	}
	return nil
}

// readNames lists a directory from its descriptor (a duplicate, so the
// caller's offset and descriptor stay its own).
func readNames(dfd int) ([]string, error) {
	fd, err := unix.Dup(dfd)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "")
	defer f.Close()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return f.Readdirnames(-1)
}

// Readable reports whether the agent may read the file f on a build's
// behalf: a regular file that is the build user's, or has no other hard
// link (a build cannot make a file of the host's with only one link inside
// its workspace).
func Readable(f *os.File, buildUID int) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%s is not a regular file", f.Name())
	}
	if st.Nlink > 1 && buildUID >= 0 && int(st.Uid) != buildUID {
		return fmt.Errorf("%w: %s has %d links and is not the build's", ErrLink, f.Name(), st.Nlink)
	}
	return nil
}
