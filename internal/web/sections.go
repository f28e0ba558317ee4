package web

import (
	"github.com/raibid-labs/raibid-ci/internal/ci"
)

// Section is a run of consecutive log lines of one step (or of the agent's
// own clone and pipeline notes), shown as one collapsible part of the log
// with the step's state.
type Section struct {
	Step  string
	State *ci.Step // nil for the agent's notes (clone, pipeline, log)
	Open  bool
	// Failed marks the section the page scrolls to: the failed step's.
	Failed bool
	Lines  []ci.LogLine
}

// Sections groups lines by step, in the order steps first wrote: every
// line of a step in its one section, even when steps of a graph ran at
// once and their lines arrived mixed. The failed (or errored) step is open
// and marked; a running step is open; when neither, the last section is
// open.
func Sections(j *ci.Job, lines []ci.LogLine) []Section {
	steps := map[string]*ci.Step{}
	for i := range j.Steps {
		steps[j.Steps[i].Name] = &j.Steps[i]
	}
	var out []Section
	at := map[string]int{}
	for _, l := range lines {
		if i, ok := at[l.Step]; ok {
			out[i].Lines = append(out[i].Lines, l)
			continue
		}
		at[l.Step] = len(out)
		out = append(out, Section{Step: l.Step, State: steps[l.Step], Lines: []ci.LogLine{l}})
	}
	open := false
	for i := range out {
		if st := out[i].State; st != nil {
			switch st.Status {
			case ci.StatusFailed, ci.StatusError:
				out[i].Open, out[i].Failed, open = true, true, true
			case ci.StatusRunning:
				out[i].Open, open = true, true
			}
		}
	}
	if !open && len(out) > 0 {
		out[len(out)-1].Open = true
	}
	// A step that failed more than once in the page (its lines interleaved
	// with notes) is scrolled to at its last section only.
	seen := false
	for i := len(out) - 1; i >= 0; i-- {
		if out[i].Failed {
			if seen {
				out[i].Failed = false
			}
			seen = true
		}
	}
	return out
}
