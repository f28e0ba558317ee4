package sandbox_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/raibid-labs/raibid-ci/internal/sandbox"
)

// fakeHome is a home directory of mode 0700 holding a pyenv-like version
// manager (a shim on PATH that execs the manager's libexec by absolute
// path, which runs a version's binary), a tool linked from ~/.local/bin
// into an install of its own, and an SSH key no step may read.
func fakeHome(t *testing.T) (home, path string) {
	t.Helper()
	home = filepath.Join(t.TempDir(), "agent")
	write := func(rel, body string, mode os.FileMode) {
		p := filepath.Join(home, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	write(".pyenv/shims/mypy3", "#!/bin/sh\nexport PYENV_ROOT=\""+home+"/.pyenv\"\nexec \""+home+"/.pyenv/libexec/pyenv\" exec mypy3 \"$@\"\n", 0o755)
	write(".pyenv/libexec/pyenv", "#!/bin/sh\nshift\nexec \"$PYENV_ROOT/versions/3.12/bin/$1\"\n", 0o755)
	write(".pyenv/versions/3.12/bin/mypy3", "#!/bin/sh\necho python ok\n", 0o755)
	write("tools/lint-1.0/bin/lint", "#!/bin/sh\necho lint ok\n", 0o755)
	write("tools/lint-1.0/share/rules", "rules", 0o644)
	write(".ssh/id_ed25519", "PRIVATE KEY", 0o600)
	// rustup's layout: the proxies in ~/.cargo/bin are links to rustup in the
	// same directory, and ~/.cargo keeps the registry token.
	write(".cargo/bin/rustup", "#!/bin/sh\necho rustup\n", 0o755)
	write(".cargo/credentials.toml", "token = \"cio-secret\"", 0o600)
	if err := os.MkdirAll(filepath.Join(home, ".local/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(home, "tools/lint-1.0/bin/lint"), filepath.Join(home, ".local/bin/lint")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("rustup", filepath.Join(home, ".cargo/bin/cargo")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	return home, strings.Join([]string{filepath.Join(home, ".pyenv/shims"), filepath.Join(home, ".local/bin"), filepath.Join(home, ".cargo/bin"), "/usr/bin", "/bin"}, ":")
}

func TestToolchainRootsFollowShimsAndLinksButNotTheHome(t *testing.T) {
	home, path := fakeHome(t)
	roots := sandbox.ToolchainRoots(path, home, func(string) string { return "" })
	for _, want := range []string{filepath.Join(home, ".pyenv"), filepath.Join(home, "tools/lint-1.0"), filepath.Join(home, ".local/bin")} {
		if !slices.Contains(roots, want) {
			t.Errorf("roots %v lack %s", roots, want)
		}
	}
	for _, r := range roots {
		if r == home || strings.HasPrefix(r, filepath.Join(home, ".ssh")) || r == filepath.Join(home, "tools") || r == filepath.Join(home, ".local") || r == filepath.Join(home, ".cargo") {
			t.Errorf("root %s exposes more of the home than its toolchains", r)
		}
	}
	// The manager's variable moves its root.
	moved := filepath.Join(t.TempDir(), "pyenv")
	if err := os.Rename(filepath.Join(home, ".pyenv"), moved); err != nil {
		t.Fatal(err)
	}
	roots = sandbox.ToolchainRoots(filepath.Join(moved, "shims"), home, func(k string) string {
		if k == "PYENV_ROOT" {
			return moved
		}
		return ""
	})
	if !slices.Contains(roots, moved) {
		t.Errorf("PYENV_ROOT=%s not followed: %v", moved, roots)
	}
}

// A step of a root agent runs as the build user, with the agent's home
// (0700) hidden: the toolchains its PATH reaches still run, the key does not
// show.
func TestStepRunsToolchainsUnderAHiddenHome(t *testing.T) {
	home, path := fakeHome(t)
	sb := newSandbox(t, sandbox.Options{Hidden: []string{home}, ReadOnly: sandbox.ToolchainRoots(path, home, func(string) string { return "" })})
	ws := t.TempDir()
	if _, err := sb.Own(ws); err != nil {
		t.Fatal(err)
	}
	got, err := start(t, sb, sandbox.Job{Dir: ws}, []string{"PATH=" + path},
		"/bin/sh", "-c", "mypy3 && lint && cat "+home+"/tools/lint-1.0/share/rules && echo && cargo && cat "+home+"/.cargo/credentials.toml; cat "+home+"/.ssh/id_ed25519")
	if !strings.Contains(got, "python ok\nlint ok\nrules\nrustup\n") {
		t.Fatalf("toolchains did not run in the sandbox (%v):\n%s", err, got)
	}
	if err == nil || strings.Contains(got, "PRIVATE KEY") || strings.Contains(got, "cio-secret") {
		t.Fatalf("the home's key was readable (%v):\n%s", err, got)
	}
}
