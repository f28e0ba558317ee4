package pipeline

import (
	"fmt"
	"slices"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
	"gopkg.in/yaml.v3"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/yamlfile"
)

// When says when a pipeline, or a step, applies. Every condition given must
// hold; one not given always does.
type When struct {
	Event  []string // push, pull_request, tag, manual, cron
	Branch Filter   // the branch (a pull request's: its base branch; tags have none)
	Tag    Filter
	// Path matches the files the push or pull request changed: the pipeline
	// (or step) applies when any changed file is included and not excluded.
	Path Filter
	// Status is for steps: which outcome of the steps before lets it run,
	// "success" (the default) and/or "failure".
	Status []string
}

// Filter is include/exclude globs ("**" crosses directories). An empty
// include list includes everything.
type Filter struct {
	Include []string
	Exclude []string
}

// Empty reports whether the filter says nothing.
func (f Filter) Empty() bool { return len(f.Include) == 0 && len(f.Exclude) == 0 }

// Match reports whether s is included and not excluded.
func (f Filter) Match(s string) bool {
	match := func(globs []string) bool {
		for _, g := range globs {
			if ok, _ := doublestar.Match(g, s); ok {
				return true
			}
		}
		return false
	}
	return (len(f.Include) == 0 || match(f.Include)) && !match(f.Exclude)
}

// Describe says in a few words what w requires of an event ("" when it
// requires nothing of one): what `raibid pipeline show` prints beside a
// step when no event is given.
func (w *When) Describe() string {
	if w == nil {
		return ""
	}
	var parts []string
	if len(w.Event) > 0 {
		parts = append(parts, "on "+strings.Join(w.Event, ", "))
	}
	for _, f := range []struct {
		name string
		f    Filter
	}{{"branch", w.Branch}, {"tag", w.Tag}, {"path", w.Path}} {
		if len(f.f.Include) > 0 {
			parts = append(parts, f.name+" "+strings.Join(f.f.Include, ", "))
		}
		if len(f.f.Exclude) > 0 {
			parts = append(parts, f.name+" not "+strings.Join(f.f.Exclude, ", "))
		}
	}
	return strings.Join(parts, ", ")
}

// Context is what a when is evaluated against.
type Context struct {
	Event  string
	Branch string
	Tag    string
	// Changed is the files the event changed; nil when unknown (then path
	// conditions hold: better a build too many than a change unbuilt).
	Changed []string
}

// ContextOf is the evaluation context of a job; changed, when not nil,
// stands for the job's own list (computed from the workspace).
func ContextOf(j *ci.Job, changed []string) Context {
	c := Context{Event: j.Event, Branch: j.Branch, Tag: j.Tag, Changed: j.Changed}
	if pr := j.PullRequest; pr != nil {
		c.Branch = pr.BaseBranch // where it would land, as Woodpecker does
	}
	if changed != nil {
		c.Changed = changed
	}
	return c
}

// Match reports whether w holds in c, and when it does not, why.
func (w *When) Match(c Context) (bool, string) {
	if w == nil {
		return true, ""
	}
	if len(w.Event) > 0 && !slices.Contains(w.Event, c.Event) {
		return false, fmt.Sprintf("event %s is not %s", c.Event, strings.Join(w.Event, " or "))
	}
	// A tag has no branch: branch conditions are for the other events.
	if !w.Branch.Empty() && c.Event != ci.EventTag && (c.Branch == "" || !w.Branch.Match(c.Branch)) {
		return false, fmt.Sprintf("branch %q does not match when.branch", c.Branch)
	}
	if !w.Tag.Empty() && (c.Tag == "" || !w.Tag.Match(c.Tag)) {
		return false, fmt.Sprintf("tag %q does not match when.tag", c.Tag)
	}
	if !w.Path.Empty() && c.Changed != nil && !slices.ContainsFunc(c.Changed, w.Path.Match) {
		return false, fmt.Sprintf("none of the %s changed matches when.path", ci.Plural(len(c.Changed), "file"))
	}
	return true, ""
}

// UsesPaths reports whether the pipeline or a step has a path condition
// (only then are changed files worth computing).
func (p *Pipeline) UsesPaths() bool {
	if p.When != nil && !p.When.Path.Empty() {
		return true
	}
	for _, s := range p.Steps {
		if s.When != nil && !s.When.Path.Empty() {
			return true
		}
	}
	return false
}

// RunsAfter reports whether a step with this when runs after steps that
// failed (failed true) or all succeeded.
func (w *When) RunsAfter(failed bool) bool {
	want := "success"
	if failed {
		want = "failure"
	}
	if w == nil || len(w.Status) == 0 {
		return want == "success"
	}
	return slices.Contains(w.Status, want)
}

// parseWhen reads a when mapping; step says whether status is allowed.
func parseWhen(f *yamlfile.File, n *yaml.Node, field string, step bool) (*When, error) {
	if n.Kind != yaml.MappingNode {
		return nil, f.At(n, field, "must be a mapping (event, branch, tag, path%s)", map[bool]string{true: ", status"}[step])
	}
	w := &When{}
	err := f.Fields(n, field+".", func(k, v *yaml.Node, name string) error {
		var err error
		switch k.Value {
		case "event":
			w.Event, err = stringList(f, v, name, func(s string) bool { return ci.ValidEvent(s) }, "push, pull_request, tag, manual or cron")
		case "branch":
			w.Branch, err = parseFilter(f, v, name)
		case "tag":
			w.Tag, err = parseFilter(f, v, name)
		case "path":
			w.Path, err = parseFilter(f, v, name)
		case "status":
			if !step {
				return f.At(k, name, "is for steps only (a pipeline has no outcome yet)")
			}
			w.Status, err = stringList(f, v, name, func(s string) bool { return s == "success" || s == "failure" }, "success or failure")
		default:
			allowed := "event, branch, tag, path"
			if step {
				allowed += ", status"
			}
			return f.At(k, name, "unknown field (allowed: %s)", allowed)
		}
		return err
	})
	return w, err
}

// stringList reads a string or a list of strings, each valid.
func stringList(f *yamlfile.File, n *yaml.Node, field string, valid func(string) bool, want string) ([]string, error) {
	items := []*yaml.Node{n}
	if n.Kind == yaml.SequenceNode {
		items = n.Content
	}
	var out []string
	for _, it := range items {
		s, ok := yamlfile.String(it)
		if !ok || !valid(s) {
			return nil, f.At(it, field, "%q is not %s", it.Value, want)
		}
		out = append(out, s)
	}
	return out, nil
}

// parseFilter reads globs: a string, a list, or {include: …, exclude: …}.
// A bad glob is an error naming it.
func parseFilter(f *yamlfile.File, n *yaml.Node, field string) (Filter, error) {
	globs := func(n *yaml.Node, field string) ([]string, error) {
		return stringList(f, n, field, func(s string) bool { return s != "" && doublestar.ValidatePattern(s) }, "a valid glob")
	}
	var out Filter
	var err error
	if n.Kind != yaml.MappingNode {
		out.Include, err = globs(n, field)
		return out, err
	}
	err = f.Fields(n, field+".", func(k, v *yaml.Node, name string) error {
		var err error
		switch k.Value {
		case "include":
			out.Include, err = globs(v, name)
		case "exclude":
			out.Exclude, err = globs(v, name)
		default:
			return f.At(k, name, "unknown field (allowed: include, exclude)")
		}
		return err
	})
	return out, err
}
