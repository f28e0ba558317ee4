package pipeline

import (
	"strings"
	"testing"

	"github.com/raibid-labs/raibid-ci/internal/ci"
)

// A matrix expands to the product of its axes, minus exclude, plus include,
// in a stable order; bad matrices name file, line and field.
func TestMatrixCombinations(t *testing.T) {
	p, err := Parse(".raibid.yml", []byte(`matrix:
  toolchain: [stable, "1.85"]
  target: [x86_64, aarch64]
  exclude:
    - {toolchain: "1.85", target: aarch64}
  include:
    - {toolchain: nightly, target: x86_64}
steps:
  - {name: test, run: cargo test}
`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range p.Matrix.Combinations() {
		got = append(got, ci.MatrixLabel(c))
	}
	want := "target=x86_64,toolchain=stable target=aarch64,toolchain=stable target=x86_64,toolchain=1.85 target=x86_64,toolchain=nightly"
	if strings.Join(got, " ") != want {
		t.Fatalf("combinations %v\nwant %s", got, want)
	}
	for yml, msg := range map[string]string{
		"matrix: [a]\nsteps:\n  - {name: a, run: x}\n":                                               ".raibid.yml:1: matrix: must be a mapping",
		"matrix:\n  os: []\nsteps:\n  - {name: a, run: x}\n":                                         ".raibid.yml:2: matrix.os: must be a non-empty list",
		"matrix:\n  os: [a]\n  exclude:\n    - {arch: x}\nsteps:\n  - {name: a, run: x}\n":           ".raibid.yml:4: matrix.exclude[0].arch: is not an axis of the matrix (os)",
		"matrix:\n  a: [1, 2]\n  b: [1]\n  include:\n    - {a: 3}\nsteps:\n  - {name: a, run: x}\n":  ".raibid.yml:5: matrix.include[0]: an included combination names every axis (a, b)",
		"matrix:\n  a: [1,2,3,4,5,6,7,8,9]\n  b: [1,2,3,4,5,6,7,8]\nsteps:\n  - {name: a, run: x}\n": ".raibid.yml:2: matrix: makes 72 jobs; from 1 to 64",
		"matrix:\n  9x: [1]\nsteps:\n  - {name: a, run: x}\n":                                        ".raibid.yml:2: matrix.9x: axis names",
		"matrix:\n  os: [\"linux\\e[2J\"]\nsteps:\n  - {name: a, run: x}\n":                          ".raibid.yml:2: matrix: matrix os=\"linux\\x1b[2J\": axis names are letters, digits and _, values short printable text",
	} {
		if _, err := Parse(".raibid.yml", []byte(yml)); err == nil || !strings.HasPrefix(err.Error(), msg) {
			t.Errorf("%q: %v, want %q", yml, err, msg)
		}
	}
}
