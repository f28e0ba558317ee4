package pipeline

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func names(p *Pipeline) string {
	var out []string
	for _, s := range p.Steps {
		n := s.Name
		if s.SkipReason != "" {
			n += "(skipped)"
		}
		out = append(out, n)
	}
	return strings.Join(out, " ")
}

// A repository's language picks its default: first Rust, then Go, Python,
// Node; a Node step whose script package.json lacks is skipped; npm ci
// needs a lockfile.
func TestDefaultsByLanguage(t *testing.T) {
	noTools := func() Tools { return Tools{} }
	cases := []struct {
		files  map[string]string
		origin string
		steps  string
	}{
		{map[string]string{"Cargo.toml": "", "go.mod": ""}, "default Rust pipeline", "check build test clippy audit(skipped) image(skipped)"},
		{map[string]string{"go.mod": "module x\n"}, "default Go pipeline", "vet build test"},
		{map[string]string{"setup.py": ""}, "default Python pipeline", "venv install test"},
		{map[string]string{"pyproject.toml": "", "package.json": "{}"}, "default Python pipeline", "venv install test"},
		{map[string]string{"package.json": `{"scripts":{"test":"node t.js"}}`}, "default Node pipeline", "install test build(skipped)"},
		{map[string]string{"package.json": `{"scripts":{"build":"tsc"}}`, "package-lock.json": "{}"}, "default Node pipeline", "install test(skipped) build"},
	}
	for _, c := range cases {
		dir := t.TempDir()
		for name, body := range c.files {
			os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644)
		}
		p := Default(dir, noTools)
		if p == nil || p.Origin != c.origin || names(p) != c.steps {
			t.Errorf("%v: %v", c.files, p)
			continue
		}
		if p.Origin == "default Node pipeline" {
			_, lock := c.files["package-lock.json"]
			if strings.HasPrefix(p.Steps[0].Run, "npm ci") != lock {
				t.Errorf("%v: install runs %q", c.files, p.Steps[0].Run)
			}
		}
	}
	if p := Default(t.TempDir(), noTools); p != nil {
		t.Errorf("an empty repository got %s", p.Origin)
	}
}

// Without docker buildx the image step builds through a remote buildkitd
// (agent pods have no Docker engine), pushing with the registry cache; with
// neither it is skipped, saying so.
func TestImageStepThroughBuildkit(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Cargo.toml"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644)
	image := func(t Tools) Step {
		for _, s := range RustPipeline(dir, t).Steps {
			if s.Name == "image" {
				return s
			}
		}
		return Step{}
	}
	s := image(Tools{Buildctl: true, BuildkitAddr: "tcp://buildkitd.ci.svc.cluster.local:1234", Registry: "gitea.dgx.local:3000"})
	want := `buildctl --addr "tcp://buildkitd.ci.svc.cluster.local:1234" build --frontend dockerfile.v0 --local context=. --local dockerfile=.` +
		` --output "type=image,name=gitea.dgx.local:3000/${RAIBID_REPO,,}:${RAIBID_COMMIT},push=true"` +
		` --import-cache "type=registry,ref=gitea.dgx.local:3000/${RAIBID_REPO,,}:buildcache-$(uname -m)"` +
		` --export-cache "type=registry,ref=gitea.dgx.local:3000/${RAIBID_REPO,,}:buildcache-$(uname -m),mode=max"`
	if s.SkipReason != "" || s.Run != want {
		t.Fatalf("image step %q (skip %q)\nwant %q", s.Run, s.SkipReason, want)
	}
	if s := image(Tools{Buildx: true, Buildctl: true, BuildkitAddr: "tcp://b:1234"}); !strings.HasPrefix(s.Run, "docker buildx") {
		t.Fatalf("with buildx: %q", s.Run)
	}
	if s := image(Tools{Buildctl: true}); !strings.Contains(s.SkipReason, "buildctl with a --buildkit-addr") {
		t.Fatalf("buildctl without an address: %q", s.SkipReason)
	}
}
