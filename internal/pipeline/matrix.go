package pipeline

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/yamlfile"
)

// MaxMatrixJobs bounds the jobs one event's matrix makes.
const MaxMatrixJobs = 64

// Matrix is named axes whose combinations each run the pipeline as a job
// of their own, plus combinations to add (include) and to leave out
// (exclude: every combination matching all the given axes).
type Matrix struct {
	Axes    []Axis
	Include []map[string]string
	Exclude []map[string]string
}

// Axis is one named list of values.
type Axis struct {
	Name   string
	Values []string
}

// Combinations is every job of the matrix, in order: the axes' product
// (first axis slowest), minus the excluded, plus the included.
func (m *Matrix) Combinations() []map[string]string {
	if m == nil {
		return nil
	}
	out := []map[string]string{{}}
	for _, a := range m.Axes {
		var next []map[string]string
		for _, c := range out {
			for _, v := range a.Values {
				n := make(map[string]string, len(c)+1)
				for k, x := range c {
					n[k] = x
				}
				n[a.Name] = v
				next = append(next, n)
			}
		}
		out = next
	}
	if len(m.Axes) == 0 {
		out = nil
	}
	kept := out[:0]
	for _, c := range out {
		if !m.excluded(c) {
			kept = append(kept, c)
		}
	}
	return append(kept, m.Include...)
}

func (m *Matrix) excluded(c map[string]string) bool {
	for _, ex := range m.Exclude {
		all := true
		for k, v := range ex {
			if c[k] != v {
				all = false
			}
		}
		if all {
			return true
		}
	}
	return false
}

// parseMatrix reads `matrix: {axis: [values], include: [...], exclude: [...]}`.
func parseMatrix(f *yamlfile.File, n *yaml.Node) (*Matrix, error) {
	if n.Kind != yaml.MappingNode {
		return nil, f.At(n, "matrix", "must be a mapping of axis: [values] (and include, exclude)")
	}
	m := &Matrix{}
	axes := map[string]bool{}
	var lists []struct {
		name string
		node *yaml.Node
	}
	err := f.Fields(n, "matrix.", func(k, v *yaml.Node, field string) error {
		switch k.Value {
		case "include", "exclude":
			lists = append(lists, struct {
				name string
				node *yaml.Node
			}{k.Value, v})
			return nil
		}
		if !ci.ValidAxis(k.Value) {
			return f.At(k, field, "axis names are a letter, then letters, digits or _")
		}
		if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
			return f.At(v, field, "must be a non-empty list of values")
		}
		a := Axis{Name: k.Value}
		for _, item := range v.Content {
			if item.Kind != yaml.ScalarNode || item.Value == "" || len(item.Value) > 128 {
				return f.At(item, field, "values are short strings or numbers")
			}
			a.Values = append(a.Values, item.Value)
		}
		axes[a.Name] = true
		m.Axes = append(m.Axes, a)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, l := range lists {
		field := "matrix." + l.name
		if l.node.Kind != yaml.SequenceNode {
			return nil, f.At(l.node, field, "must be a list of {axis: value}")
		}
		for i, item := range l.node.Content {
			at := fmt.Sprintf("%s[%d]", field, i)
			if item.Kind != yaml.MappingNode || len(item.Content) == 0 {
				return nil, f.At(item, at, "must be a mapping of axis: value")
			}
			c := map[string]string{}
			err := f.Fields(item, at+".", func(k, v *yaml.Node, name string) error {
				if !axes[k.Value] {
					return f.At(k, name, "is not an axis of the matrix (%s)", strings.Join(axisNames(m), ", "))
				}
				if v.Kind != yaml.ScalarNode {
					return f.At(v, name, "must be a value")
				}
				c[k.Value] = v.Value
				return nil
			})
			if err != nil {
				return nil, err
			}
			if l.name == "include" {
				if len(c) != len(m.Axes) {
					return nil, f.At(item, at, "an included combination names every axis (%s)", strings.Join(axisNames(m), ", "))
				}
				m.Include = append(m.Include, c)
			} else {
				m.Exclude = append(m.Exclude, c)
			}
		}
	}
	if len(m.Axes) == 0 {
		return nil, f.At(n, "matrix", "has no axis")
	}
	combos := m.Combinations()
	if count := len(combos); count == 0 || count > MaxMatrixJobs {
		return nil, f.At(n, "matrix", "makes %d jobs; from 1 to %d", count, MaxMatrixJobs)
	}
	for _, c := range combos {
		// Each combination becomes a job's: refused here, with the line,
		// rather than when the agent queues it.
		if err := ci.CheckMatrix(c); err != nil {
			return nil, f.At(n, "matrix", "%s", strings.TrimSuffix(err.Error(), ": "+ci.ErrInvalid.Error()))
		}
	}
	return m, nil
}

func axisNames(m *Matrix) []string {
	out := make([]string, len(m.Axes))
	for i, a := range m.Axes {
		out[i] = a.Name
	}
	return out
}
