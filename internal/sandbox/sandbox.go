// Package sandbox runs a build step where it cannot reach the CI that runs
// it. A step is untrusted code: in the sandbox it has its own PID namespace
// (everything it starts dies with it, and it cannot see or signal the agent,
// the server or Redis), a fresh /proc, a private /tmp, the filesystem
// read-only but for the directories the job may write, and none of the
// agent's credential files or home directory. When the agent runs as root the
// step runs as an unprivileged build user.
//
// The mechanism is Debian's bubblewrap (bwrap), the namespace sandbox that
// Flatpak uses; this package only builds its command line and checks once
// that the kernel allows it. It knows nothing of jobs or pipelines.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/safefs"
)

// Modes of the --sandbox flag.
const (
	ModeBwrap = "bwrap"
	ModeOff   = "off"
)

// ErrUnavailable means steps cannot be sandboxed here: bwrap is missing or
// the kernel refuses its namespaces (a restricted container, say).
var ErrUnavailable = errors.New("sandbox: unavailable")

// NobodyID is the uid and gid steps run as when the agent is root and no
// build user is configured.
const NobodyID = 65534

// Options say what a step may see besides the read-only filesystem.
type Options struct {
	// Hidden paths are replaced by an empty directory (or an empty file):
	// raibid's data dir, secret files, the agent's home.
	Hidden []string
	// ReadOnly paths are shown read-only even inside a hidden path
	// (toolchains installed under the agent's home).
	ReadOnly []string
	// Writable directories are shown read-write (the build cache).
	Writable []string
	// UID and GID run steps when the agent is root (default NobodyID).
	UID, GID int
}

// Sandbox starts steps in bwrap sandboxes, each set up for one step and
// used once; the next is set up ahead while a step runs (see spare.go).
type Sandbox struct {
	opts    Options
	bwrap   string
	setpriv string // used only when the agent is root
	root    bool

	mu sync.Mutex
	// spare is the sandbox set up ahead for the next step, or nil;
	// preparing says one is being set up.
	spare     *spare
	preparing bool
	closed    bool
	// sparesUsed counts the steps a spare served.
	sparesUsed int
	done       chan struct{} // closed by Close
	// pending counts set-ups and discards running in the background;
	// Close waits for them.
	pending sync.WaitGroup
}

// New finds bwrap (and setpriv when running as root) and runs `true` in a
// sandbox once, so an agent that cannot sandbox says so at start, not at its
// first job.
func New(opts Options) (*Sandbox, error) {
	bw, err := exec.LookPath("bwrap")
	if err != nil {
		return nil, fmt.Errorf("%w: bwrap not found (install Debian's bubblewrap, or run with --sandbox=off to run builds unsandboxed)", ErrUnavailable)
	}
	s := &Sandbox{opts: opts, bwrap: bw, root: os.Geteuid() == 0, done: make(chan struct{})}
	if s.opts.UID == 0 {
		s.opts.UID = NobodyID
	}
	if s.opts.GID == 0 {
		s.opts.GID = NobodyID
	}
	if s.root {
		if s.setpriv, err = exec.LookPath("setpriv"); err != nil {
			return nil, fmt.Errorf("%w: setpriv not found (util-linux), needed to drop root in steps", ErrUnavailable)
		}
	}
	// A step inherits nothing of the agent's but its output: descriptors
	// the agent itself inherited without close-on-exec would otherwise
	// pass through bwrap into every step.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return nil, fmt.Errorf("sandbox: mark descriptors close-on-exec: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dir, err := os.MkdirTemp("", "raibid-sandbox-probe")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if _, err := s.Own(dir); err != nil {
		return nil, err
	}
	// The probe goes the way every step goes: set up, then launched.
	out, err := s.probe(ctx, []string{"/bin/sh", "-c", "test -w . && [ $$ -le 3 ]"}, Job{Dir: dir})
	if err != nil {
		return nil, fmt.Errorf("%w: the kernel refused bwrap's namespaces (%s); run with --sandbox=off to run builds unsandboxed",
			ErrUnavailable, ci.FirstLine(strings.TrimSpace(out), err.Error()))
	}
	return s, nil
}

// UID is the user steps run as.
func (s *Sandbox) UID() int {
	if s.root {
		return s.opts.UID
	}
	return os.Geteuid()
}

// Job is what one step of one job may write and see.
type Job struct {
	// Dir is the workspace: read-write, and the step's working directory.
	Dir string
	// Writable adds directories of this job (its home, its cache dirs).
	Writable []string
	// ReadOnly adds paths of this job shown read-only (the git mirror that
	// the workspace's .git points into, the workspace's .git file itself).
	ReadOnly []string
	// Shown maps paths inside Dir to directories of this job shown there,
	// read-write (the cached cargo target dir as the workspace's target/).
	Shown map[string]string
	// Devices maps paths under /dev in the sandbox to the host's device
	// nodes shown there: the GPUs the job holds. The sandbox's /dev is
	// otherwise a fresh one without them.
	Devices map[string]string
}

// args is bwrap's command line, before the program it runs, that sets up
// the sandbox of j: namespaces, mounts and (as root) the drop to the build
// user.
func (s *Sandbox) args(j Job) []string {
	a := []string{
		// Dies when the agent dies, even by SIGKILL; a session of its own so
		// it cannot push keys into the agent's terminal; a PID namespace, so
		// when the step's shell exits everything it started is killed.
		"--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-cgroup-try",
		"--ro-bind", "/", "/",
		"--dev", "/dev",
		"--proc", "/proc",
		"--perms", "1777", "--tmpfs", "/tmp",
		"--perms", "1777", "--tmpfs", "/var/tmp",
		"--perms", "1777", "--tmpfs", "/dev/shm",
	}
	if !s.root {
		a = append(a, "--unshare-user")
	}
	var hiddenDirs []string
	for _, p := range uniq(s.opts.Hidden) {
		st, err := os.Stat(p)
		switch {
		case err != nil:
			continue
		case st.IsDir():
			a = append(a, "--tmpfs", p)
			hiddenDirs = append(hiddenDirs, p)
		default:
			a = append(a, "--ro-bind", "/dev/null", p)
		}
	}
	hiddenDirs = append(hiddenDirs, "/tmp", "/var/tmp")
	// Mount points inside a hidden directory are made 0755, or an
	// unprivileged step could not walk down to them.
	parents := func(p string) {
		for _, h := range hiddenDirs {
			if !within(p, h) || p == h {
				continue
			}
			rel, _ := filepath.Rel(h, filepath.Dir(p))
			cur := h
			for _, part := range strings.Split(rel, string(filepath.Separator)) {
				if part == "." || part == "" {
					continue
				}
				cur = filepath.Join(cur, part)
				a = append(a, "--perms", "0755", "--dir", cur)
			}
		}
	}
	bind := func(flag string, paths []string) {
		for _, p := range uniq(paths) {
			if _, err := os.Stat(p); err != nil {
				continue
			}
			parents(p)
			a = append(a, flag, p, p)
		}
	}
	bind("--ro-bind", s.opts.ReadOnly)
	bind("--ro-bind", j.ReadOnly)
	bind("--bind", s.opts.Writable)
	bind("--bind", append([]string{j.Dir}, j.Writable...))
	for _, at := range slices.Sorted(maps.Keys(j.Devices)) {
		if within(at, "/dev") && at != "/dev" {
			a = append(a, "--dev-bind-try", j.Devices[at], at)
		}
	}
	for _, dst := range slices.Sorted(maps.Keys(j.Shown)) {
		if src := j.Shown[dst]; within(dst, j.Dir) && dst != j.Dir {
			a = append(a, "--bind", src, dst)
		}
	}
	// Paths inside the workspace that must stay read-only (its .git file)
	// come after the workspace's own bind.
	for _, p := range j.ReadOnly {
		if within(p, j.Dir) && p != j.Dir {
			if _, err := os.Lstat(p); err == nil {
				a = append(a, "--ro-bind", p, p)
			}
		}
	}
	a = append(a, "--chdir", j.Dir, "--")
	if s.root {
		// bwrap sets no_new_privs; setpriv then drops to the build user
		// with no capabilities, so setuid programs cannot raise it again.
		a = append(a, s.setpriv, "--reuid="+strconv.Itoa(s.opts.UID), "--regid="+strconv.Itoa(s.opts.GID),
			"--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--")
	}
	return a
}

// Own makes dir and everything under it belong to the build user when the
// agent is root (the agent clones as itself; the step must be able to write
// its workspace and caches). Entries already owned are left alone, so a
// cache directory costs one walk without writes after its first job. The
// walk goes through internal/safefs: links are changed themselves, never
// followed, and a hard link to a file that is not the build's is left
// alone — a build may have planted either. It returns how many entries it
// changed.
func (s *Sandbox) Own(dir string) (changed int, err error) {
	if s == nil || !s.root {
		return 0, nil
	}
	changed, _, err = safefs.Chown(dir, s.opts.UID, s.opts.GID)
	if err != nil {
		return changed, fmt.Errorf("sandbox: give %s to the build user: %w", dir, err)
	}
	return changed, nil
}

func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimRight(dir, "/")+"/")
}

func uniq(ps []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range ps {
		if p == "" {
			continue
		}
		p = filepath.Clean(p)
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	// Shorter paths first: a bind inside another must come after it.
	sort.SliceStable(out, func(i, j int) bool { return len(out[i]) < len(out[j]) })
	return out
}
