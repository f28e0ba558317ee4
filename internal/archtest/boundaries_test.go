package archtest

import (
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/raibid-labs/raibid-ci/"

// floors places every package: an import must point to a lower floor, so
// no import points back up and no cycle can form between floors.
var floors = map[string]int{
	// 0: leaves — nothing of ours below them.
	"internal/ci": 0, "internal/yamlfile": 0, "internal/forge": 0, "internal/safefs": 0,
	"internal/queue": 0, "internal/localredis": 0, "internal/ticker": 0,
	// 1: one concern over the leaves.
	"internal/store": 1, "internal/forge/gitea": 1, "internal/forge/github": 1,
	"internal/pipeline": 1, "internal/sandbox": 1, "internal/kube": 1, "internal/web": 1,
	"internal/api": 1, "internal/artifacts": 1, "internal/cache": 1, "internal/termtext": 1, "internal/secrets": 1,
	// 2: what joins two concerns: the job lifecycle (hash + queue entry),
	// mirroring (GitHub + Gitea), the HTTP client (transport + API types),
	// schedules (cron + API types + Redis), the commit status outbox
	// (Gitea's statuses + jobs + Redis).
	"internal/jobs": 2, "internal/mirror": 2, "internal/client": 2, "internal/schedule": 2, "internal/statuses": 2,
	// 3: the three runtimes.
	"internal/agent": 3, "internal/server": 3, "internal/tui": 3,
	// 4: flags → config → run; 5: main.
	"internal/cli": 4, "cmd/raibid": 5,
}

// forbidden are seams named on their own, so their failure says why.
var forbidden = []struct{ from, to, why string }{
	{"internal/agent", "internal/server", "agents talk to Redis, never to the server's code"},
	{"internal/tui", "internal/store", "the dashboard reads the HTTP API (internal/client), never Redis"},
	{"internal/tui", "internal/queue", "the dashboard reads the HTTP API (internal/client), never Redis"},
	{"internal/tui", "internal/jobs", "the dashboard reads the HTTP API (internal/client), never Redis"},
	{"internal/api", "internal/store", "API types are the wire format, built from the domain by the server"},
	{"internal/api", "internal/queue", "API types are the wire format, built from the domain by the server"},
	{"internal/store", "internal/queue", "a job's hash and its entry change together only in internal/jobs"},
	{"internal/queue", "internal/store", "a job's hash and its entry change together only in internal/jobs"},
}

// testOnly packages exist for tests; no product package imports them.
var testOnly = []string{"internal/testutil", "internal/testutil/fakeforge", "internal/archtest", "e2e", "deploy", "test/cluster", "test/cluster/pause", "test/forge"}

// graph maps each package of the module to the packages of the module it
// imports (test files not included).
func graph(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "./...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	g := map[string][]string{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		from := strings.TrimPrefix(p.ImportPath, module)
		g[from] = []string{}
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, module) {
				g[from] = append(g[from], strings.TrimPrefix(imp, module))
			}
		}
	}
	return g
}

// violations lists every broken rule of g, one line each.
func violations(g map[string][]string) []string {
	var out []string
	for from, imports := range g {
		if slices.Contains(testOnly, from) {
			continue
		}
		ff, placed := floors[from]
		if !placed {
			out = append(out, fmt.Sprintf("%s has no floor: place it in archtest's floors", from))
			continue
		}
		for _, to := range imports {
			if slices.Contains(testOnly, to) {
				out = append(out, fmt.Sprintf("%s imports %s, which is for tests only", from, to))
				continue
			}
			for _, f := range forbidden {
				if f.from == from && f.to == to {
					out = append(out, fmt.Sprintf("%s imports %s: %s", from, to, f.why))
				}
			}
			if ft, ok := floors[to]; ok && ft >= ff {
				out = append(out, fmt.Sprintf("%s (floor %d) imports %s (floor %d): imports point down", from, ff, to, ft))
			}
		}
	}
	slices.Sort(out)
	return out
}

func TestBoundaries(t *testing.T) {
	for _, v := range violations(graph(t)) {
		t.Error(v)
	}
}

// The checker itself fails on each kind of violation.
func TestBoundariesCatchViolations(t *testing.T) {
	g := map[string][]string{
		"internal/agent":    {"internal/server", "internal/jobs"},
		"internal/tui":      {"internal/store"},
		"internal/ci":       {"internal/store"},
		"internal/new":      {},
		"internal/server":   {"internal/testutil"},
		"internal/testutil": {"internal/cli"},
	}
	got := strings.Join(violations(g), "\n")
	for _, want := range []string{
		"internal/agent imports internal/server: agents talk to Redis",
		"internal/agent (floor 3) imports internal/server (floor 3)",
		"internal/tui imports internal/store: the dashboard reads the HTTP API",
		"internal/ci (floor 0) imports internal/store (floor 1)",
		"internal/new has no floor",
		"internal/server imports internal/testutil, which is for tests only",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("violations miss %q; got:\n%s", want, got)
		}
	}
	if strings.Contains(got, "internal/agent (floor 3) imports internal/jobs") || strings.Contains(got, "internal/testutil imports") {
		t.Errorf("a lawful import reported:\n%s", got)
	}
}
