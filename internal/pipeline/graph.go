package pipeline

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/raibid-labs/raibid-ci/internal/yamlfile"
)

// Graph reports whether the steps form a graph (any step has depends_on)
// rather than a sequence.
func (p *Pipeline) Graph() bool {
	for _, s := range p.Steps {
		if len(s.DependsOn) > 0 {
			return true
		}
	}
	return false
}

// checkGraph refuses a depends_on naming a step that does not exist, the
// step itself, or closing a cycle; each error names the field's line.
func checkGraph(f *yamlfile.File, p *Pipeline, at map[int]*yaml.Node) error {
	index := map[string]int{}
	for i, s := range p.Steps {
		index[s.Name] = i
	}
	for i, s := range p.Steps {
		field := fmt.Sprintf("steps[%d].depends_on", i)
		for _, d := range s.DependsOn {
			j, ok := index[d]
			switch {
			case !ok:
				return f.At(at[i], field, "no step is called %q", d)
			case j == i:
				return f.At(at[i], field, "a step cannot depend on itself")
			}
		}
	}
	// Depth-first search for a cycle, reporting the step that closes it.
	const (
		unseen = iota
		open
		done
	)
	state := make([]int, len(p.Steps))
	var path []string
	var visit func(i int) error
	visit = func(i int) error {
		state[i] = open
		path = append(path, p.Steps[i].Name)
		for _, d := range p.Steps[i].DependsOn {
			j := index[d]
			switch state[j] {
			case open:
				cycle := append(path[indexOf(path, d):], d)
				return f.At(at[i], fmt.Sprintf("steps[%d].depends_on", i), "makes a cycle: %s", strings.Join(cycle, " → "))
			case unseen:
				if err := visit(j); err != nil {
					return err
				}
			}
		}
		path = path[:len(path)-1]
		state[i] = done
		return nil
	}
	for i := range p.Steps {
		if state[i] == unseen {
			if err := visit(i); err != nil {
				return err
			}
		}
	}
	return nil
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return 0
}
