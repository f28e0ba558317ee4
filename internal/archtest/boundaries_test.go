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
	"internal/queue": 0, "internal/localredis": 0, "internal/ticker": 0, "internal/sandbox/launcher": 0,
	// 1: one concern over the leaves.
	"internal/store": 1, "internal/forge/gitea": 1, "internal/forge/github": 1,
	"internal/pipeline": 1, "internal/sandbox": 1, "internal/kube": 1, "internal/web": 1,
	"internal/api": 1, "internal/artifacts": 1, "internal/cache": 1, "internal/termtext": 1, "internal/secrets": 1,
	// 2: what joins two concerns: the job lifecycle (hash + queue entry),
	// mirroring (GitHub + Gitea), the HTTP client (transport + API types),
	// schedules (cron + API types + Redis), the commit status outbox
	// (Gitea's statuses + jobs + Redis), the step runner (a pipeline's
	// steps and services as processes).
	"internal/runner": 2, "internal/jobs": 2, "internal/mirror": 2, "internal/client": 2, "internal/schedule": 2, "internal/statuses": 2,
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

// thirdParty are the modules one concern owns: only its packages import
// them (tests and test-only packages aside), the depguard rules of a
// golangci config, kept here beside the floors they complement.
var thirdParty = []struct {
	prefix string
	owners []string
	why    string
}{
	{"github.com/redis/go-redis/", []string{"internal/store", "internal/queue", "internal/jobs", "internal/secrets", "internal/schedule",
		"internal/statuses", "internal/localredis", "internal/cli"}, "Redis belongs to the packages that own its keys (and cli's wiring)"},
	{"github.com/alicebob/miniredis", []string{"internal/localredis"}, "the in-process Redis is raibid up's fallback only"},
	{"k8s.io/", []string{"internal/kube"}, "Kubernetes is internal/kube's"},
	{"sigs.k8s.io/", []string{"internal/kube"}, "Kubernetes is internal/kube's"},
	{"charm.land/", []string{"internal/tui"}, "the terminal UI is internal/tui's"},
	{"github.com/charmbracelet/", []string{"internal/tui"}, "the terminal UI is internal/tui's"},
	{"github.com/spf13/", []string{"internal/cli"}, "flags are internal/cli's"},
	{"github.com/prometheus/", []string{"internal/server"}, "metrics are the server's"},
}

// testOnly packages exist for tests; no product package imports them.
var testOnly = []string{"internal/testutil", "internal/testutil/fakeforge", "internal/archtest", "e2e", "deploy", "test/cluster", "test/cluster/pause", "test/forge"}

// graph maps each package of the module to the packages it imports (test
// files not included): the module's own by their path in it, others by
// their full import path.
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
			g[from] = append(g[from], strings.TrimPrefix(imp, module))
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
			if owned := thirdPartyRule(from, to); owned != "" {
				out = append(out, owned)
				continue
			}
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

// thirdPartyRule is the broken rule of from importing to, a module one
// concern owns, or "".
func thirdPartyRule(from, to string) string {
	for _, r := range thirdParty {
		if strings.HasPrefix(to, r.prefix) && !slices.Contains(r.owners, from) {
			return fmt.Sprintf("%s imports %s: %s", from, to, r.why)
		}
	}
	return ""
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
		"internal/pipeline": {"k8s.io/apimachinery/pkg/api/resource"},
		"internal/web":      {"github.com/redis/go-redis/v9"},
	}
	got := strings.Join(violations(g), "\n")
	for _, want := range []string{
		"internal/agent imports internal/server: agents talk to Redis",
		"internal/agent (floor 3) imports internal/server (floor 3)",
		"internal/tui imports internal/store: the dashboard reads the HTTP API",
		"internal/ci (floor 0) imports internal/store (floor 1)",
		"internal/new has no floor",
		"internal/server imports internal/testutil, which is for tests only",
		"internal/pipeline imports k8s.io/apimachinery/pkg/api/resource: Kubernetes is internal/kube's",
		"internal/web imports github.com/redis/go-redis/v9: Redis belongs to",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("violations miss %q; got:\n%s", want, got)
		}
	}
	if strings.Contains(got, "internal/agent (floor 3) imports internal/jobs") || strings.Contains(got, "internal/testutil imports") {
		t.Errorf("a lawful import reported:\n%s", got)
	}
}
