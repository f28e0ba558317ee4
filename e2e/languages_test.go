package e2e

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// Repositories without .raibid.yml in Go, Python and Node build and test
// through raibid up with their language's default pipeline, offline, in the
// sandbox. PATH holds the distribution's python3 (with python3-pytest) and
// node, and Go's toolchain.
func TestDefaultPipelinesForGoPythonNode(t *testing.T) {
	for _, tool := range []string{"go", "node", "npm", "/usr/bin/python3"} {
		testutil.RequireTool(t, tool)
	}
	if exec.Command("/usr/bin/python3", "-c", "import pytest, venv").Run() != nil {
		t.Fatal("the distribution's python3 lacks pytest or venv (scripts/deps installs python3-pytest python3-venv)")
	}
	goDir, _ := exec.LookPath("go")
	path := strings.TrimSuffix(goDir, "/go") + ":/usr/bin:/bin"
	up := startUpEnv(t, []string{"PATH=" + path}, "--agents", "3")
	repos := map[string]struct {
		files map[string]string
		steps map[string]ci.Status
		log   string
	}{
		"go": {map[string]string{
			"go.mod":        "module example.com/hello\n\ngo 1.22\n",
			"hello.go":      "package hello\n\nfunc Add(a, b int) int { return a + b }\n",
			"hello_test.go": "package hello\n\nimport \"testing\"\n\nfunc TestAdd(t *testing.T) {\n\tif Add(2, 3) != 5 {\n\t\tt.Fatal(\"maths\")\n\t}\n\tt.Log(\"go-test-ran\")\n}\n",
		}, map[string]ci.Status{"vet": "success", "build": "success", "test": "success"}, "ok  \texample.com/hello"},
		"python": {map[string]string{
			"pyproject.toml":      "[build-system]\nrequires = [\"setuptools\"]\nbuild-backend = \"setuptools.build_meta\"\n\n[project]\nname = \"hello\"\nversion = \"0.1.0\"\n\n[project.optional-dependencies]\ntest = []\n\n[tool.setuptools]\npackages = [\"hello\"]\n",
			"hello/__init__.py":   "def add(a, b):\n    return a + b\n",
			"tests/test_hello.py": "from hello import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
		}, map[string]ci.Status{"venv": "success", "install": "success", "test": "success"}, "1 passed"},
		"node": {map[string]string{
			"package.json": "{\n  \"name\": \"hello\",\n  \"version\": \"1.0.0\",\n  \"scripts\": {\n    \"test\": \"node test.js\"\n  }\n}\n",
			"index.js":     "exports.add = (a, b) => a + b;\n",
			"test.js":      "const assert = require('node:assert');\nassert.strictEqual(require('./index').add(2, 3), 5);\nconsole.log('node-test-ran');\n",
		}, map[string]ci.Status{"install": "success", "test": "success", "build": "skipped"}, "node-test-ran"},
	}
	ids := map[string]string{}
	for lang, r := range repos {
		dir, sha := testutil.GitRepo(t, r.files)
		ids[lang] = push(t, up.url, up.secret, pushPayload("acme/"+lang, dir, "main", sha))
	}
	for lang, r := range repos {
		j := waitJob(t, up.url, up.token, ids[lang], 5*time.Minute, nil)
		logs := apiGet(t, up.url, up.token, "/jobs/"+ids[lang]+"/logs", nil)
		if j.Status != ci.StatusSuccess {
			t.Errorf("%s: %s %q\n%s", lang, j.Status, j.Error, logs)
			continue
		}
		for _, s := range j.Steps {
			if r.steps[s.Name] != s.Status {
				t.Errorf("%s: step %s = %s, want %s", lang, s.Name, s.Status, r.steps[s.Name])
			}
		}
		if len(j.Steps) != len(r.steps) || !strings.Contains(logs, "default "+strings.ToUpper(lang[:1])+lang[1:]+" pipeline") || !strings.Contains(logs, r.log) {
			t.Errorf("%s: steps %+v; log:\n%s", lang, j.Steps, logs)
		}
	}
}

// A service in the sandbox: up before the step that reads from it, and
// gone (its port closed) once the job has ended.
func TestServiceInTheSandbox(t *testing.T) {
	up := startUp(t, "--agents", "1")
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	yml := fmt.Sprintf("services:\n  - name: cache\n    run: redis-server --port %d --save '' --appendonly no\n    port: %d\nsteps:\n  - name: ping\n    run: exec 3<>/dev/tcp/127.0.0.1/%d; printf 'PING\\r\\n' >&3; read -r reply <&3; echo \"cache says $reply\"\n", port, port, port)
	dir, sha := testutil.GitRepo(t, map[string]string{".raibid.yml": yml})
	id := push(t, up.url, up.secret, pushPayload("acme/svc", dir, "main", sha))
	j := waitJob(t, up.url, up.token, id, 2*time.Minute, nil)
	logs := apiGet(t, up.url, up.token, "/jobs/"+id+"/logs", nil)
	if j.Status != ci.StatusSuccess || !strings.Contains(logs, "cache says +PONG") {
		t.Fatalf("%s %q\n%s", j.Status, j.Error, logs)
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		c.Close()
		t.Fatal("the service outlived its job")
	}
}
