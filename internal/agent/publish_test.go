package agent

import (
	"os"
	"path/filepath"
	"testing"
)

// A matrix's members publish into one package version under names of
// their own: Gitea refuses a second upload of the same file (409).
func TestPublishNameIsPerMatrixMember(t *testing.T) {
	cases := []struct {
		name   string
		matrix map[string]string
		want   string
	}{
		{"app", nil, "app"},
		{"app.tar.gz", nil, "app.tar.gz"},
		{"app", map[string]string{"target": "x86_64", "toolchain": "stable"}, "app-x86_64-stable"},
		{"app.tar.gz", map[string]string{"toolchain": "stable", "target": "aarch64"}, "app-aarch64-stable.tar.gz"},
		{".hidden", map[string]string{"os": "linux"}, ".hidden-linux"},
		{"bin", map[string]string{"v": "1.2 beta/x"}, "bin-1.2_beta_x"},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		got := publishName(c.name, c.matrix)
		if got != c.want {
			t.Errorf("publishName(%q, %v) = %q, want %q", c.name, c.matrix, got, c.want)
		}
		seen[got] = true
	}
	if len(seen) != len(cases) {
		t.Errorf("names collide: %v", seen)
	}
}

// `artifacts: [{path: "**"}]` never takes the worktree's .git file (it
// names the mirror's host path) nor a link.
func TestArtifactGlobLeavesOutGitAndLinks(t *testing.T) {
	ws := t.TempDir()
	os.WriteFile(filepath.Join(ws, ".git"), []byte("gitdir: /var/lib/raibid/work/.mirrors/x.git/worktrees/a\n"), 0o644)
	os.MkdirAll(filepath.Join(ws, "out"), 0o755)
	os.WriteFile(filepath.Join(ws, "out", "app"), []byte("bin"), 0o644)
	os.Symlink("/etc/hostname", filepath.Join(ws, "out", "link"))
	u := &uploader{ws: ws}
	got, err := u.match("**")
	if err != nil || len(got) != 1 || got[0] != "out/app" {
		t.Fatalf("match(**) = %v, %v; want [out/app]", got, err)
	}
}

// The link to a shown cache dir replaces a link a build planted (never
// following it) and leaves the repository's own target/ alone.
func TestLinkShownReplacesPlantedLinks(t *testing.T) {
	ws, cacheDir := t.TempDir(), t.TempDir()
	victim := t.TempDir()
	if err := os.Symlink(victim, filepath.Join(ws, "target")); err != nil {
		t.Fatal(err)
	}
	if err := linkShown(ws, "target", cacheDir); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.Readlink(filepath.Join(ws, "target")); got != cacheDir {
		t.Fatalf("target links to %q, want the cache dir", got)
	}
	if entries, _ := os.ReadDir(victim); len(entries) != 0 {
		t.Fatalf("the planted link's target was written: %v", entries)
	}
	own := t.TempDir()
	os.Mkdir(filepath.Join(own, "target"), 0o755)
	if err := linkShown(own, "target", cacheDir); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Lstat(filepath.Join(own, "target")); !st.IsDir() {
		t.Fatal("the repository's own target/ was replaced")
	}
}
