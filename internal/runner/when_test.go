package runner_test

import (
	"context"
	"strings"
	"testing"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/pipeline"
	"github.com/raibid-labs/raibid-ci/internal/runner"
)

func TestStepWhenInTheRunner(t *testing.T) {
	p, err := pipeline.Parse(".raibid.yml", []byte(`steps:
  - name: build
    run: echo built
  - name: deploy
    run: echo deployed
    when: {event: tag}
  - name: test
    run: exit 3
  - name: after
    run: echo after
  - name: notify
    run: echo notified; exit 1
    when: {status: [failure]}
  - name: cleanup
    run: echo cleaned
    when: {status: [success, failure]}
`))
	if err != nil {
		t.Fatal(err)
	}
	sink := &lines{}
	res := runner.Execute(context.Background(), p, runner.Options{Dir: t.TempDir(), Sink: sink, When: pipeline.Context{Event: "push", Branch: "main"}})
	got := map[string]ci.Status{}
	for _, s := range res.Steps {
		got[s.Name] = s.Status
	}
	want := map[string]ci.Status{"build": "success", "deploy": "skipped", "test": "failed", "after": "skipped", "notify": "failed", "cleanup": "success"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("step %s = %s, want %s", k, got[k], v)
		}
	}
	if res.Status != ci.StatusFailed || res.Error != "step test failed with exit code 3" {
		t.Fatalf("verdict %s %q", res.Status, res.Error)
	}
	if out := sink.text(); !strings.Contains(out, "skipped: event push is not tag") || !strings.Contains(out, "notified") || !strings.Contains(out, "cleaned") {
		t.Fatalf("log:\n%s", out)
	}
}
