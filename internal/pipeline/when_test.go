package pipeline

import (
	"strings"
	"testing"
)

// when: is parsed strictly: a bad glob, an unknown key, status on the
// pipeline, an event that does not exist — each names file, line and field.
func TestWhenParseErrors(t *testing.T) {
	cases := map[string]string{
		"when:\n  branch: \"[main\"\nsteps:\n  - {name: a, run: x}\n":                         `.raibid.yml:2: when.branch: "[main" is not a valid glob`,
		"when:\n  branches: main\nsteps:\n  - {name: a, run: x}\n":                            ".raibid.yml:2: when.branches: unknown field",
		"when:\n  status: [failure]\nsteps:\n  - {name: a, run: x}\n":                         ".raibid.yml:2: when.status: is for steps only",
		"steps:\n  - name: a\n    run: x\n    when:\n      event: [push, merge]\n":            `.raibid.yml:5: steps[0].when.event: "merge" is not push, pull_request, tag, manual or cron`,
		"steps:\n  - name: a\n    run: x\n    when:\n      path: {include: [a], skip: [b]}\n": ".raibid.yml:5: steps[0].when.path.skip: unknown field (allowed: include, exclude)",
		"steps:\n  - name: a\n    run: x\n    when:\n      status: [always]\n":                `.raibid.yml:5: steps[0].when.status: "always" is not success or failure`,
	}
	for yml, want := range cases {
		_, err := Parse(".raibid.yml", []byte(yml))
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", yml, err, want)
		}
	}
}

// The when matrix: branch globs with exclude, events, tags, and paths over
// the changed files (unknown changes match).
func TestWhenMatch(t *testing.T) {
	p, err := Parse(".raibid.yml", []byte(`when:
  event: [push, pull_request, tag]
  branch: {include: [main, "release/*"], exclude: ["release/old*"]}
  path: {include: ["src/**", "go.mod"], exclude: ["src/**/*.md"]}
steps:
  - {name: a, run: x}
`))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		c    Context
		want bool
		why  string
	}{
		{Context{Event: "push", Branch: "main", Changed: []string{"src/a/b.go"}}, true, ""},
		{Context{Event: "push", Branch: "release/1.2", Changed: nil}, true, ""},
		{Context{Event: "push", Branch: "release/old-1", Changed: []string{"go.mod"}}, false, "branch"},
		{Context{Event: "push", Branch: "feature", Changed: []string{"go.mod"}}, false, "branch"},
		{Context{Event: "manual", Branch: "main"}, false, "event manual is not push or pull_request or tag"},
		{Context{Event: "pull_request", Branch: "main", Changed: []string{"docs/x.md", "src/y/README.md"}}, false, "none of the 2 files changed matches when.path"},
		{Context{Event: "pull_request", Branch: "main", Changed: []string{"docs/x.md", "src/y/z.go"}}, true, ""},
	}
	for _, c := range cases {
		ok, why := p.When.Match(c.c)
		if ok != c.want || !strings.Contains(why, c.why) {
			t.Errorf("%+v: %v %q, want %v %q", c.c, ok, why, c.want, c.why)
		}
	}
	tags, _ := Parse(".raibid.yml", []byte("when:\n  tag: \"v*\"\nsteps:\n  - {name: a, run: x}\n"))
	if ok, _ := tags.When.Match(Context{Event: "tag", Tag: "v1.2.0"}); !ok {
		t.Error("v1.2.0 does not match v*")
	}
	if ok, _ := tags.When.Match(Context{Event: "push", Branch: "main"}); ok {
		t.Error("a branch push matched when.tag")
	}
}

// Steps with when: a step for another event is skipped with the reason; a
// failure skips the ordinary steps after it but runs those that ask for
// failures, and the first failure stays the verdict.
