package sandbox

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// toolchainHomes are the version managers that install under a user's home,
// each by the variable that moves its root and its default place there.
// A PATH entry that resolves into one of them (directly, by a symlink, or
// by a shim script naming it) exposes the whole root: pyenv's shims call
// its libexec, rustup's proxies read its toolchains, nvm's node reads its
// lib. Only roots a PATH entry reaches are exposed.
var toolchainHomes = []struct{ env, dflt string }{
	{"PYENV_ROOT", ".pyenv"},
	{"RUSTUP_HOME", ".rustup"},
	{"NVM_DIR", ".nvm"},
	{"SDKMAN_DIR", ".sdkman"},
	{"VOLTA_HOME", ".volta"},
	{"ASDF_DATA_DIR", ".asdf"},
	{"RBENV_ROOT", ".rbenv"},
	{"GOENV_ROOT", ".goenv"},
	{"BUN_INSTALL", ".bun"},
	{"DENO_INSTALL", ".deno"},
	{"", "sdk"}, // golang.org/dl's Go toolchains: ~/sdk/go1.x
	{"", ".local/share/pnpm"},
	{"", ".local/share/mise"},
}

// credentialDirs are directories of a home that keep credentials beside
// programs (cargo's registry tokens in ~/.cargo, cloud and container logins):
// a program in their bin is shown, never the directory itself.
var credentialDirs = map[string]bool{".cargo": true, ".config": true, ".local": true, ".ssh": true, ".gnupg": true,
	".docker": true, ".kube": true, ".aws": true, ".azure": true, ".gcloud": true, ".npm": true}

// shimPath finds the absolute paths a shim script names.
var shimPath = regexp.MustCompile(`/[A-Za-z0-9._+@/-]+`)

// ToolchainRoots are the directories steps must see, read-only, for the
// programs on pathList to run: every absolute entry, where its symlinks
// lead, and the root of the version manager (pyenv, rustup, nvm, …) that an
// entry, a link in it or a shim script in it resolves into. Nothing else of
// home is named: not the home itself, nor a directory of it that no entry
// reaches (~/.ssh, ~/.config, cargo's credentials beside its bin).
// getenv reads the agent's environment (the managers' root variables).
func ToolchainRoots(pathList, home string, getenv func(string) string) []string {
	var roots []string
	for _, t := range toolchainHomes {
		r := ""
		if t.env != "" {
			r = getenv(t.env)
		}
		if r == "" && home != "" {
			r = filepath.Join(home, t.dflt)
		}
		if filepath.IsAbs(r) {
			roots = append(roots, filepath.Clean(r))
		}
	}
	var out []string
	seen := map[string]bool{}
	exposed := func() []string { return out }
	add := func(p string) {
		if p != "" && !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	// reach exposes what p (a PATH entry, or a program one leads to) needs:
	// the manager root holding it, or for a program under home in no known
	// root, its own install (a bin's parent).
	reach := func(p string, program bool) {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		for _, r := range roots {
			if within(p, r) {
				add(r)
				return
			}
		}
		if home == "" || !within(p, home) || p == home {
			return
		}
		for _, e := range exposed() {
			if within(p, e) {
				return // a link within what is shown already (cargo → rustup in ~/.cargo/bin)
			}
		}
		dir := p
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			dir = filepath.Dir(p)
		}
		if program && filepath.Base(dir) == "bin" && filepath.Dir(dir) != home && !credentialDirs[filepath.Base(filepath.Dir(dir))] {
			dir = filepath.Dir(dir)
		}
		if credentialDirs[filepath.Base(dir)] && filepath.Dir(dir) == home {
			return // never a whole directory that keeps credentials
		}
		add(dir)
	}
	for _, entry := range filepath.SplitList(pathList) {
		if !filepath.IsAbs(entry) {
			continue
		}
		entry = filepath.Clean(entry)
		add(entry)
		reach(entry, false)
		names, err := os.ReadDir(entry)
		if err != nil {
			continue
		}
		// Shims are looked for only in entries under home: a system
		// directory's thousand programs are not read at every start.
		inHome := home != "" && within(entry, home)
		for _, n := range names {
			p := filepath.Join(entry, n.Name())
			switch {
			case n.Type()&os.ModeSymlink != 0:
				if real, err := filepath.EvalSymlinks(p); err == nil && home != "" && within(real, home) {
					reach(real, true)
				}
			case inHome && n.Type().IsRegular():
				for _, named := range shimTargets(p) {
					if within(named, home) {
						reach(named, true)
					}
				}
			}
		}
	}
	return out
}

// shimTargets are the absolute paths a small script names (a pyenv or
// rbenv shim execs its manager by one). Binaries and big files name none.
func shimTargets(file string) []string {
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer f.Close()
	head := make([]byte, 4096)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	if !bytes.HasPrefix(head, []byte("#!")) || bytes.IndexByte(head, 0) >= 0 {
		return nil
	}
	var out []string
	for _, m := range shimPath.FindAll(head, -1) {
		p := filepath.Clean(strings.TrimRight(string(m), "/"))
		if _, err := os.Lstat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}
