// Package pipeline decides what a job runs and runs it: the .raibid.yml file
// (parsed strictly, errors naming file, line and field), the default Rust
// pipeline for a bare Cargo.toml, and the step runner (one process group per
// step, timeouts, cancellation, line-by-line output with secrets masked).
// It knows nothing of Redis or queues: output goes to a Sink.
package pipeline

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// FileName is the pipeline file in a repository's root.
const FileName = ".raibid.yml"

// DefaultTimeout bounds a whole job when the file sets none.
const DefaultTimeout = 30 * time.Minute

// ErrNoPipeline means the repository has neither .raibid.yml nor Cargo.toml.
var ErrNoPipeline = errors.New("no " + FileName + " and no Cargo.toml in the repository root; " +
	"add a " + FileName + " such as:\n  steps:\n    - name: test\n      run: make test")

// Step is one command of a pipeline.
type Step struct {
	Name         string
	Run          string
	Timeout      time.Duration // 0: only the pipeline's timeout applies
	Env          map[string]string
	AllowFailure bool
	// CargoJSON: the command runs cargo with --message-format=json-render-
	// diagnostics; its artifact messages are counted (cache hit rate) and
	// kept out of the log.
	CargoJSON bool
	// SkipReason, when set, means the step does not apply here (a tool is
	// missing): it is reported as skipped and not run.
	SkipReason string
}

// Pipeline is what a job runs.
type Pipeline struct {
	Steps   []Step
	Timeout time.Duration
	Env     map[string]string
	Image   string
	// Source says where it came from: ".raibid.yml" or "default Rust pipeline".
	Source string
}

// ParseError is a problem in .raibid.yml: file, line and field.
type ParseError struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *ParseError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Field, e.Msg)
}

// Load returns the pipeline of the checked-out repository in dir: its
// .raibid.yml, else the default Rust pipeline when Cargo.toml exists (tools is
// asked only then), else ErrNoPipeline.
func Load(dir string, tools func() Tools) (*Pipeline, error) {
	b, err := os.ReadFile(filepath.Join(dir, FileName))
	switch {
	case err == nil:
		return Parse(FileName, b)
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("read %s: %w", FileName, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "Cargo.toml")); err == nil {
		return RustPipeline(dir, tools()), nil
	}
	return nil, ErrNoPipeline
}

var stepNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 _.:/-]{0,62}$`)

// Parse reads a pipeline file strictly: unknown fields, wrong types, missing
// names or commands and duplicate step names are errors naming the line.
func Parse(file string, data []byte) (*Pipeline, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlSyntaxError(file, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, &ParseError{File: file, Line: 1, Msg: "file is empty; it needs a steps list"}
	}
	root := doc.Content[0]
	p := &Pipeline{Timeout: DefaultTimeout, Source: file}
	perr := func(n *yaml.Node, field, format string, args ...any) error {
		return &ParseError{File: file, Line: n.Line, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	if root.Kind != yaml.MappingNode {
		return nil, perr(root, "", "the file must be a mapping with a steps list")
	}
	if err := noDuplicateKeys(root, "", perr); err != nil {
		return nil, err
	}
	var stepsNode *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		key, val := root.Content[i], root.Content[i+1]
		switch key.Value {
		case "steps":
			stepsNode = val
		case "timeout":
			d, err := duration(val)
			if err != nil {
				return nil, perr(val, "timeout", "%v", err)
			}
			p.Timeout = d
		case "env":
			env, err := envMap(val, "env", perr)
			if err != nil {
				return nil, err
			}
			p.Env = env
		case "image":
			if val.Kind != yaml.ScalarNode || val.Tag != "!!str" {
				return nil, perr(val, "image", "must be a string")
			}
			p.Image = val.Value
		default:
			return nil, perr(key, key.Value, "unknown field (allowed: steps, timeout, env, image)")
		}
	}
	if stepsNode == nil {
		return nil, perr(root, "steps", "is missing")
	}
	if stepsNode.Kind != yaml.SequenceNode || len(stepsNode.Content) == 0 {
		return nil, perr(stepsNode, "steps", "must be a non-empty list")
	}
	seen := map[string]int{}
	for i, sn := range stepsNode.Content {
		prefix := fmt.Sprintf("steps[%d]", i)
		if sn.Kind != yaml.MappingNode {
			return nil, perr(sn, prefix, "must be a mapping with name and run")
		}
		if err := noDuplicateKeys(sn, prefix+".", perr); err != nil {
			return nil, err
		}
		var s Step
		var hasName, hasRun bool
		for j := 0; j+1 < len(sn.Content); j += 2 {
			key, val := sn.Content[j], sn.Content[j+1]
			field := prefix + "." + key.Value
			switch key.Value {
			case "name":
				if val.Kind != yaml.ScalarNode || val.Tag != "!!str" || !stepNamePattern.MatchString(val.Value) {
					return nil, perr(val, field, "must be a short name (letters, digits, space, _.:/-)")
				}
				s.Name, hasName = val.Value, true
			case "run":
				if val.Kind != yaml.ScalarNode || val.Tag != "!!str" || strings.TrimSpace(val.Value) == "" {
					return nil, perr(val, field, "must be a non-empty command string")
				}
				s.Run, hasRun = val.Value, true
			case "timeout":
				d, err := duration(val)
				if err != nil {
					return nil, perr(val, field, "%v", err)
				}
				s.Timeout = d
			case "env":
				env, err := envMap(val, field, perr)
				if err != nil {
					return nil, err
				}
				s.Env = env
			case "allow_failure":
				if val.Kind != yaml.ScalarNode || val.Tag != "!!bool" {
					return nil, perr(val, field, "must be true or false")
				}
				s.AllowFailure = val.Value == "true"
			default:
				return nil, perr(key, field, "unknown field (allowed: name, run, timeout, env, allow_failure)")
			}
		}
		if !hasName {
			return nil, perr(sn, prefix+".name", "is missing")
		}
		if !hasRun {
			return nil, perr(sn, prefix+".run", "is missing")
		}
		if first, dup := seen[s.Name]; dup {
			return nil, perr(sn, prefix+".name", "%q is already the name of steps[%d]", s.Name, first)
		}
		seen[s.Name] = i
		p.Steps = append(p.Steps, s)
	}
	return p, nil
}

// noDuplicateKeys rejects a key given twice: YAML parsers silently keep one.
func noDuplicateKeys(m *yaml.Node, prefix string, perr func(*yaml.Node, string, string, ...any) error) error {
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if seen[k.Value] {
			return perr(k, prefix+k.Value, "appears twice")
		}
		seen[k.Value] = true
	}
	return nil
}

func duration(n *yaml.Node) (time.Duration, error) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		return 0, errors.New(`must be a duration such as "10m" or "90s"`)
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf(`%q is not a positive duration such as "10m" or "90s"`, n.Value)
	}
	return d, nil
}

var envNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func envMap(n *yaml.Node, field string, perr func(*yaml.Node, string, string, ...any) error) (map[string]string, error) {
	if n.Kind != yaml.MappingNode {
		return nil, perr(n, field, "must be a mapping of NAME: value")
	}
	env := map[string]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !envNamePattern.MatchString(k.Value) {
			return nil, perr(k, field+"."+k.Value, "is not a valid variable name")
		}
		if v.Kind != yaml.ScalarNode {
			return nil, perr(v, field+"."+k.Value, "must be a string, number or boolean")
		}
		env[k.Value] = v.Value
	}
	return env, nil
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// yamlSyntaxError turns a yaml.v3 error into one line with the file and line.
func yamlSyntaxError(file string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		fmt.Sscan(m[1], &line)
		msg = strings.TrimSpace(yamlLine.ReplaceAllString(msg, ""))
		msg = strings.TrimPrefix(msg, ": ")
	}
	return &ParseError{File: file, Line: line, Msg: "invalid YAML: " + strings.ReplaceAll(msg, "\n", " ")}
}

// EnvList renders env as sorted NAME=value pairs.
func EnvList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}
