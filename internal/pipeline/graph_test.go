package pipeline

import (
	"testing"
)

// Two independent steps run at once and a third waits for both: asserted
// from the steps' recorded start and finish times, not the wall clock.
// A failed step skips its dependants (and theirs), not the rest; an
// allowed failure does not; a step asking for failures runs.
func TestGraphErrors(t *testing.T) {
	for yml, want := range map[string]string{
		"steps:\n  - {name: a, run: x, depends_on: [b]}\n": `.raibid.yml:2: steps[0].depends_on: no step is called "b"`,
		"steps:\n  - {name: a, run: x, depends_on: [a]}\n": ".raibid.yml:2: steps[0].depends_on: a step cannot depend on itself",
		"steps:\n  - {name: a, run: x, depends_on: [c]}\n  - {name: b, run: x, depends_on: [a]}\n  - {name: c, run: x, depends_on: [b]}\n": ".raibid.yml:3: steps[1].depends_on: makes a cycle: a → c → b → a",
		"steps:\n  - {name: a, run: x, depends_on: 3}\n": `.raibid.yml:2: steps[0].depends_on: "3" is not a step name`,
	} {
		_, err := Parse(".raibid.yml", []byte(yml))
		if err == nil || err.Error() != want {
			t.Errorf("%q: %v, want %q", yml, err, want)
		}
	}
}
