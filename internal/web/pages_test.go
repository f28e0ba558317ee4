package web

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
)

// The job page prints step durations to the millisecond, as the CLI does,
// and marks a failure the pipeline allows.
func TestJobPageStepDurationsAndAllowedFailures(t *testing.T) {
	now := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	started := now.Add(-time.Second)
	exit := 1
	j := &ci.Job{ID: "01a2404a095326a953d3", Repo: "acme/app", Status: ci.StatusSuccess, Author: "Ada", Message: "Fix the build",
		Steps: []ci.Step{
			{Name: "build", Status: ci.StatusSuccess, StartedAt: &started, DurationMS: 63},
			{Name: "lint", Status: ci.StatusFailed, StartedAt: &started, DurationMS: 1204, ExitCode: &exit, AllowFailure: true},
			{Name: "test", Status: ci.StatusFailed, StartedAt: &started, DurationMS: 5, ExitCode: &exit},
		}}
	rec := httptest.NewRecorder()
	if err := NewPages(func() time.Time { return now }).Job(rec, &JobPage{Job: j}); err != nil {
		t.Fatal(err)
	}
	page := rec.Body.String()
	for _, want := range []string{"<td>63ms</td>", "<td>1.204s</td>", "<dd>Ada</dd>", "Fix the build"} {
		if !strings.Contains(page, want) {
			t.Errorf("job page lacks %q", want)
		}
	}
	if n := strings.Count(page, `class="allowed"`); n != 1 {
		t.Errorf("%d allowed marks, want 1 (lint only)", n)
	}
}
