package server

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// Every route the server answers is in openapi.yaml with its method, and the
// document names no route the server lacks.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(openAPI, &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	s := New(Options{Features: []Feature{Mirrors(nil, ""), Secrets(nil, ""), Schedules(nil), Artifacts(nil)}})
	served := map[string]bool{}
	for _, r := range s.routeTable() {
		key := strings.ToLower(r.method) + " " + r.pattern
		served[key] = true
		if _, ok := doc.Paths[r.pattern][strings.ToLower(r.method)]; !ok {
			t.Errorf("openapi.yaml lacks %s %s", r.method, r.pattern)
		}
	}
	for path, ops := range doc.Paths {
		for method := range ops {
			if method == "parameters" {
				continue
			}
			if !served[method+" "+path] {
				t.Errorf("openapi.yaml documents %s %s, which the server does not serve", method, path)
			}
		}
	}
}
