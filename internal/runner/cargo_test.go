package runner_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/pipeline"
	"github.com/raibid-labs/raibid-ci/internal/runner"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// Real cargo: the first run compiles (nothing fresh), the second reuses all
// (every artifact fresh); the JSON lines stay out of the log, the test
// binary's own output stays in.
func TestCargoArtifactsCountedAsCacheHits(t *testing.T) {
	testutil.RequireTool(t, "cargo")
	dir := t.TempDir()
	for name, content := range testutil.RustCrate(false) {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644)
	}
	p := pipeline.RustPipeline(dir, pipeline.Tools{})
	target := "CARGO_TARGET_DIR=" + t.TempDir()
	run := func() (runner.Result, string) {
		out := &lines{}
		res := runner.Execute(context.Background(), p, runner.Options{Dir: dir, Sink: out, Env: []string{target}})
		if res.Status != ci.StatusSuccess {
			t.Fatalf("%+v\n%s", res, out.text())
		}
		return res, regexp.MustCompile("\x1b\\[[0-9;]*m").ReplaceAllString(out.text(), "")
	}
	cold, logs := run()
	if cold.Cache.Total == 0 || cold.Cache.Fresh == cold.Cache.Total {
		t.Fatalf("cold build: %+v", cold.Cache)
	}
	if strings.Contains(logs, `"reason"`) || !strings.Contains(logs, "test result: ok") || !strings.Contains(logs, "Compiling tiny") {
		t.Fatalf("log:\n%s", logs)
	}
	warm, _ := run()
	if warm.Cache.Total == 0 || warm.Cache.Fresh != warm.Cache.Total {
		t.Fatalf("warm build: %+v", warm.Cache)
	}
}
