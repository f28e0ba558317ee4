// Package mirror keeps GitHub repositories mirrored into Gitea: the
// mirrors.yaml file (parsed strictly), the planner that compares what the file
// asks for with what GitHub and Gitea hold, the sync that creates missing pull
// mirrors through Gitea's migrate API, and the server-side service (periodic
// rescan, webhook-triggered mirror-sync, status for the dashboard).
// It talks to the forges only through internal/forge's clients.
package mirror

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/raibid-labs/raibid-ci/internal/yamlfile"
)

// DefaultFile is where `raibid mirror` looks without -f.
const DefaultFile = "mirrors.yaml"

// MinInterval is the shortest mirror interval Gitea accepts.
const MinInterval = 10 * time.Minute

// DefaultInterval is Gitea's own default mirror interval.
const DefaultInterval = 8 * time.Hour

// Entry types.
const (
	TypeSingle = "single"
	TypeOrg    = "org"
)

// Config is a parsed mirrors.yaml.
type Config struct {
	File    string
	Entries []Entry
}

// Entry is one item of the mirrors list, with defaults applied.
type Entry struct {
	Index int    // position in the file, for messages
	Type  string // single or org
	// Source is owner/name (single) or the organisation or user (org) on GitHub.
	Source string
	// TargetOwner and TargetName say where the mirror lives in Gitea;
	// TargetName is empty for org entries (each repository keeps its name).
	TargetOwner, TargetName string
	Include, Exclude        []*regexp.Regexp
	Interval                time.Duration
	Private                 bool
}

// Name is how messages name the entry: mirrors[1] (org raibid-labs).
func (e *Entry) Name() string {
	return fmt.Sprintf("mirrors[%d] (%s %s)", e.Index, e.Type, e.Source)
}

// Selects reports whether an org entry mirrors the repository called name:
// it matches an include pattern (or there are none) and no exclude pattern.
// The second result says why not.
func (e *Entry) Selects(name string) (bool, string) {
	for _, re := range e.Exclude {
		if re.MatchString(name) {
			return false, "matches exclude " + re.String()
		}
	}
	if len(e.Include) == 0 {
		return true, ""
	}
	for _, re := range e.Include {
		if re.MatchString(name) {
			return true, ""
		}
	}
	return false, "matches no include pattern"
}

// Load reads and parses a mirrors file.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read mirrors file: %w", err)
	}
	return Parse(path, b)
}

var (
	namePattern  = `[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}`
	ownerOnly    = regexp.MustCompile(`^` + namePattern + `$`)
	ownerAndRepo = regexp.MustCompile(`^` + namePattern + `/` + namePattern + `$`)
)

type defaults struct {
	owner    string
	interval time.Duration
	private  bool
}

// Parse reads a mirrors file strictly: unknown fields, wrong types, bad
// names, bad regular expressions, intervals Gitea refuses and two entries
// with the same target are errors naming the line, entry and field.
func Parse(file string, data []byte) (*Config, error) {
	f, err := yamlfile.Parse(file, data, "it needs a mirrors list")
	if err != nil {
		return nil, err
	}
	d := defaults{interval: DefaultInterval}
	var list *yaml.Node
	err = f.Fields(f.Root, "", func(key, val *yaml.Node, field string) error {
		switch key.Value {
		case "defaults":
			return parseDefaults(f, val, &d)
		case "mirrors":
			list = val
			return nil
		default:
			return f.At(key, field, "unknown field (allowed: defaults, mirrors)")
		}
	})
	if err != nil {
		return nil, err
	}
	if list == nil {
		return nil, f.At(f.Root, "mirrors", "is missing")
	}
	if list.Kind != yaml.SequenceNode || len(list.Content) == 0 {
		return nil, f.At(list, "mirrors", "must be a non-empty list")
	}
	cfg := &Config{File: file}
	targets := map[string]int{} // single targets: owner/name → entry
	orgs := map[string]int{}    // org entries: source → entry
	for i, n := range list.Content {
		e, err := parseEntry(f, n, i, d)
		if err != nil {
			return nil, err
		}
		switch e.Type {
		case TypeSingle:
			key := strings.ToLower(e.TargetOwner + "/" + e.TargetName)
			if first, dup := targets[key]; dup {
				return nil, f.At(n, fmt.Sprintf("mirrors[%d].target", i), "%s is already the target of mirrors[%d]", e.TargetOwner+"/"+e.TargetName, first)
			}
			targets[key] = i
		case TypeOrg:
			key := strings.ToLower(e.Source)
			if first, dup := orgs[key]; dup {
				return nil, f.At(n, fmt.Sprintf("mirrors[%d].source", i), "organisation %s is already listed by mirrors[%d]", e.Source, first)
			}
			orgs[key] = i
		}
		cfg.Entries = append(cfg.Entries, e)
	}
	return cfg, nil
}

func parseDefaults(f *yamlfile.File, n *yaml.Node, d *defaults) error {
	if n.Kind != yaml.MappingNode {
		return f.At(n, "defaults", "must be a mapping (owner, interval, private)")
	}
	return f.Fields(n, "defaults.", func(key, val *yaml.Node, field string) error {
		switch key.Value {
		case "owner":
			s, ok := yamlfile.String(val)
			if !ok || !ownerOnly.MatchString(s) {
				return f.At(val, field, "must be a Gitea user or organisation name")
			}
			d.owner = s
		case "interval", "private":
			return intervalOrPrivate(f, key, val, field, &d.interval, &d.private)
		default:
			return f.At(key, field, "unknown field (allowed: owner, interval, private)")
		}
		return nil
	})
}

func parseEntry(f *yamlfile.File, n *yaml.Node, i int, d defaults) (Entry, error) {
	e := Entry{Index: i, Interval: d.interval, Private: d.private}
	prefix := fmt.Sprintf("mirrors[%d]", i)
	if n.Kind != yaml.MappingNode {
		return e, f.At(n, prefix, "must be a mapping with type and source")
	}
	var target string
	var targetNode, typeNode, includeNode, excludeNode *yaml.Node
	err := f.Fields(n, prefix+".", func(key, val *yaml.Node, field string) error {
		switch key.Value {
		case "type":
			s, ok := yamlfile.String(val)
			if !ok || (s != TypeSingle && s != TypeOrg) {
				return f.At(val, field, "must be single or org")
			}
			e.Type, typeNode = s, val
		case "source":
			s, ok := yamlfile.String(val)
			if !ok || s == "" {
				return f.At(val, field, "must be a string")
			}
			e.Source = stripHost(s, "github.com")
		case "target":
			s, ok := yamlfile.String(val)
			if !ok || s == "" {
				return f.At(val, field, "must be a string")
			}
			target, targetNode = stripHost(s, ""), val
		case "include":
			includeNode = val
		case "exclude":
			excludeNode = val
		case "interval", "private":
			return intervalOrPrivate(f, key, val, field, &e.Interval, &e.Private)
		default:
			return f.At(key, field, "unknown field (allowed: type, source, target, include, exclude, interval, private)")
		}
		return nil
	})
	if err != nil {
		return e, err
	}
	if e.Source == "" {
		return e, f.At(n, prefix+".source", "is missing")
	}
	if typeNode == nil {
		// Without a type, the source says which: owner/repository is a
		// single mirror, an owner alone an org (the seed's mirrors.yaml).
		switch {
		case ownerAndRepo.MatchString(e.Source):
			e.Type = TypeSingle
		case ownerOnly.MatchString(e.Source):
			e.Type = TypeOrg
		default:
			return e, f.At(n, prefix+".source", "%q is neither owner/repository nor an owner on GitHub", e.Source)
		}
	}
	switch e.Type {
	case TypeSingle:
		if !ownerAndRepo.MatchString(e.Source) {
			return e, f.At(n, prefix+".source", "%q must be owner/repository on GitHub", e.Source)
		}
		if includeNode != nil || excludeNode != nil {
			return e, f.At(n, prefix, "include and exclude apply to org entries only")
		}
		owner, name, _ := strings.Cut(e.Source, "/")
		e.TargetOwner, e.TargetName = owner, name
		if d.owner != "" {
			e.TargetOwner = d.owner
		}
		if targetNode != nil {
			switch {
			case ownerAndRepo.MatchString(target):
				e.TargetOwner, e.TargetName, _ = strings.Cut(target, "/")
			case ownerOnly.MatchString(target):
				e.TargetOwner = target
			default:
				return e, f.At(targetNode, prefix+".target", "%q must be a Gitea owner or owner/repository", target)
			}
		}
	case TypeOrg:
		if !ownerOnly.MatchString(e.Source) {
			return e, f.At(n, prefix+".source", "%q must be a GitHub organisation or user name", e.Source)
		}
		// An org mirrors into the Gitea owner of the same name unless target
		// names another (the contract); defaults.owner is for single entries.
		e.TargetOwner = e.Source
		if targetNode != nil {
			if !ownerOnly.MatchString(target) {
				return e, f.At(targetNode, prefix+".target", "%q must be a Gitea owner (repositories keep their names)", target)
			}
			e.TargetOwner = target
		}
		if e.Include, err = patterns(f, includeNode, prefix+".include"); err != nil {
			return e, err
		}
		if e.Exclude, err = patterns(f, excludeNode, prefix+".exclude"); err != nil {
			return e, err
		}
	}
	return e, nil
}

// stripHost turns the URL forms of a repository or owner into owner[/name]:
// https://github.com/user/repo(.git), github.com/user/repo, and for targets
// gitea.dgx.local/user/repo. With host set, only that host is removed when
// written without a scheme (a bare "user/repo" stays as it is).
func stripHost(s, host string) string {
	s = strings.TrimSpace(s)
	schemed := false
	for _, scheme := range []string{"https://", "http://"} {
		if rest, ok := strings.CutPrefix(s, scheme); ok {
			s, schemed = rest, true
		}
	}
	parts := strings.Split(strings.Trim(s, "/"), "/")
	drop := schemed && len(parts) > 1
	if !schemed {
		if host != "" {
			drop = strings.EqualFold(parts[0], host) && len(parts) > 1
		} else {
			drop = len(parts) == 3 || (len(parts) == 2 && strings.Contains(parts[0], "."))
		}
	}
	if drop {
		parts = parts[1:]
	}
	out := strings.Join(parts, "/")
	return strings.TrimSuffix(out, ".git")
}

// patterns reads include or exclude: a list of regular expressions, or one
// as a plain string (the seed's form).
func patterns(f *yamlfile.File, n *yaml.Node, field string) ([]*regexp.Regexp, error) {
	if n == nil {
		return nil, nil
	}
	if n.Kind == yaml.ScalarNode {
		n = &yaml.Node{Kind: yaml.SequenceNode, Line: n.Line, Column: n.Column, Content: []*yaml.Node{n}}
	}
	if n.Kind != yaml.SequenceNode {
		return nil, f.At(n, field, "must be a list of regular expressions")
	}
	var out []*regexp.Regexp
	for i, p := range n.Content {
		s, ok := yamlfile.String(p)
		if !ok || s == "" {
			return nil, f.At(p, fmt.Sprintf("%s[%d]", field, i), "must be a regular expression string")
		}
		// GitHub's names are case-insensitive; so is the match.
		re, err := regexp.Compile("(?i)" + s)
		if err != nil {
			return nil, f.At(p, fmt.Sprintf("%s[%d]", field, i), "bad regular expression: %v", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		}
		out = append(out, re)
	}
	return out, nil
}

// intervalOrPrivate reads the two settings defaults and entries share.
func intervalOrPrivate(f *yamlfile.File, key, val *yaml.Node, field string, iv *time.Duration, private *bool) error {
	if key.Value == "private" {
		b, ok := yamlfile.Bool(val)
		if !ok {
			return f.At(val, field, "must be true or false")
		}
		*private = b
		return nil
	}
	d, err := interval(val)
	if err != nil {
		return f.At(val, field, "%v", err)
	}
	*iv = d
	return nil
}

func interval(n *yaml.Node) (time.Duration, error) {
	d, err := yamlfile.Duration(n)
	if err != nil {
		return 0, err
	}
	if d < MinInterval {
		return 0, fmt.Errorf("%s is shorter than Gitea's minimum mirror interval of %s", d, MinInterval)
	}
	return d, nil
}
