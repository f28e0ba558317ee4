package agent

import (
	"context"
	"maps"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/runner"
)

// A toolchain prepares, on the agent's side, what one language's builds
// need between jobs: cache directories the steps write (outside the
// workspace, so the sandbox must let them), variables pointing the tools at
// them, and the figures recorded with the verdict. Everything language
// specific stays behind it; handle only merges what they give.
type toolchain interface {
	// prepare returns the job's setup, or ok false when the workspace is
	// not this toolchain's (no Cargo.toml for Rust) or it has nothing to
	// give (no build cache).
	prepare(ctx context.Context, job *ci.Job, ws string) (setup buildSetup, ok bool)
}

// buildSetup is what the toolchains give one job.
type buildSetup struct {
	Env      []string // NAME=value for every step (the pipeline's own env wins)
	Writable []string // directories outside the workspace the steps write
	Notes    []string // lines for the job's log
	// Shown are cache directories steps and artifacts see inside the
	// workspace, by workspace-relative path: cargo's cached target dir as
	// target/, so `target/release/app` means what a cargo user expects.
	Shown map[string]string
	// Stats turn the pipeline's result into fields recorded with the
	// verdict (cache figures), one per toolchain that gives any.
	Stats []func(runner.Result) map[string]string
	// Release lets go of what the job held (the in-use marks of its cache
	// directories); called once the job has ended.
	Release []func()
}

// release runs the Release functions.
func (b buildSetup) release() {
	for _, f := range b.Release {
		f()
	}
}

// stats is the fields the toolchains record with the verdict.
func (b buildSetup) stats(res runner.Result) map[string]string {
	out := map[string]string{}
	for _, f := range b.Stats {
		maps.Copy(out, f(res))
	}
	return out
}

// prepareBuild merges the setups of the toolchains that apply to ws.
func (a *Agent) prepareBuild(ctx context.Context, job *ci.Job, ws string) buildSetup {
	var all buildSetup
	for _, tc := range a.toolchains {
		s, ok := tc.prepare(ctx, job, ws)
		if !ok {
			continue
		}
		all.Env = append(all.Env, s.Env...)
		all.Writable = append(all.Writable, s.Writable...)
		all.Notes = append(all.Notes, s.Notes...)
		if len(s.Shown) > 0 && all.Shown == nil {
			all.Shown = map[string]string{}
		}
		maps.Copy(all.Shown, s.Shown)
		all.Stats = append(all.Stats, s.Stats...)
		all.Release = append(all.Release, s.Release...)
	}
	return all
}
