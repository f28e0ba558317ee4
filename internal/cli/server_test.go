package cli

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// The server raibid wires answers every route its OpenAPI document names,
// with each optional feature off (no mirrors file, no secrets key, no
// artifacts): a feature that is off says how to turn it on, it does not
// vanish into "no such route". This is what keeps newServer passing every
// feature (internal/server/feature.go).
func TestServerAnswersEveryDocumentedRouteWithFeaturesOff(t *testing.T) {
	cfg, err := serverConfigFromFlags(command(t, "server", "--artifacts-dir", "off"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := newServer(cfg, testutil.StartRedis(t).Client(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { ts.CloseClientConnections(); ts.Close() })

	resp, err := http.Get(ts.URL + "/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	param := regexp.MustCompile(`\{[a-z_]+\}`)
	tried := 0
	for path, ops := range doc.Paths {
		for method := range ops {
			if method == "parameters" {
				continue
			}
			tried++
			code, body := call(t, strings.ToUpper(method), ts.URL+param.ReplaceAllString(path, "x"))
			if code == http.StatusNotFound && strings.Contains(body, "no such route") {
				t.Errorf("%s %s: %s", strings.ToUpper(method), path, body)
			}
		}
	}
	if tried < 30 {
		t.Fatalf("openapi.yaml names %d operations; expected the whole API", tried)
	}
}

// call makes one request with an empty body and returns its status and the
// start of its body; a stream (events, logs) is cut off after a moment.
func call(t *testing.T, method, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return resp.StatusCode, string(body)
}
