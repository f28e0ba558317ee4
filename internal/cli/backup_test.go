package cli

import (
	"archive/tar"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A backup is input: an entry climbing out of the data dir, or one that is
// a link, is refused and nothing is written outside.
func TestRestoreRefusesEntriesOutsideTheDataDir(t *testing.T) {
	for _, h := range []*tar.Header{
		{Name: "../outside", Typeflag: tar.TypeReg, Size: 1, Mode: 0o600},
		{Name: "/etc/outside", Typeflag: tar.TypeReg, Size: 1, Mode: 0o600},
		{Name: "redis/link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"},
	} {
		dir := t.TempDir()
		file := filepath.Join(dir, "b.tgz")
		f, _ := os.Create(file)
		zw := gzip.NewWriter(f)
		tw := tar.NewWriter(zw)
		tw.WriteHeader(h)
		if h.Size > 0 {
			tw.Write([]byte("x"))
		}
		tw.Close()
		zw.Close()
		f.Close()
		data := filepath.Join(dir, "data")
		_, err := readBackup(file, data)
		if err == nil || !strings.Contains(err.Error(), "not a raibid backup") {
			t.Errorf("entry %q: %v", h.Name, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "outside")); err == nil {
			t.Errorf("entry %q wrote outside the data dir", h.Name)
		}
	}
}
