package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runRoot(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := NewRoot(&out, &out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// `raibid pipeline show` prints the pipeline a repository gets, with when:
// evaluated for the event asked about; `validate` checks a file with the
// agents' parser and names file, line and field.
func TestPipelineShowAndValidate(t *testing.T) {
	dir := t.TempDir()
	yml := "when:\n  branch: main\nsteps:\n  - name: build\n    run: make\n  - name: docs\n    run: make docs\n    when: {path: \"docs/**\"}\n"
	os.WriteFile(filepath.Join(dir, ".raibid.yml"), []byte(yml), 0o644)
	out, err := runRoot(t, "pipeline", "show", dir, "--branch", "main", "--changed", "src/a.go")
	if err != nil || !strings.Contains(out, "runs for this event") || !strings.Contains(out, "- docs: make docs  (skipped: none of the 1 file changed matches when.path)") {
		t.Fatalf("show: %v\n%s", err, out)
	}
	out, _ = runRoot(t, "pipeline", "show", dir, "--branch", "feature")
	if !strings.Contains(out, `SKIPPED for this event: branch "feature" does not match when.branch`) {
		t.Fatalf("show feature:\n%s", out)
	}
	gdir := t.TempDir()
	os.WriteFile(filepath.Join(gdir, ".raibid.yml"), []byte("when: {event: [push, tag]}\nsteps:\n  - {name: build, run: make}\n"+
		"  - {name: test, run: make test, depends_on: [build]}\n  - {name: release, run: ./release, depends_on: [test], when: {event: tag, tag: \"v*\"}}\n"), 0o644)
	out, _ = runRoot(t, "pipeline", "show", gdir)
	for _, want := range []string{"runs on push, tag\n", "- test: make test  (depends on build)\n", "- release: ./release  (depends on test; runs on tag, tag v*)\n"} {
		if !strings.Contains(out, want) {
			t.Fatalf("show without an event lacks %q:\n%s", want, out)
		}
	}
	mdir := t.TempDir()
	os.WriteFile(filepath.Join(mdir, ".raibid.yml"), []byte("matrix:\n  os: [a, b]\n  v: [\"1\"]\nsteps:\n  - {name: t, run: x}\n"), 0o644)
	if out, err := runRoot(t, "pipeline", "show", mdir); err != nil || !strings.Contains(out, "matrix: 2 jobs\n  os=a,v=1\n  os=b,v=1\n") {
		t.Fatalf("show matrix: %v\n%s", err, out)
	}
	goDir := t.TempDir()
	os.WriteFile(filepath.Join(goDir, "go.mod"), []byte("module x\n"), 0o644)
	if out, err := runRoot(t, "pipeline", "show", goDir); err != nil || !strings.HasPrefix(out, "default Go pipeline") {
		t.Fatalf("show go: %v\n%s", err, out)
	}
	if _, err := runRoot(t, "pipeline", "show", t.TempDir()); err == nil || ExitCode(err) != 2 {
		t.Fatalf("show of an empty directory: %v", err)
	}
	if out, err := runRoot(t, "pipeline", "validate", filepath.Join(dir, ".raibid.yml")); err != nil || !strings.Contains(out, "valid, 2 steps") {
		t.Fatalf("validate: %v %s", err, out)
	}
	bad := filepath.Join(dir, "bad.yml")
	os.WriteFile(bad, []byte("steps:\n  - name: a\n    run: x\n    when: {branch: \"[x\"}\n"), 0o644)
	if _, err := runRoot(t, "pipeline", "validate", bad); err == nil || ExitCode(err) != 1 || !strings.Contains(err.Error(), "bad.yml:4: steps[0].when.branch") {
		t.Fatalf("validate bad: %v", err)
	}
}

// A missing or extra argument is one line naming it, with the usage, and
// exit code 2 — not cobra's "accepts 1 arg(s), received 0".
func TestArgumentErrorsNameWhatIsMissing(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"job", "logs"}, "job logs: missing ID (usage: raibid job logs ID [flags])"},
		{[]string{"job", "show", "a", "b"}, "job show: too many arguments (usage: raibid job show ID [flags])"},
		{[]string{"schedule", "add"}, "schedule add: missing OWNER/REPO"},
	} {
		_, err := runRoot(t, c.args...)
		if err == nil || ExitCode(err) != 2 || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("raibid %v: %v (exit %d), want %q", c.args, err, ExitCode(err), c.want)
		}
	}
}
