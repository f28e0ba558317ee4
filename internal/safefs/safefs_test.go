package safefs_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/raibid-labs/raibid-ci/internal/safefs"
)

// outside is a directory standing for the host: nothing in it may change.
func outside(t *testing.T) (dir, file string) {
	t.Helper()
	dir = t.TempDir()
	file = filepath.Join(dir, "host-file")
	if err := os.WriteFile(file, []byte("host"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, file
}

func owner(t *testing.T, p string) (int, int) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return int(st.Uid), int(st.Gid)
}

func TestWriteFileReplacesAPlantedLinkInsteadOfFollowingIt(t *testing.T) {
	build := t.TempDir()
	host, file := outside(t)
	for name, plant := range map[string]func(string) error{
		"symlink to a file":     func(p string) error { return os.Symlink(file, p) },
		"symlink to a new file": func(p string) error { return os.Symlink(filepath.Join(host, "created"), p) },
		"hard link":             func(p string) error { return os.Link(file, p) },
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(build, "config.toml")
			os.Remove(p)
			if err := plant(p); err != nil {
				t.Fatal(err)
			}
			if err := safefs.WriteFile(build, "config.toml", []byte("agent"), 0o644); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(file); string(b) != "host" {
				t.Fatalf("the host file now holds %q", b)
			}
			if _, err := os.Lstat(filepath.Join(host, "created")); err == nil {
				t.Fatal("a file was created through the link")
			}
			if b, _ := os.ReadFile(p); string(b) != "agent" {
				t.Fatalf("the file holds %q", b)
			}
		})
	}
	if err := safefs.WriteFile(build, "../x", nil, 0o644); err == nil {
		t.Fatal("a name with a slash was accepted")
	}
}

func TestOpenBeneathRefusesLinksOnTheWay(t *testing.T) {
	build := t.TempDir()
	host, file := outside(t)
	os.MkdirAll(filepath.Join(build, "real"), 0o755)
	os.WriteFile(filepath.Join(build, "real", "ok"), []byte("ok"), 0o644)
	os.Symlink(host, filepath.Join(build, "dirlink"))
	os.Symlink(file, filepath.Join(build, "filelink"))
	os.Symlink("real/ok", filepath.Join(build, "inside"))
	for rel, wantOK := range map[string]bool{
		"real/ok": true, "dirlink/host-file": false, "filelink": false, "inside": false, "../" + filepath.Base(build): false,
	} {
		f, err := safefs.OpenBeneath(build, rel)
		if (err == nil) != wantOK {
			t.Errorf("%s: err %v, want ok=%v", rel, err, wantOK)
		}
		if f != nil {
			f.Close()
		}
	}
	if _, err := safefs.OpenBeneath(build, "filelink"); !errors.Is(err, safefs.ErrLink) {
		t.Errorf("a link is refused with %v, want ErrLink", err)
	}
}

// Chown as root: what a build planted in its directory never hands a host
// file to the build user.
func TestChownNeverChangesWhatALinkPointsAt(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing owners needs root: the agent's case")
	}
	build := t.TempDir()
	host, file := outside(t)
	os.MkdirAll(filepath.Join(build, "sub"), 0o755)
	os.WriteFile(filepath.Join(build, "sub", "mine"), []byte("x"), 0o644)
	os.Symlink(host, filepath.Join(build, "dirlink"))
	os.Symlink(file, filepath.Join(build, "sub", "filelink"))
	if err := os.Link(file, filepath.Join(build, "hardlink")); err != nil {
		t.Fatal(err)
	}
	_, refused, err := safefs.Chown(build, 65534, 65534)
	if err != nil {
		t.Fatal(err)
	}
	if refused != 1 {
		t.Errorf("refused %d entries, want the hard link", refused)
	}
	for _, p := range []string{host, file} {
		if u, g := owner(t, p); u != 0 || g != 0 {
			t.Errorf("%s now belongs to %d:%d", p, u, g)
		}
	}
	for _, p := range []string{build, filepath.Join(build, "sub", "mine"), filepath.Join(build, "dirlink"), filepath.Join(build, "sub", "filelink")} {
		if u, _ := owner(t, p); u != 65534 {
			t.Errorf("%s belongs to %d, want the build user", p, u)
		}
	}
	// A directory handed over as a link is not entered either.
	link := filepath.Join(t.TempDir(), "link")
	os.Symlink(host, link)
	if _, _, err := safefs.Chown(link, 65534, 65534); !errors.Is(err, safefs.ErrLink) {
		t.Errorf("Chown of a link: %v", err)
	}
}

func TestReadableRefusesAHostFilesHardLink(t *testing.T) {
	build := t.TempDir()
	_, file := outside(t)
	os.Link(file, filepath.Join(build, "stolen"))
	os.WriteFile(filepath.Join(build, "made"), []byte("x"), 0o644)
	f, err := safefs.OpenBeneath(build, "stolen")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := safefs.Readable(f, 65534); !errors.Is(err, safefs.ErrLink) {
		t.Fatalf("a hard link to a file not the build's: %v", err)
	}
	g, _ := safefs.OpenBeneath(build, "made")
	defer g.Close()
	if err := safefs.Readable(g, 65534); err != nil {
		t.Fatalf("a file with one link: %v", err)
	}
}
