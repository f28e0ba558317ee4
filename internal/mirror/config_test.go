package mirror_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/mirror"
	"github.com/raibid-labs/raibid-ci/internal/yamlfile"
)

func TestParseExampleFile(t *testing.T) {
	cfg, err := mirror.Load("testdata/mirrors.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Entries) != 3 {
		t.Fatalf("entries = %d, want 3", len(cfg.Entries))
	}
	log, serde, org := cfg.Entries[0], cfg.Entries[1], cfg.Entries[2]
	if log.TargetOwner != "mirrors" || log.TargetName != "log" || log.Interval != 8*time.Hour || log.Private {
		t.Errorf("single with defaults = %+v", log)
	}
	if serde.TargetOwner != "rust" || serde.TargetName != "serde_json" {
		t.Errorf("single with target = %+v", serde)
	}
	if org.TargetOwner != "acme-mirror" || org.Interval != time.Hour || !org.Private {
		t.Errorf("org = %+v", org)
	}
	for name, want := range map[string]bool{"svc-api": true, "lib-x": true, "svc-old-archive": false, "website": false} {
		if got, why := org.Selects(name); got != want {
			t.Errorf("Selects(%q) = %v (%s), want %v", name, got, why, want)
		}
	}
}

func TestOrgTargetsOwnerOfSameNameByDefault(t *testing.T) {
	cfg, err := mirror.Parse("m.yaml", []byte("defaults: {owner: mirrors}\nmirrors:\n  - {type: org, source: acme}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Entries[0].TargetOwner; got != "acme" {
		t.Fatalf("org target owner = %q, want acme (defaults.owner is for single entries)", got)
	}
}

func TestParseErrorsNameLineEntryAndField(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"empty", "", "m.yaml:1: file is empty"},
		{"no list", "defaults: {owner: x}\n", "m.yaml:1: mirrors: is missing"},
		{"unknown top", "mirror: []\n", "m.yaml:1: mirror: unknown field"},
		{"unknown entry field", "mirrors:\n  - type: org\n    source: acme\n    inclde: [x]\n", "m.yaml:4: mirrors[0].inclde: unknown field"},
		{"bad type", "mirrors:\n  - type: group\n    source: acme\n", "m.yaml:2: mirrors[0].type: must be single or org"},
		{"type not inferable", "mirrors:\n  - source: a/b/c/d\n", "m.yaml:2: mirrors[0].source: \"a/b/c/d\" is neither owner/repository nor an owner"},
		{"bad regex", "mirrors:\n  - type: single\n    source: a/b\n  - type: org\n    source: acme\n    exclude: [\"(\"]\n", "m.yaml:6: mirrors[1].exclude[0]: bad regular expression"},
		{"single needs owner/repo", "mirrors:\n  - {type: single, source: acme}\n", "mirrors[0].source: \"acme\" must be owner/repository"},
		{"filters on single", "mirrors:\n  - {type: single, source: a/b, include: [x]}\n", "mirrors[0]: include and exclude apply to org entries only"},
		{"short interval", "mirrors:\n  - {type: single, source: a/b, interval: 1m}\n", "mirrors[0].interval: 1m0s is shorter than Gitea's minimum"},
		{"bad interval", "defaults: {interval: soon}\nmirrors:\n  - {type: single, source: a/b}\n", "m.yaml:1: defaults.interval: \"soon\" is not a positive duration"},
		{"duplicate key", "mirrors:\n  - type: single\n    source: a/b\n    source: c/d\n", "m.yaml:4: mirrors[0].source: appears twice"},
		{"same target twice", "mirrors:\n  - {type: single, source: a/x}\n  - {type: single, source: b/y, target: a/x}\n", "m.yaml:3: mirrors[1].target: a/x is already the target of mirrors[0]"},
		{"org twice", "mirrors:\n  - {type: org, source: acme}\n  - {type: org, source: ACME}\n", "mirrors[1].source: organisation ACME is already listed by mirrors[0]"},
		{"private not bool", "mirrors:\n  - {type: single, source: a/b, private: yes-please}\n", "mirrors[0].private: must be true or false"},
		{"syntax", "mirrors:\n  - type: [\n", "m.yaml:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := mirror.Parse("m.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			var ye *yamlfile.Error
			if !errors.As(err, &ye) || ye.Line < 1 {
				t.Fatalf("err %v is not a yamlfile.Error with a line", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
}

func TestTargetOfMapsPushesToMirrors(t *testing.T) {
	cfg, err := mirror.Load("testdata/mirrors.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for source, want := range map[string]string{
		"rust-lang/log":        "mirrors/log",
		"Serde-rs/JSON":        "rust/serde_json",
		"acme/svc-api":         "acme-mirror/svc-api",
		"acme/svc-old-archive": "",
		"acme/website":         "",
		"someone/else":         "",
	} {
		got, ok := cfg.TargetOf(source)
		if got != want || ok != (want != "") {
			t.Errorf("TargetOf(%q) = %q, %v; want %q", source, got, ok, want)
		}
		if want != "" && !cfg.Mirrors(want) {
			t.Errorf("Mirrors(%q) = false", want)
		}
	}
	if cfg.Mirrors("acme-mirror/website") {
		t.Error("an excluded repository counts as a mirror")
	}
}

func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("testdata/mirrors.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("mirrors:\n  - {type: org, source: a, include: [\"^x\"]}\n"))
	f.Add([]byte("defaults: {interval: 1h}\nmirrors: [{type: single, source: a/b, target: c}]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := mirror.Parse("fuzz.yaml", b)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error: %q", err)
			}
			return
		}
		for _, e := range cfg.Entries {
			if e.TargetOwner == "" || e.Source == "" || e.Interval < mirror.MinInterval {
				t.Fatalf("accepted entry without target, source or valid interval: %+v", e)
			}
			if e.Type == mirror.TypeSingle && e.TargetName == "" {
				t.Fatalf("single entry without target name: %+v", e)
			}
		}
	})
}

// The seed's own mirrors.yaml: URL sources, host-qualified targets, no type,
// include as one string — read as written, beside the short form.
func TestSeedMirrorsFileIsAccepted(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "seed-mirrors.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := mirror.Parse("seed-mirrors.yaml", b)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Entries) != 3 {
		t.Fatalf("%d entries", len(cfg.Entries))
	}
	one, org, two := cfg.Entries[0], cfg.Entries[1], cfg.Entries[2]
	if one.Type != mirror.TypeSingle || one.Source != "user/repo" || one.TargetOwner != "user" || one.TargetName != "repo" {
		t.Errorf("single from URLs: %+v", one)
	}
	if org.Type != mirror.TypeOrg || org.Source != "raibid-labs" || org.TargetOwner != "raibid-labs" ||
		len(org.Include) != 1 || !org.Include[0].MatchString("rust-daq") || org.Include[0].MatchString("web") {
		t.Errorf("org with include string: %+v", org)
	}
	if two.Source != "user/other" || two.TargetOwner != "mirrors" || two.TargetName != "other" {
		t.Errorf("github.com without scheme, target owner only: %+v", two)
	}
}
