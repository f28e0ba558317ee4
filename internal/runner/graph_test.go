package runner_test

import (
	"context"
	"strings"
	"testing"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/pipeline"
	"github.com/raibid-labs/raibid-ci/internal/runner"
)

func stepsByName(res runner.Result) map[string]ci.Step {
	out := map[string]ci.Step{}
	for _, s := range res.Steps {
		out[s.Name] = s
	}
	return out
}

func TestGraphRunsIndependentStepsAtOnce(t *testing.T) {
	p, err := pipeline.Parse(".raibid.yml", []byte(`steps:
  - {name: a, run: sleep 2}
  - {name: b, run: sleep 2}
  - {name: c, run: echo both done, depends_on: [a, b]}
`))
	if err != nil {
		t.Fatal(err)
	}
	res := runner.Execute(context.Background(), p, runner.Options{Dir: t.TempDir(), Concurrency: 4})
	st := stepsByName(res)
	a, b, c := st["a"], st["b"], st["c"]
	if res.Status != ci.StatusSuccess || a.Status != ci.StatusSuccess || c.Status != ci.StatusSuccess {
		t.Fatalf("%s %+v", res.Status, res.Steps)
	}
	if !a.StartedAt.Before(*b.FinishedAt) || !b.StartedAt.Before(*a.FinishedAt) {
		t.Fatalf("a (%s–%s) and b (%s–%s) did not overlap", a.StartedAt, a.FinishedAt, b.StartedAt, b.FinishedAt)
	}
	if c.StartedAt.Before(*a.FinishedAt) || c.StartedAt.Before(*b.FinishedAt) {
		t.Fatalf("c started at %s, before a or b finished (%s, %s)", c.StartedAt, a.FinishedAt, b.FinishedAt)
	}
	if wall := c.FinishedAt.Sub(*a.StartedAt); wall.Seconds() >= 5 {
		t.Fatalf("the graph took %s; sequential would take 4 s and more", wall)
	}

	// With one slot the same graph runs its steps one at a time.
	res = runner.Execute(context.Background(), p, runner.Options{Dir: t.TempDir(), Concurrency: 1})
	st = stepsByName(res)
	a, b = st["a"], st["b"]
	if a.StartedAt.Before(*b.FinishedAt) && b.StartedAt.Before(*a.FinishedAt) {
		t.Fatal("two steps ran at once with a concurrency of 1")
	}
}

func TestGraphFailureSkipsOnlyDependants(t *testing.T) {
	p, err := pipeline.Parse(".raibid.yml", []byte(`steps:
  - {name: build, run: "true"}
  - {name: test, run: exit 1, depends_on: [build]}
  - {name: lint, run: exit 1, depends_on: [build], allow_failure: true}
  - {name: doc, run: "true", depends_on: [build]}
  - {name: package, run: "true", depends_on: [test]}
  - {name: publish, run: "true", depends_on: [package]}
  - {name: after-lint, run: "true", depends_on: [lint]}
  - {name: report, run: echo reporting, depends_on: [test], when: {status: [failure]}}
`))
	if err != nil {
		t.Fatal(err)
	}
	out := &lines{}
	res := runner.Execute(context.Background(), p, runner.Options{Dir: t.TempDir(), Concurrency: 3, Sink: out})
	want := map[string]ci.Status{"build": "success", "test": "failed", "lint": "failed", "doc": "success",
		"package": "skipped", "publish": "skipped", "after-lint": "success", "report": "success"}
	for name, st := range stepsByName(res) {
		if want[name] != st.Status {
			t.Errorf("%s = %s, want %s", name, st.Status, want[name])
		}
	}
	if res.Status != ci.StatusFailed || res.Error != "step test failed with exit code 1" {
		t.Fatalf("verdict %s %q", res.Status, res.Error)
	}
	if log := out.text(); !strings.Contains(log, "package|system|skipped: needs test, which did not pass") || !strings.Contains(log, "publish|system|skipped: needs package, which did not pass") {
		t.Fatalf("log:\n%s", log)
	}
}
