package mirror

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
)

// The two shapes Gitea 1.27.3 returns for an empty repository under a
// mirror's name: only a failed migration's leftover of this very source is
// repairable; a user's own empty placeholder is a conflict, never deleted.
func TestClassifyGitea1273Shapes(t *testing.T) {
	load := func(name string) *gitea.Repo {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		var r gitea.Repo
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		return &r
	}
	cases := []struct {
		fixture, source string
		leftover        bool
		reason          string
	}{
		{"gitea-1.27.3-failed-migration.json", "https://github.com/alice/tool", true, "--repair"},
		{"gitea-1.27.3-failed-migration.json", "https://github.com/bob/tool", false, "another source"},
		{"gitea-1.27.3-empty-placeholder.json", "https://github.com/alice/tool", false, "will not delete"},
	}
	for _, c := range cases {
		it := &Item{cloneURL: c.source}
		classify(it, load(c.fixture))
		if it.Action != ActionConflict || it.Leftover != c.leftover || !strings.Contains(it.Reason, c.reason) {
			t.Errorf("%s for %s: %s leftover=%v %q", c.fixture, c.source, it.Action, it.Leftover, it.Reason)
		}
	}
	// The same leftover once Gitea synced it is a healthy mirror.
	synced := load("gitea-1.27.3-failed-migration.json")
	synced.MirrorInterval, synced.Empty = "8h0m0s", false
	it := &Item{cloneURL: "https://github.com/alice/tool"}
	if classify(it, synced); it.Action != ActionExists {
		t.Errorf("a synced mirror: %s %q", it.Action, it.Reason)
	}
}
