package pipeline_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/pipeline"
)

func TestParseValid(t *testing.T) {
	p, err := pipeline.Parse(".raibid.yml", []byte(`
timeout: 20m
image: rust:1.95
env:
  RUST_LOG: debug
  LEVEL: 3
steps:
  - name: build
    run: cargo build
  - name: lint
    run: |
      cargo fmt --check
      cargo clippy
    timeout: 5m
    allow_failure: true
    env: {FOO: bar}
`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Timeout != 20*time.Minute || p.Image != "rust:1.95" || p.Env["LEVEL"] != "3" || len(p.Steps) != 2 {
		t.Fatalf("pipeline %+v", p)
	}
	s := p.Steps[1]
	if s.Name != "lint" || !strings.Contains(s.Run, "cargo clippy") || s.Timeout != 5*time.Minute || !s.AllowFailure || s.Env["FOO"] != "bar" {
		t.Fatalf("step %+v", s)
	}
	if p.Steps[0].Timeout != 0 || p.Steps[0].AllowFailure {
		t.Fatalf("defaults %+v", p.Steps[0])
	}
}

// Each malformed file is an error naming the file, the line and the field.
func TestParseErrorsNameLineAndField(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"unknown step field", "steps:\n  - name: a\n    run: x\n    comand: y\n", ".raibid.yml:4: steps[0].comand: unknown field"},
		{"unknown top field", "stages: []\nsteps:\n  - {name: a, run: x}\n", ".raibid.yml:1: stages: unknown field"},
		{"timeout not duration", "steps:\n  - name: a\n    run: x\n    timeout: forever\n", ".raibid.yml:4: steps[0].timeout:"},
		{"timeout number", "timeout: 10\nsteps:\n  - {name: a, run: x}\n", ".raibid.yml:1: timeout:"},
		{"allow_failure string", "steps:\n  - name: a\n    run: x\n    allow_failure: sometimes\n", ".raibid.yml:4: steps[0].allow_failure: must be true or false"},
		{"run is a list", "steps:\n  - name: a\n    run: [x, y]\n", ".raibid.yml:3: steps[0].run:"},
		{"missing run", "steps:\n  - name: a\n", ".raibid.yml:2: steps[0].run: is missing"},
		{"missing name", "steps:\n  - run: x\n", ".raibid.yml:2: steps[0].name: is missing"},
		{"duplicate names", "steps:\n  - {name: a, run: x}\n  - {name: a, run: y}\n", ".raibid.yml:3: steps[1].name:"},
		{"no steps", "timeout: 1m\n", ".raibid.yml:1: steps: is missing"},
		{"empty steps", "steps: []\n", ".raibid.yml:1: steps: must be a non-empty list"},
		{"env list", "env: [A]\nsteps:\n  - {name: a, run: x}\n", ".raibid.yml:1: env: must be a mapping"},
		{"bad env name", "steps:\n  - name: a\n    run: x\n    env: {1X: y}\n", ".raibid.yml:4: steps[0].env.1X:"},
		{"syntax", "timeout: 1m\nimage: x\nsteps: a: b\n", ".raibid.yml:3: invalid YAML"},
		{"memory not a quantity", "resources: {memory: lots}\nsteps:\n  - {name: a, run: x}\n", ".raibid.yml:1: resources.memory: must be a quantity such as 8Gi"},
		{"memory zero", "resources: {memory: 0Gi}\nsteps:\n  - {name: a, run: x}\n", ".raibid.yml:1: resources.memory: must be a quantity such as 8Gi"},
		{"mis-indented key", "steps:\n  - name: a\n    run: x\n   bad: 1\n", ".raibid.yml:4: invalid YAML"},
		{"duplicate key", "steps:\n  - name: a\n    run: x\n    run: y\n", ".raibid.yml:4: steps[0].run: appears twice"},
		{"empty", "", ".raibid.yml:1: file is empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := pipeline.Parse(".raibid.yml", []byte(c.yaml))
			var pe *pipeline.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a ParseError", err)
			}
			if !strings.HasPrefix(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %q, want prefix %q on one line", err, c.want)
			}
		})
	}
}

func noTools() pipeline.Tools { return pipeline.Tools{} }

// Memory sizes as Kubernetes writes them are taken as they are.
func TestParseMemoryQuantities(t *testing.T) {
	for _, m := range []string{"8Gi", "512Mi", "1.5G", "1000000"} {
		p, err := pipeline.Parse(".raibid.yml", []byte("resources: {memory: "+m+"}\nsteps:\n  - {name: a, run: x}\n"))
		if err != nil || p.Resources.Memory != m {
			t.Errorf("memory %s: %v %+v", m, err, p)
		}
	}
}

func TestLoadChoosesPipeline(t *testing.T) {
	dir := t.TempDir()
	if _, err := pipeline.Load(dir, noTools); !errors.Is(err, pipeline.ErrNoPipeline) || !strings.Contains(err.Error(), ".raibid.yml") {
		t.Fatalf("empty repo: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "Cargo.toml"), []byte("[package]\nname='x'\n"), 0o644)
	p, err := pipeline.Load(dir, noTools)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range p.Steps {
		names = append(names, s.Name+":"+s.SkipReason)
	}
	got := strings.Join(names, ",")
	want := "check:,build:,test:,clippy:,audit:cargo-audit is not installed,image:no Dockerfile"
	if got != want {
		t.Fatalf("rust steps %s, want %s", got, want)
	}
	if p.Steps[2].Run != "cargo test --message-format=json-render-diagnostics" || !p.Steps[2].CargoJSON || !strings.Contains(p.Steps[3].Run, "-D warnings") || !strings.Contains(p.Steps[1].Run, "--release") {
		t.Fatalf("commands %+v", p.Steps)
	}
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644)
	p, _ = pipeline.Load(dir, func() pipeline.Tools {
		return pipeline.Tools{Nextest: true, Audit: true, Buildx: true, Registry: "gitea.local:3000"}
	})
	if p.Steps[2].Run != "cargo nextest run" || p.Steps[4].SkipReason != "" || p.Steps[5].SkipReason != "" ||
		!strings.Contains(p.Steps[5].Run, `"gitea.local:3000/${RAIBID_REPO,,}:${RAIBID_COMMIT}"`) || !strings.Contains(p.Steps[5].Run, "--push") ||
		!strings.Contains(p.Steps[5].Run, `--cache-to "type=registry,ref=gitea.local:3000/${RAIBID_REPO,,}:buildcache-$(uname -m),mode=max"`) {
		t.Fatalf("with tools: %+v", p.Steps)
	}
	os.WriteFile(filepath.Join(dir, ".raibid.yml"), []byte("steps:\n  - {name: only, run: 'true'}\n"), 0o644)
	p, _ = pipeline.Load(dir, noTools)
	if len(p.Steps) != 1 || p.Origin != ".raibid.yml" {
		t.Fatalf(".raibid.yml wins over Cargo.toml: %+v", p)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("steps:\n  - name: a\n    run: x\n    timeout: 1m\n    env: {A: b}\n"))
	f.Add([]byte("timeout: 5m\nimage: x\nsteps: [{name: a, run: b, allow_failure: true}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := pipeline.Parse(".raibid.yml", data)
		if err != nil {
			var pe *pipeline.ParseError
			if !errors.As(err, &pe) || pe.Line < 1 {
				t.Fatalf("error %v is not a ParseError with a line", err)
			}
			return
		}
		if len(p.Steps) == 0 {
			t.Fatal("valid pipeline without steps")
		}
		for _, s := range p.Steps {
			if s.Name == "" || strings.TrimSpace(s.Run) == "" {
				t.Fatalf("step %+v", s)
			}
		}
	})
}
