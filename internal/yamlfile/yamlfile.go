// Package yamlfile is what raibid's strict YAML files (.raibid.yml,
// mirrors.yaml) share: errors that name the file, line and field, syntax
// errors folded into one line, duplicate keys caught (YAML parsers silently
// keep one) and durations checked. Each file's schema stays with its owner.
package yamlfile

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Error is a problem in a YAML file: file, line and field.
type Error struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Field, e.Msg)
}

// File is one parsed document; At builds its errors.
type File struct {
	Name string
	Root *yaml.Node
}

// Parse reads data as one YAML document whose root is a mapping; what the
// mapping must hold is described by emptyHint in the error for an empty file.
func Parse(name string, data []byte, emptyHint string) (*File, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, syntaxError(name, err, data)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, &Error{File: name, Line: 1, Msg: "file is empty; " + emptyHint}
	}
	f := &File{Name: name, Root: doc.Content[0]}
	if f.Root.Kind != yaml.MappingNode {
		return nil, f.At(f.Root, "", "the file must be a mapping; %s", emptyHint)
	}
	return f, nil
}

// At is an error at node n about field.
func (f *File) At(n *yaml.Node, field, format string, args ...any) error {
	return &Error{File: f.Name, Line: n.Line, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Fields calls fn for each key of mapping m in order, after rejecting a key
// given twice. prefix ("steps[0].") is put before key names in errors.
func (f *File) Fields(m *yaml.Node, prefix string, fn func(key, val *yaml.Node, field string) error) error {
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if seen[k.Value] {
			return f.At(k, prefix+k.Value, "appears twice")
		}
		seen[k.Value] = true
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if err := fn(m.Content[i], m.Content[i+1], prefix+m.Content[i].Value); err != nil {
			return err
		}
	}
	return nil
}

// String is n's value when n is a string scalar.
func String(n *yaml.Node) (string, bool) {
	return n.Value, n.Kind == yaml.ScalarNode && n.Tag == "!!str"
}

// Bool is n's value when n is true or false.
func Bool(n *yaml.Node) (value, ok bool) {
	return n.Value == "true", n.Kind == yaml.ScalarNode && n.Tag == "!!bool"
}

// Duration reads a positive Go duration string such as "10m".
func Duration(n *yaml.Node) (time.Duration, error) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		return 0, errors.New(`must be a duration such as "10m" or "90s"`)
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf(`%q is not a positive duration such as "10m" or "90s"`, n.Value)
	}
	return d, nil
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// syntaxError turns a yaml.v3 error into one line with the file and line.
// yaml.v3 names the line where the enclosing block began (line 1 for a
// mis-indented key on line 4), so the line is the first at which the file,
// read up to it, no longer parses: where an editor should put the cursor.
func syntaxError(file string, err error, data []byte) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		fmt.Sscan(m[1], &line)
		msg = strings.TrimSpace(yamlLine.ReplaceAllString(msg, ""))
		msg = strings.TrimPrefix(msg, ": ")
	}
	if l := firstBadLine(data); l > line {
		line = l
	}
	return &Error{File: file, Line: line, Msg: "invalid YAML: " + strings.ReplaceAll(msg, "\n", " ")}
}

// firstBadLine is the smallest n such that data's first n lines do not
// parse (0 when they all do, or data is too long to look).
func firstBadLine(data []byte) int {
	lines := strings.SplitAfter(string(data), "\n")
	if len(lines) > 5000 {
		return 0
	}
	bad := func(n int) bool {
		var doc yaml.Node
		return yaml.Unmarshal([]byte(strings.Join(lines[:n], "")), &doc) != nil
	}
	lo, hi := 1, len(lines) // bad(hi) holds: the whole file fails
	if !bad(hi) {
		return 0
	}
	for lo < hi {
		mid := (lo + hi) / 2
		if bad(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}
