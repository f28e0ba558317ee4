package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/raibid-labs/raibid-ci/internal/cache"
	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/runner"
	"github.com/raibid-labs/raibid-ci/internal/safefs"
)

// errCloneRefused marks a clone URL the agent will not fetch: retrying cannot
// help, so the job ends in error at once.
var errCloneRefused = errors.New("clone refused")

// Repos says which repositories agents may fetch, and fetches them.
type Repos struct {
	// ForgeURL is the Gitea base URL; clone URLs must be on its host.
	ForgeURL string
	// Token authenticates fetches from the forge (sent as an HTTP header
	// through git's environment, never in argv or the URL).
	Token string
	// AllowLocal permits absolute local paths and file:// URLs (raibid up).
	AllowLocal bool
	// Hosts are other names of the same forge (host or host:port): the host
	// of Gitea's ROOT_URL, which every clone URL in its webhooks carries,
	// when agents reach Gitea at another address (in-cluster). A clone URL
	// on one of them is fetched from ForgeURL with the same path — logged,
	// never silent.
	Hosts []string
}

// CheckCloneURL is the agents' check of a clone URL: nil when an agent
// with these settings would fetch it.
func (s Repos) CheckCloneURL(cloneURL string) error { return s.check(cloneURL) }

// fetchURL is where a clone URL is fetched from: a local path as it is, a
// URL on another name of the forge from ForgeURL, anything else as it is.
func (s Repos) fetchURL(cloneURL string) string {
	if path, ok := ci.LocalClonePath(cloneURL); ok {
		return path
	}
	u, err := url.Parse(cloneURL)
	if err != nil || !s.alias(u.Host) {
		return cloneURL
	}
	f, err := url.Parse(s.ForgeURL)
	if err != nil {
		return cloneURL
	}
	u.Scheme, u.Host = f.Scheme, f.Host
	u.Path = strings.TrimRight(f.Path, "/") + u.Path
	return u.String()
}

// alias reports whether host is one of Hosts.
func (s Repos) alias(host string) bool {
	for _, h := range s.Hosts {
		if strings.EqualFold(h, host) {
			return true
		}
	}
	return false
}

// check refuses clone URLs outside the configured forge, and anything git
// could read as an option or an odd transport (see ci.CheckCloneURL). Local
// paths are allowed only with AllowLocal and only to an existing directory.
func (s Repos) check(cloneURL string) error {
	if err := ci.CheckCloneURL(cloneURL); err != nil {
		return fmt.Errorf("%w: %v", errCloneRefused, err)
	}
	if path, ok := ci.LocalClonePath(cloneURL); ok {
		if !s.AllowLocal {
			return fmt.Errorf("%w: local path %s is not allowed (only raibid up or --allow-local-clone allow local clones)", errCloneRefused, path)
		}
		if st, err := os.Stat(path); err != nil || !st.IsDir() {
			return fmt.Errorf("%w: local path %s is not a directory", errCloneRefused, path)
		}
		return nil
	}
	u, _ := url.Parse(cloneURL)
	if s.ForgeURL == "" {
		return fmt.Errorf("%w: host %s is not the configured forge (no --gitea-url set)", errCloneRefused, u.Host)
	}
	f, err := url.Parse(s.ForgeURL)
	if err != nil || (!strings.EqualFold(f.Host, u.Host) && !s.alias(u.Host)) {
		known := hostOf(s.ForgeURL)
		if len(s.Hosts) > 0 {
			known += " (also " + strings.Join(s.Hosts, ", ") + ")"
		}
		return fmt.Errorf("%w: host %s is not the configured forge %s", errCloneRefused, u.Host, known)
	}
	return nil
}

// checkRefs refuses a commit or branch that git could misread; they were
// checked when the job was queued, but a queue entry is input too.
func checkRefs(branch, commit string) error {
	if commit != "" && !ci.ValidCommit(commit) {
		return fmt.Errorf("%w: commit %q is not an object id", errCloneRefused, commit)
	}
	if branch == "" && commit != "" {
		return nil // a tag's job: the commit is all it needs
	}
	if err := ci.CheckBranch(branch); err != nil {
		return fmt.Errorf("%w: %v", errCloneRefused, err)
	}
	return nil
}

func hostOf(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Host
	}
	return "(invalid)"
}

// redact drops credentials from a URL before it is logged or shown.
func redact(raw string) string { return ci.RedactURL(raw) }

// gitEnv gives git the forge token as an extra HTTP header through
// GIT_CONFIG_* variables, scoped to the forge's URL, and forbids prompts.
func (s Repos) gitEnv() []string {
	// Only the transports a clone URL may name: never ext:: or fd::, even
	// if a repository's config or a submodule asks for them.
	allow := "http:https"
	if s.AllowLocal {
		allow += ":file"
	}
	env := append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=true", "GIT_ALLOW_PROTOCOL="+allow)
	if s.Token != "" && s.ForgeURL != "" {
		env = append(env, "GIT_CONFIG_COUNT=1",
			"GIT_CONFIG_KEY_0=http."+strings.TrimRight(s.ForgeURL, "/")+"/.extraHeader",
			"GIT_CONFIG_VALUE_0=Authorization: token "+s.Token)
	}
	return env
}

// clone puts commit (or the branch head when commit is empty) into dir as a
// git worktree of a bare mirror kept per clone URL under mirrors. A commit
// the mirror already has costs no fetch; a new one costs a shallow fetch of
// just that commit. A file lock on the mirror lets agents in several
// processes share it.
// With keep, a worktree already in dir (the slot's last job) is reset to
// commit instead of made anew.
//
// With clean false (the agent found the worktree untouched since it last
// made it clean), the reset leaves out git clean: there is nothing to remove.
func (s Repos) clone(ctx context.Context, mirrors, dir, cloneURL, branch, commit string, keep, clean bool, masker *runner.Masker) error {
	if err := s.check(cloneURL); err != nil {
		return err
	}
	if err := checkRefs(branch, commit); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	mirror := mirrorDir(mirrors, cloneURL)
	if err := os.MkdirAll(mirror, 0o755); err != nil {
		return err
	}
	unlock, err := lockDir(mirror)
	if err != nil {
		return err
	}
	defer unlock()
	now := time.Now()
	_ = os.Chtimes(mirror, now, now) // its last use: PruneWork goes by it
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", append([]string{"--git-dir", mirror}, args...)...)
		cmd.Env = s.gitEnv()
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			msg := strings.TrimSpace(stderr.String())
			if i := strings.LastIndex(msg, "\n"); i >= 0 {
				msg = msg[i+1:]
			}
			msg = masker.Apply(strings.ReplaceAll(msg, cloneURL, redact(cloneURL)))
			return "", fmt.Errorf("git %s: %s", args[0], firstNonEmpty(msg, err.Error()))
		}
		return strings.TrimSpace(stdout.String()), nil
	}
	if _, err := os.Stat(filepath.Join(mirror, "HEAD")); err != nil {
		if _, err := git("init", "-q", "--bare"); err != nil {
			return err
		}
	}
	source := s.fetchURL(cloneURL)
	// "--" before every argument that came from outside: nothing a job
	// carries is ever read as an option.
	fetch := func(ref string) error {
		_, err := git("fetch", "-q", "--depth", "1", "--no-tags", "--no-write-fetch-head", "--", source, ref)
		return err
	}
	if commit == "" {
		// Pin the branch head under a ref of ours, then resolve it.
		ref := "refs/raibid/" + branch
		if err := fetch("+refs/heads/" + branch + ":" + ref); err != nil {
			return err
		}
		if commit, err = git("rev-parse", "--verify", "--end-of-options", ref+"^{commit}"); err != nil {
			return err
		}
	}
	if keep {
		if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
			if err := s.reset(ctx, mirror, dir, commit, clean, fetch, masker, cloneURL); err == nil {
				return nil
			}
			// A worktree whose mirror is gone or changed: start it anew.
			removeWorkspace(mirrors, dir)
		}
	}
	// Try the mirror first: a commit built before needs no fetch, and this is
	// one process instead of a lookup and a checkout.
	if _, err := git("worktree", "add", "-q", "--detach", "-f", "--", dir, commit); err == nil {
		return nil
	}
	_ = os.RemoveAll(dir)
	if err := fetch(commit); err != nil {
		return err
	}
	_, err = git("worktree", "add", "-q", "--detach", "-f", "--", dir, commit)
	return err
}

// changedFiles lists the files that differ between before and commit, for
// path conditions when the webhook did not list them all. before is
// fetched into the mirror when it lacks it (a tree diff needs no history).
// nil when git cannot tell (then path conditions hold).
func (s Repos) changedFiles(ctx context.Context, mirrors, cloneURL, before, commit string) []string {
	if !ci.ValidCommit(before) || !ci.ValidCommit(commit) || s.check(cloneURL) != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	mirror := mirrorDir(mirrors, cloneURL)
	unlock, err := lockDir(mirror)
	if err != nil {
		return nil
	}
	defer unlock()
	git := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, "git", append([]string{"--git-dir", mirror}, args...)...)
		cmd.Env = s.gitEnv()
		return cmd.Output()
	}
	if _, err := git("cat-file", "-e", before+"^{commit}"); err != nil {
		source := s.fetchURL(cloneURL)
		if _, err := git("fetch", "-q", "--depth", "1", "--no-tags", "--no-write-fetch-head", "--", source, before); err != nil {
			return nil
		}
	}
	out, err := git("diff", "--name-only", "--no-renames", before, commit, "--")
	if err != nil {
		return nil
	}
	files := []string{}
	for _, f := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f != "" {
			files = append(files, f)
		}
	}
	return files
}

// peel is the commit that object (a commit, or an annotated tag's object)
// names, from the mirror that holds it; object itself when git cannot tell.
func (s Repos) peel(ctx context.Context, mirrors, cloneURL, object string) string {
	if !ci.ValidCommit(object) {
		return object
	}
	cmd := exec.CommandContext(ctx, "git", "--git-dir", mirrorDir(mirrors, cloneURL), "rev-parse", "--verify", "--end-of-options", object+"^{commit}")
	cmd.Env = s.gitEnv()
	out, err := cmd.Output()
	if c := strings.TrimSpace(string(out)); err == nil && ci.ValidCommit(c) {
		return c
	}
	return object
}

// mirrorDir is the bare mirror of cloneURL under mirrors.
func mirrorDir(mirrors, cloneURL string) string {
	sum := sha256.Sum256([]byte(cloneURL))
	return filepath.Join(mirrors, hex.EncodeToString(sum[:8])+".git")
}

// reset turns a kept worktree into a clean checkout of commit: files that
// did not change keep their times, which is what lets cargo find its cached
// build fresh; everything untracked (build output in the tree) goes.
// The worktree was a build's to write, so its .git file is not trusted: git
// is pointed at the mirror's record of the worktree explicitly, and a record
// that does not point back at dir is refused.
func (s Repos) reset(ctx context.Context, mirror, dir, commit string, clean bool, fetch func(string) error, masker *runner.Masker, cloneURL string) error {
	gitDir := filepath.Join(mirror, "worktrees", filepath.Base(dir))
	back, err := os.ReadFile(filepath.Join(gitDir, "gitdir"))
	if err != nil || filepath.Clean(strings.TrimSpace(string(back))) != filepath.Join(dir, ".git") {
		return fmt.Errorf("worktree record of %s is missing or points elsewhere", dir)
	}
	run := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "git", append([]string{"--git-dir", gitDir, "--work-tree", dir, "-C", dir}, args...)...)
		cmd.Env = s.gitEnv()
		out, err := cmd.CombinedOutput()
		if err != nil {
			msg := strings.TrimSpace(string(out))
			if i := strings.LastIndex(msg, "\n"); i >= 0 {
				msg = msg[i+1:]
			}
			return fmt.Errorf("git %s: %s", args[0], masker.Apply(strings.ReplaceAll(firstNonEmpty(msg, err.Error()), cloneURL, redact(cloneURL))))
		}
		return nil
	}
	// commit passed checkRefs: 40/64 hex digits, never an option.
	if run("checkout", "-q", "-f", "--detach", commit) != nil {
		if err := fetch(commit); err != nil {
			return err
		}
		if err := run("checkout", "-q", "-f", "--detach", commit); err != nil {
			return err
		}
	}
	if !clean {
		return nil
	}
	return run("clean", "-q", "-ffdx")
}

// refreshIndex records in a kept worktree's index the current state of its
// files (git update-index --refresh), right after the checkout, before any
// step has run. It goes through the mirror's record of the worktree, as
// reset does; a failure only costs the next job a rewrite.
func (s Repos) refreshIndex(ctx context.Context, mirrors, dir string) {
	for _, gitDir := range worktreeRecords(mirrors, dir) {
		cmd := exec.CommandContext(ctx, "git", "--git-dir", gitDir, "--work-tree", dir, "-C", dir, "update-index", "-q", "--refresh")
		cmd.Env = s.gitEnv()
		_ = cmd.Run()
	}
}

// worktreeRecords are the mirrors' records of the worktree dir that point
// back at it.
func worktreeRecords(mirrors, dir string) []string {
	var out []string
	entries, _ := filepath.Glob(filepath.Join(mirrors, "*.git", "worktrees", filepath.Base(dir)))
	for _, gitDir := range entries {
		back, err := os.ReadFile(filepath.Join(gitDir, "gitdir"))
		if err == nil && filepath.Clean(strings.TrimSpace(string(back))) == filepath.Join(dir, ".git") {
			out = append(out, gitDir)
		}
	}
	return out
}

// removeWorkspace deletes a job's worktree and the mirror's record of it,
// which is what `git worktree prune` would do, without another process.
func removeWorkspace(mirrors, dir string) {
	_ = os.RemoveAll(dir)
	entries, _ := filepath.Glob(filepath.Join(mirrors, "*.git", "worktrees", filepath.Base(dir)))
	for _, e := range entries {
		_ = os.RemoveAll(e)
	}
}

// lockDir takes an exclusive flock on dir/raibid.lock until unlock is called.
func lockDir(dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, cache.MirrorLock), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// maxSlots bounds how many jobs of one scope run at once on one work dir.
const maxSlots = 64

// acquireWorkspace picks the first free slot of a cache scope (a
// repository, or a fork's pull request: ci.Job.CacheScope) under root: a
// directory whose path is the same from one job of the scope to the next.
// Cargo fingerprints a package by its path, so a stable path is what lets a
// cached target directory be reused; two jobs of one scope at once get two
// slots. A slot and its step home are written by builds, so scopes never
// share one. An flock marks a slot taken, across agents in other processes
// too; release frees it.
func acquireWorkspace(root, scope, cloneURL string) (dir string, release func(), err error) {
	// Keyed by the clone URL too: a slot's worktree belongs to that URL's mirror.
	sum := sha256.Sum256([]byte(scope + "\x00" + cloneURL))
	key := hex.EncodeToString(sum[:6])
	locks := filepath.Join(root, cache.SlotsDir)
	if err := os.MkdirAll(locks, 0o755); err != nil {
		return "", nil, err
	}
	for slot := range maxSlots {
		name := fmt.Sprintf("%s-%d", key, slot)
		f, err := os.OpenFile(filepath.Join(locks, name+".lock"), os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW, 0o644)
		if err != nil {
			return "", nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		dir := filepath.Join(root, name)
		now := time.Now()
		_ = os.Chtimes(dir, now, now) // its last use: PruneWork goes by it
		return dir, func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
	}
	return "", nil, fmt.Errorf("all %d workspace slots of %s are in use", maxSlots, scope)
}

// treeState is a digest of every entry under dir as the kernel keeps it —
// path, type and mode, size, modification and change times to the
// nanosecond, inode, owner — leaving out the top-level names in skip (the
// shown cache dirs' mount points). A build cannot change a file, add one or
// remove one without changing it: it may set a modification time back, but
// not a change time or an inode. Two equal states mean nothing was touched
// between them.
func treeState(dir string, skip map[string]bool) (string, error) {
	state, _, err := treeStateSince(dir, skip)
	return state, err
}

// treeStateSince is treeState and the newest change time in the tree.
func treeStateSince(dir string, skip map[string]bool) (string, time.Time, error) {
	h := sha256.New()
	var newest time.Time
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil // the slot itself: its times mark its last use (acquireWorkspace)
		}
		if skip[rel] {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		fmt.Fprintf(h, "%q %o %d %d.%d %d.%d %d %d\n", rel, st.Mode, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec, st.Ino, st.Uid)
		if c := time.Unix(st.Ctim.Sec, st.Ctim.Nsec); c.After(newest) {
			newest = c
		}
		return nil
	})
	if err != nil {
		return "", time.Time{}, err
	}
	return hex.EncodeToString(h.Sum(nil)), newest, nil
}

// timestampTick is how coarse the kernel's file timestamps can be: the
// coarse clock's resolution (a jiffy, 1-10 ms), read once.
var timestampTick = sync.OnceValue(func() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGetres(unix.CLOCK_REALTIME_COARSE, &ts); err != nil || ts.Nano() <= 0 {
		return 10 * time.Millisecond
	}
	return time.Duration(ts.Nano())
})

// slotState is where the agent keeps what it knows of a kept slot's
// worktree: beside the slot's lock, in the work dir no step sees.
func slotState(root, ws string) string {
	return filepath.Join(root, cache.SlotsDir, filepath.Base(ws)+".state")
}

// pristineCommit is the commit a kept worktree holds untouched since the
// agent recorded it clean (recordPristine), or "" when anything changed or
// nothing was recorded. It leaves out what the record left out.
func pristineCommit(root, ws string) string {
	b, err := os.ReadFile(slotState(root, ws))
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 2 || !ci.ValidCommit(f[0]) {
		return ""
	}
	skip := map[string]bool{}
	if len(f) > 2 {
		for _, n := range strings.Split(f[2], ",") {
			skip[n] = true
		}
	}
	if got, err := treeState(ws, skip); err != nil || got != f[1] {
		return ""
	}
	return f[0]
}

// recordPristine notes that ws holds commit, clean, as it is now, leaving
// out the top-level names of skip (cache dirs shown there, whose mount
// points come and go).
func recordPristine(root, ws, commit string, skip map[string]string) {
	names := map[string]bool{}
	for n := range skip {
		if !strings.Contains(n, "/") && n != "" {
			names[n] = true
		}
	}
	state, newest, err := treeStateSince(ws, names)
	if err != nil {
		forgetPristine(root, ws)
		return
	}
	// A file changed in the same clock tick as the record keeps its change
	// time to the nanosecond (file times come from the coarse clock): a
	// build's first write could then leave the state as recorded. The
	// steps start only once the clock has moved past every recorded
	// change — a wait of at most a tick, and only after the tree changed.
	if wait := time.Until(newest.Add(2 * timestampTick())); wait > 0 {
		time.Sleep(wait)
	}
	line := commit + " " + state
	if len(names) > 0 {
		line += " " + strings.Join(slices.Sorted(maps.Keys(names)), ",")
	}
	_ = safefs.WriteFile(filepath.Join(root, cache.SlotsDir), filepath.Base(slotState(root, ws)), []byte(line+"\n"), 0o600)
}

// forgetPristine drops what the agent knew of ws being clean (the slot's
// state file, in the agent's own slots dir, unlinked: never followed).
func forgetPristine(root, ws string) {
	_ = unix.Unlinkat(unix.AT_FDCWD, slotState(root, ws), 0)
}
