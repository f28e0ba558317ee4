package pipeline

import (
	"encoding/json"
	"path/filepath"
)

// Default is the pipeline of a repository without .raibid.yml, chosen by
// what its root holds, first match wins: Cargo.toml (Rust), go.mod (Go),
// pyproject.toml or setup.py (Python), package.json (Node). nil when none
// applies. tools is asked only for Rust (finding out runs cargo).
func Default(dir string, tools func() Tools) *Pipeline {
	switch {
	case exists(filepath.Join(dir, "Cargo.toml")):
		return RustPipeline(dir, tools())
	case exists(filepath.Join(dir, "go.mod")):
		return GoPipeline()
	case exists(filepath.Join(dir, "pyproject.toml")), exists(filepath.Join(dir, "setup.py")):
		return PythonPipeline()
	case exists(filepath.Join(dir, "package.json")):
		return NodePipeline(dir)
	}
	return nil
}

// GoPipeline is the default for a Go module: vet, build, and the tests with
// the race detector when cgo works (it needs a C compiler).
func GoPipeline() *Pipeline {
	return &Pipeline{Timeout: DefaultTimeout, Origin: "default Go pipeline", Steps: []Step{
		{Name: "vet", Run: "go vet ./..."},
		{Name: "build", Run: "go build ./..."},
		{Name: "test", Run: `if [ "$(go env CGO_ENABLED)" = 1 ] && command -v "$(go env CC)" >/dev/null 2>&1; then go test -race ./...; else go test ./...; fi`},
	}}
}

// PythonPipeline is the default for a Python project: a virtual
// environment that also sees the system's packages (pytest from the
// distribution works offline), the project installed into it with its test
// extras, and pytest.
func PythonPipeline() *Pipeline {
	return &Pipeline{Timeout: DefaultTimeout, Origin: "default Python pipeline",
		Env: map[string]string{"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONDONTWRITEBYTECODE": "1"},
		Steps: []Step{
			{Name: "venv", Run: "python3 -m venv --system-site-packages .venv"},
			// --no-build-isolation builds with the environment's setuptools
			// instead of downloading one.
			{Name: "install", Run: `.venv/bin/python -m pip install --no-build-isolation -e ".[test]"`},
			{Name: "test", Run: ".venv/bin/python -m pytest"},
		}}
}

// NodePipeline is the default for a Node package: npm ci (npm install
// without a lockfile), npm test, and npm run build when package.json has a
// build script. A step whose script package.json lacks is skipped.
func NodePipeline(dir string) *Pipeline {
	var pkg struct {
		Scripts map[string]string `json:"scripts"`
	}
	if b, err := readRegular(filepath.Join(dir, "package.json")); err == nil {
		_ = json.Unmarshal(b, &pkg) // npm reports a broken package.json itself
	}
	install := Step{Name: "install", Run: "npm ci --no-audit --no-fund"}
	if !exists(filepath.Join(dir, "package-lock.json")) {
		install.Run = "npm install --no-audit --no-fund"
	}
	test := Step{Name: "test", Run: "npm test"}
	if pkg.Scripts["test"] == "" {
		test.SkipReason = "package.json has no test script"
	}
	build := Step{Name: "build", Run: "npm run build"}
	if pkg.Scripts["build"] == "" {
		build.SkipReason = "package.json has no build script"
	}
	return &Pipeline{Timeout: DefaultTimeout, Origin: "default Node pipeline",
		Env: map[string]string{"NPM_CONFIG_UPDATE_NOTIFIER": "false"}, Steps: []Step{install, test, build}}
}
