package pipeline

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Tools says which optional tools exist where steps run.
type Tools struct {
	Nextest bool // cargo nextest
	Audit   bool // cargo audit
	Buildx  bool // docker buildx
	// Buildctl is buildctl on PATH and BuildkitAddr the buildkitd it talks
	// to (tcp://buildkitd.ci.svc.cluster.local:1234): images without a
	// Docker engine, as agent pods have none.
	Buildctl     bool
	BuildkitAddr string
	// Registry is where images are pushed (Gitea's OCI registry), e.g.
	// gitea.local:3000/acme. Empty: images are built but not pushed.
	Registry string
}

// DetectTools looks for the optional tools on PATH.
func DetectTools() Tools {
	ok := func(name string, args ...string) bool {
		return exec.Command(name, args...).Run() == nil
	}
	return Tools{
		Nextest:  ok("cargo", "nextest", "--version"),
		Audit:    ok("cargo", "audit", "--version"),
		Buildx:   ok("docker", "buildx", "version"),
		Buildctl: ok("buildctl", "--version"),
	}
}

// cargoJSON is the flag that makes cargo report each artifact as a JSON line
// on stdout while still rendering diagnostics for people (on stderr): the
// runner counts the artifacts (Step.CargoJSON).
const cargoJSON = "--message-format=json-render-diagnostics"

// RustPipeline is the default for a repository with a Cargo.toml and no
// .raibid.yml: check, release build, tests (nextest when installed), clippy
// with warnings as errors, audit when installed, and an image build when there
// is a Dockerfile and buildx. Steps that cannot run here are skipped with the
// reason, so the job view still shows the whole pipeline.
func RustPipeline(dir string, t Tools) *Pipeline {
	// Colours in the log: the web page and the dashboard render them.
	p := &Pipeline{Timeout: DefaultTimeout, Origin: "default Rust pipeline", Env: map[string]string{"CARGO_TERM_COLOR": "always"}}
	p.Steps = []Step{
		{Name: "check", Run: "cargo check --all-targets " + cargoJSON, CargoJSON: true},
		{Name: "build", Run: "cargo build --release " + cargoJSON, CargoJSON: true},
	}
	if t.Nextest {
		p.Steps = append(p.Steps, Step{Name: "test", Run: "cargo nextest run"})
	} else {
		p.Steps = append(p.Steps, Step{Name: "test", Run: "cargo test " + cargoJSON, CargoJSON: true})
	}
	p.Steps = append(p.Steps, Step{Name: "clippy", Run: "cargo clippy --all-targets " + cargoJSON + " -- -D warnings", CargoJSON: true})
	audit := Step{Name: "audit", Run: "cargo audit"}
	if !t.Audit {
		audit.SkipReason = "cargo-audit is not installed"
	}
	p.Steps = append(p.Steps, audit)
	image := Step{Name: "image", Run: imageCommand(t.Registry)}
	switch {
	case !exists(filepath.Join(dir, "Dockerfile")):
		image.SkipReason = "no Dockerfile"
	case t.Buildx:
	case t.Buildctl && t.BuildkitAddr != "":
		image.Run = buildctlCommand(t.Registry, t.BuildkitAddr)
	default:
		image.SkipReason = "neither docker buildx nor buildctl with a --buildkit-addr is available"
	}
	p.Steps = append(p.Steps, image)
	return p
}

// imageCommand builds <registry>/<owner>/<name>:<commit> (lower-cased, as
// OCI names must be) and pushes it when a registry is configured, with
// BuildKit's registry cache (<image>:buildcache-<arch>, mode=max) so layers
// survive ephemeral agents. RAIBID_REPO and RAIBID_COMMIT are set for every
// step.
func imageCommand(registry string) string {
	if registry == "" {
		return `docker buildx build -t "raibid/${RAIBID_REPO,,}:${RAIBID_COMMIT}" .`
	}
	image := strings.TrimRight(registry, "/") + `/${RAIBID_REPO,,}`
	cache := `type=registry,ref=` + image + `:buildcache-$(uname -m)`
	return `docker buildx build -t "` + image + `:${RAIBID_COMMIT}"` +
		` --cache-from "` + cache + `" --cache-to "` + cache + `,mode=max" --push .`
}

// buildctlCommand is imageCommand through a remote buildkitd: the same
// image name, pushed when a registry is configured, with the same registry
// cache.
func buildctlCommand(registry, addr string) string {
	cmd := `buildctl --addr "` + addr + `" build --frontend dockerfile.v0 --local context=. --local dockerfile=.`
	if registry == "" {
		return cmd + ` --output "type=image,name=raibid/${RAIBID_REPO,,}:${RAIBID_COMMIT}"`
	}
	image := strings.TrimRight(registry, "/") + `/${RAIBID_REPO,,}`
	cache := `type=registry,ref=` + image + `:buildcache-$(uname -m)`
	return cmd + ` --output "type=image,name=` + image + `:${RAIBID_COMMIT},push=true"` +
		` --import-cache "` + cache + `" --export-cache "` + cache + `,mode=max"`
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
