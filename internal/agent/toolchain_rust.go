package agent

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/runner"
)

// rustBuild is the Rust toolchain: with a build cache, a cargo target
// directory per cache scope (ci.Job.CacheScope) and rustc version kept
// between jobs, a cargo home per scope, and sccache when steps are not
// sandboxed.
type rustBuild struct{ a *Agent }

func (r rustBuild) prepare(ctx context.Context, job *ci.Job, ws string) (buildSetup, bool) {
	a := r.a
	scope := job.CacheScope()
	target := a.cargoTarget(ws, scope)
	if target == "" {
		return buildSetup{}, false
	}
	// Steps see the cached dir as the workspace's own target/ (a bind in
	// the sandbox, a link without one): paths in steps and artifacts read
	// as in any cargo checkout.
	s := buildSetup{
		Release:  []func(){},
		Env:      []string{"CARGO_TARGET_DIR=" + filepath.Join(ws, "target")},
		Writable: []string{target},
		Shown:    map[string]string{"target": target},
		Notes:    []string{"cargo target dir (kept between jobs, seen as target/): " + target},
		Stats: []func(runner.Result) map[string]string{func(res runner.Result) map[string]string {
			return map[string]string{"cache_artifacts": strconv.Itoa(res.Cache.Total), "cache_fresh": strconv.Itoa(res.Cache.Fresh)}
		}},
	}
	if release, err := a.opts.Cache.Use(target); err == nil {
		s.Release = append(s.Release, release) // pruning keeps it while the job runs
	} else {
		a.log.Warn("build cache", "err", err)
	}
	if home, err := a.opts.Cache.CargoHome(scope, userCargoHome()); err == nil {
		if release, err := a.opts.Cache.Use(home); err == nil {
			s.Release = append(s.Release, release)
		}
		s.Env = append(s.Env, "CARGO_HOME="+home)
		s.Writable = append(s.Writable, home)
		s.Notes = append(s.Notes, "cargo home (kept for "+scope+"): "+home)
	} else {
		a.log.Warn("build cache", "err", err)
	}
	// sccache's server runs compilers for any client that asks, outside any
	// one step: it cannot live in a step's sandbox, so sandboxed agents
	// build without it (the target dir cache still applies).
	if wrapper := sccachePath(); wrapper != "" && a.opts.Sandbox == nil {
		// sccache shares compiled crates across repositories too; its store
		// lives in the cache root, so pruning and the PVC cover it. sccache
		// runs one server per port; a port of this cache root's own keeps
		// another root's server from taking our compilations.
		scc := []string{"SCCACHE_DIR=" + filepath.Join(a.opts.Cache.Root, "sccache"),
			"SCCACHE_SERVER_PORT=" + strconv.Itoa(a.opts.Cache.Port()), "SCCACHE_STARTUP_TIMEOUT=60"}
		if err := sccacheServer(ctx, wrapper, scc); err != nil {
			// A build without sccache is slower; a build that fails because
			// a cache could not start is wrong.
			s.Notes = append(s.Notes, "sccache unavailable, building without it: "+err.Error())
		} else {
			s.Env = append(append(s.Env, "RUSTC_WRAPPER="+wrapper), scc...)
			s.Notes = append(s.Notes, "sccache: "+wrapper)
		}
	}
	return s, true
}

// rustToolchain names the toolchain target directories are keyed by.
var rustToolchain = sync.OnceValue(func() string {
	out, err := exec.Command("rustc", "--version").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
})

// userCargoHome is the agent's own cargo home, whose settings jobs keep.
func userCargoHome() string {
	if h := os.Getenv("CARGO_HOME"); h != "" {
		return h
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".cargo")
	}
	return ""
}

// sccacheStart serialises server starts of the agents in one process: many
// rustc wrappers racing to start one server time out under load (seen in CI).
var sccacheStart sync.Mutex

// sccacheServer makes sure the cache root's sccache server runs before a job's
// steps: started by the agent, once, it outlives the steps (a server started
// by cargo inside a step would be killed with the step's process group).
// `--show-stats` connects to the server and starts it when none answers.
func sccacheServer(ctx context.Context, wrapper string, env []string) error {
	sccacheStart.Lock()
	defer sccacheStart.Unlock()
	var err error
	for attempt := range 2 {
		if attempt > 0 {
			time.Sleep(time.Second)
		}
		cctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		cmd := exec.CommandContext(cctx, wrapper, "--show-stats")
		cmd.Env = runner.StepEnv(nil, env)
		var out []byte
		out, err = cmd.CombinedOutput()
		cancel()
		if err == nil {
			return nil
		}
		err = fmt.Errorf("%w: %s", err, strings.TrimSpace(lastLine(string(out))))
	}
	return err
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// sccachePath is sccache on PATH, or "" when it is not installed.
var sccachePath = sync.OnceValue(func() string {
	p, _ := exec.LookPath("sccache")
	return p
})

// cargoTarget is the cached target directory for a Rust build's scope, or ""
// when there is no cache or no Cargo.toml. The pipeline's own env may still
// set CARGO_TARGET_DIR: it comes later and wins.
func (a *Agent) cargoTarget(ws, scope string) string {
	if a.opts.Cache == nil {
		return ""
	}
	if _, err := os.Lstat(filepath.Join(ws, "Cargo.toml")); err != nil {
		return ""
	}
	dir, err := a.opts.Cache.TargetDir(scope, rustToolchain())
	if err != nil {
		a.log.Warn("build cache", "err", err)
		return ""
	}
	return dir
}
