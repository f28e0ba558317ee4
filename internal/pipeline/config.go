// Package pipeline decides what a job runs: the .raibid.yml file (parsed
// strictly, errors naming file, line and field; when:, matrix:, services:,
// artifacts:, resources:, depends_on graphs) and the default pipelines for a
// repository without one (Rust, Go, Python, Node). It is the spec only and
// starts nothing: internal/runner runs what it describes.
package pipeline

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/raibid-labs/raibid-ci/internal/yamlfile"
)

// FileName is the pipeline file in a repository's root.
const FileName = ".raibid.yml"

// DefaultTimeout bounds a whole job when the file sets none.
const DefaultTimeout = 30 * time.Minute

// ErrNoPipeline means the repository has neither .raibid.yml nor Cargo.toml.
var ErrNoPipeline = errors.New("no " + FileName + " and no Cargo.toml, go.mod, pyproject.toml, setup.py or package.json in the repository root; " +
	"add a " + FileName + " such as:\n  steps:\n    - name: test\n      run: make test")

// Step is one command of a pipeline.
type Step struct {
	Name         string
	Run          string
	Timeout      time.Duration // 0: only the pipeline's timeout applies
	Env          map[string]string
	AllowFailure bool
	// Secrets are the pipeline secrets the step gets as environment
	// variables: only these, never the others of its repository.
	Secrets []SecretRef
	// CargoJSON: the command runs cargo with --message-format=json-render-
	// diagnostics; its artifact messages are counted (cache hit rate) and
	// kept out of the log.
	CargoJSON bool
	// SkipReason, when set, means the step does not apply here (a tool is
	// missing): it is reported as skipped and not run.
	SkipReason string
	// When says when the step applies (nil: always, after success).
	When *When
	// Artifacts are files the step leaves for download, uploaded after it
	// ran (also when it failed: test reports).
	Artifacts []ArtifactSpec
	// Publish names where artifacts go besides the server: "gitea" (its
	// generic package registry).
	Publish string
	// Resources this step needs; a job needs the most any part asks for.
	Resources Resources
	// DependsOn names the steps this one waits for. Once any step of a
	// pipeline has it, the steps form a graph: those without it start at
	// once, up to the agent's step concurrency.
	DependsOn []string
}

// SecretRef names a pipeline secret and the variable a step sees it as.
type SecretRef struct {
	Name string // the secret (raibid secret set OWNER/REPO NAME)
	Env  string // the variable; default Name
}

// SecretNames lists the distinct secrets the pipeline's steps ask for.
func (p *Pipeline) SecretNames() []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range p.Steps {
		for _, r := range s.Secrets {
			if !seen[r.Name] {
				seen[r.Name] = true
				out = append(out, r.Name)
			}
		}
	}
	sort.Strings(out)
	return out
}

// Pipeline is what a job runs.
type Pipeline struct {
	Steps   []Step
	Timeout time.Duration
	Env     map[string]string
	Image   string
	// Origin says where it came from: ".raibid.yml" or "default Rust pipeline".
	Origin string
	// When says when the pipeline applies at all (nil: always).
	When *When
	// Matrix, when set, runs the pipeline once per combination of its axes.
	Matrix *Matrix
	// Services run beside the steps for the whole job.
	Services []Service
	// Resources the job needs (GPUs, and CPU/memory on Kubernetes).
	Resources Resources
}

// ParseError is a problem in .raibid.yml: file, line and field.
type ParseError = yamlfile.Error

// Load returns the pipeline of the checked-out repository in dir: its
// .raibid.yml, else the default for its language (see Default), else
// ErrNoPipeline.
func Load(dir string, tools func() Tools) (*Pipeline, error) {
	b, err := readRegular(filepath.Join(dir, FileName))
	switch {
	case err == nil:
		return Parse(FileName, b)
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("read %s: %w", FileName, err)
	}
	if p := Default(dir, tools); p != nil {
		return p, nil
	}
	return nil, ErrNoPipeline
}

// maxPipelineFile bounds what is read of .raibid.yml.
const maxPipelineFile = 1 << 20

// readRegular reads a file of the repository only when it is a regular file:
// a committed symlink (.raibid.yml -> /etc/shadow, or the agent's token)
// would otherwise make the agent read a file of its own and echo it in a
// parse error.
func readRegular(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("%s is a symbolic link; it must be a regular file", filepath.Base(path))
		}
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", filepath.Base(path))
	}
	if st.Size() > maxPipelineFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", filepath.Base(path), maxPipelineFile)
	}
	return io.ReadAll(io.LimitReader(f, maxPipelineFile))
}

var stepNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 _.:/-]{0,62}$`)

// Parse reads a pipeline file strictly: unknown fields, wrong types, missing
// names or commands and duplicate step names are errors naming the line.
func Parse(file string, data []byte) (*Pipeline, error) {
	f, err := yamlfile.Parse(file, data, "it needs a steps list")
	if err != nil {
		return nil, err
	}
	root := f.Root
	p := &Pipeline{Timeout: DefaultTimeout, Origin: file}
	var stepsNode *yaml.Node
	err = f.Fields(root, "", func(key, val *yaml.Node, field string) error {
		switch key.Value {
		case "steps":
			stepsNode = val
		case "timeout":
			d, err := yamlfile.Duration(val)
			if err != nil {
				return f.At(val, "timeout", "%v", err)
			}
			p.Timeout = d
		case "env":
			env, err := envMap(f, val, "env")
			if err != nil {
				return err
			}
			p.Env = env
		case "image":
			img, ok := yamlfile.String(val)
			if !ok {
				return f.At(val, "image", "must be a string")
			}
			p.Image = img
		case "when":
			w, err := parseWhen(f, val, "when", false)
			if err != nil {
				return err
			}
			p.When = w
		case "matrix":
			m, err := parseMatrix(f, val)
			if err != nil {
				return err
			}
			p.Matrix = m
		case "services":
			svcs, err := parseServices(f, val)
			if err != nil {
				return err
			}
			p.Services = svcs
		case "resources":
			r, err := parseResources(f, val, "resources")
			if err != nil {
				return err
			}
			p.Resources = r
		default:
			return f.At(key, key.Value, "unknown field (allowed: steps, timeout, env, image, when, matrix, services, resources)")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if stepsNode == nil {
		return nil, f.At(root, "steps", "is missing")
	}
	if stepsNode.Kind != yaml.SequenceNode || len(stepsNode.Content) == 0 {
		return nil, f.At(stepsNode, "steps", "must be a non-empty list")
	}
	seen := map[string]int{}
	dependsAt := map[int]*yaml.Node{}
	for i, sn := range stepsNode.Content {
		prefix := fmt.Sprintf("steps[%d]", i)
		if sn.Kind != yaml.MappingNode {
			return nil, f.At(sn, prefix, "must be a mapping with name and run")
		}
		var s Step
		var hasName, hasRun bool
		err := f.Fields(sn, prefix+".", func(key, val *yaml.Node, field string) error {
			switch key.Value {
			case "name":
				name, ok := yamlfile.String(val)
				if !ok || !stepNamePattern.MatchString(name) {
					return f.At(val, field, "must be a short name (letters, digits, space, _.:/-)")
				}
				s.Name, hasName = name, true
			case "run":
				run, ok := yamlfile.String(val)
				if !ok || strings.TrimSpace(run) == "" {
					return f.At(val, field, "must be a non-empty command string")
				}
				s.Run, hasRun = run, true
			case "timeout":
				d, err := yamlfile.Duration(val)
				if err != nil {
					return f.At(val, field, "%v", err)
				}
				s.Timeout = d
			case "env":
				env, err := envMap(f, val, field)
				if err != nil {
					return err
				}
				s.Env = env
			case "allow_failure":
				b, ok := yamlfile.Bool(val)
				if !ok {
					return f.At(val, field, "must be true or false")
				}
				s.AllowFailure = b
			case "secrets":
				refs, err := secretRefs(f, val, field)
				if err != nil {
					return err
				}
				s.Secrets = refs
			case "when":
				w, err := parseWhen(f, val, field, true)
				if err != nil {
					return err
				}
				s.When = w
			case "artifacts":
				specs, err := parseArtifacts(f, val, field)
				if err != nil {
					return err
				}
				s.Artifacts = specs
			case "resources":
				r, err := parseResources(f, val, field)
				if err != nil {
					return err
				}
				s.Resources = r
			case "publish":
				v, ok := yamlfile.String(val)
				if !ok || v != "gitea" {
					return f.At(val, field, "the one place to publish to is gitea")
				}
				s.Publish = v
			case "depends_on":
				names, err := stringList(f, val, field, func(s string) bool { return s != "" }, "a step name")
				if err != nil {
					return err
				}
				s.DependsOn = names
				dependsAt[len(p.Steps)] = val
			default:
				return f.At(key, field, "unknown field (allowed: name, run, timeout, env, allow_failure, secrets, when, depends_on, artifacts, publish, resources)")
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if !hasName {
			return nil, f.At(sn, prefix+".name", "is missing")
		}
		if !hasRun {
			return nil, f.At(sn, prefix+".run", "is missing")
		}
		if first, dup := seen[s.Name]; dup {
			return nil, f.At(sn, prefix+".name", "%q is already the name of steps[%d]", s.Name, first)
		}
		seen[s.Name] = i
		p.Steps = append(p.Steps, s)
	}
	if err := checkGraph(f, p, dependsAt); err != nil {
		return nil, err
	}
	return p, nil
}

var envNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func envMap(f *yamlfile.File, n *yaml.Node, field string) (map[string]string, error) {
	if n.Kind != yaml.MappingNode {
		return nil, f.At(n, field, "must be a mapping of NAME: value")
	}
	env := map[string]string{}
	err := f.Fields(n, field+".", func(k, v *yaml.Node, name string) error {
		if !envNamePattern.MatchString(k.Value) {
			return f.At(k, name, "is not a valid variable name")
		}
		if v.Kind != yaml.ScalarNode {
			return f.At(v, name, "must be a string, number or boolean")
		}
		env[k.Value] = v.Value
		return nil
	})
	return env, err
}

// secretRefs reads `secrets: [NAME, {name: NAME, env: VAR}]`.
func secretRefs(f *yamlfile.File, n *yaml.Node, field string) ([]SecretRef, error) {
	var refs []SecretRef
	err := shortOrFull(f, n, field, "secret", []string{"name", "env"}, func(item *yaml.Node, at string, v map[string]string) error {
		r := SecretRef{Name: v["name"], Env: v["env"]}
		if r.Env == "" {
			r.Env = r.Name
		}
		if !envNamePattern.MatchString(r.Name) || !envNamePattern.MatchString(r.Env) {
			return f.At(item, at, "secret and variable names are letters, digits and _")
		}
		refs = append(refs, r)
		return nil
	})
	return refs, err
}

// shortOrFull walks a list whose entries are either a string (the value of
// keys[0]) or a mapping of string fields among keys, handing each entry's
// values to fn. what names an entry in errors.
func shortOrFull(f *yamlfile.File, n *yaml.Node, field, what string, keys []string,
	fn func(item *yaml.Node, at string, vals map[string]string) error) error {
	full := "{" + strings.Join(keys, ", ") + "}"
	if n.Kind != yaml.SequenceNode {
		return f.At(n, field, "must be a list of a %s or %s", what, full)
	}
	for i, item := range n.Content {
		at := fmt.Sprintf("%s[%d]", field, i)
		vals := map[string]string{}
		switch item.Kind {
		case yaml.ScalarNode:
			vals[keys[0]] = item.Value
		case yaml.MappingNode:
			err := f.Fields(item, at+".", func(k, v *yaml.Node, name string) error {
				s, ok := yamlfile.String(v)
				if !ok {
					return f.At(v, name, "must be a string")
				}
				if !slices.Contains(keys, k.Value) {
					return f.At(k, name, "unknown field (allowed: %s)", strings.Join(keys, ", "))
				}
				vals[k.Value] = s
				return nil
			})
			if err != nil {
				return err
			}
		default:
			return f.At(item, at, "must be a %s or %s", what, full)
		}
		if err := fn(item, at, vals); err != nil {
			return err
		}
	}
	return nil
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
