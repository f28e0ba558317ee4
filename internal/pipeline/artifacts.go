package pipeline

import (
	"path"
	"regexp"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
	"gopkg.in/yaml.v3"

	"github.com/raibid-labs/raibid-ci/internal/yamlfile"
)

// ArtifactSpec is one entry of a step's artifacts: a path or glob in the
// workspace, and the name it is downloaded under. One matching file is
// uploaded as it is; several are packed into NAME.tar.gz.
type ArtifactSpec struct {
	Name string
	Path string
}

var artifactName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$`)

// parseArtifacts reads `artifacts: [PATH, {path: GLOB, name: NAME}]`.
func parseArtifacts(f *yamlfile.File, n *yaml.Node, field string) ([]ArtifactSpec, error) {
	if n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
		return nil, f.At(n, field, "must list at least one path")
	}
	var out []ArtifactSpec
	names := map[string]bool{}
	err := shortOrFull(f, n, field, "path", []string{"path", "name"}, func(item *yaml.Node, at string, v map[string]string) error {
		a := ArtifactSpec{Path: v["path"], Name: v["name"]}
		clean := path.Clean(a.Path)
		if a.Path == "" || path.IsAbs(a.Path) || clean == ".." || strings.HasPrefix(clean, "../") || !doublestar.ValidatePattern(a.Path) {
			return f.At(item, at, "path %q must be a valid glob inside the workspace", a.Path)
		}
		if a.Name == "" {
			a.Name = defaultArtifactName(a.Path)
		}
		if !artifactName.MatchString(a.Name) {
			return f.At(item, at, "name %q must be a file name (letters, digits, ._+-)", a.Name)
		}
		if names[a.Name] {
			return f.At(item, at, "name %q is already an artifact of this step", a.Name)
		}
		names[a.Name] = true
		out = append(out, a)
		return nil
	})
	return out, err
}

// defaultArtifactName is the last part of a path without glob characters.
func defaultArtifactName(p string) string {
	parts := strings.Split(path.Clean(p), "/")
	for i := len(parts) - 1; i >= 0; i-- {
		if !strings.ContainsAny(parts[i], "*?[{") && parts[i] != "." {
			return regexp.MustCompile(`[^A-Za-z0-9._+-]+`).ReplaceAllString(parts[i], "-")
		}
	}
	return "artifact"
}
