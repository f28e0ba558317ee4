package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raibid-labs/raibid-ci/internal/secrets"
	"github.com/raibid-labs/raibid-ci/internal/server"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

func startSecrets(t *testing.T, apiToken string) (base string, st *secrets.Store, logs *testutil.SyncBuffer) {
	t.Helper()
	r := testutil.StartRedis(t)
	keyFile := filepath.Join(t.TempDir(), "secrets-key")
	if _, err := secrets.LoadOrCreateKeyring(keyFile); err != nil {
		t.Fatal(err)
	}
	st = secrets.NewStore(r.Client(), "", secrets.FileKeys(keyFile))
	logs = &testutil.SyncBuffer{}
	e := startOn(t, r, func(o *server.Options) {
		o.APIToken = apiToken
		o.Features = append(o.Features, server.Secrets(st, keyFile))
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	return e.url, st, logs
}

func call(t *testing.T, method, url, tok, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestSecretsAPINeverReturnsValues(t *testing.T) {
	base, st, logs := startSecrets(t, token)
	const value = "very-secret-deploy-value-91"
	var seen []string
	do := func(method, path, body string, want int) string {
		code, out := call(t, method, base+path, token, body)
		if code != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, code, out, want)
		}
		seen = append(seen, out)
		return out
	}
	do("PUT", "/repos/acme/widget/secrets/DEPLOY_TOKEN", `{"value":"`+value+`"}`, 200)
	do("PUT", "/orgs/acme/secrets/SHARED", `{"value":"`+value+`-org"}`, 200)
	list := do("GET", "/repos/acme/widget/secrets", "", 200)
	var metas []secrets.Meta
	if err := json.Unmarshal([]byte(list), &metas); err != nil || len(metas) != 1 || metas[0].Name != "DEPLOY_TOKEN" || metas[0].Scope != "repo:acme/widget" {
		t.Fatalf("list %s %v", list, err)
	}
	do("GET", "/orgs/acme/secrets", "", 200)
	do("PUT", "/repos/acme/widget/secrets/BAD-NAME", `{"value":"x1234"}`, 400)
	do("PUT", "/repos/acme/widget/secrets/X", `{"value":"`+value+`", "extra": 1}`, 400)
	do("PUT", "/repos/acme/widget/secrets/X", `{"value": `+value+`}`, 400)
	do("POST", "/secrets/rotate-key", "", 200)
	got, err := st.ForRepo(context.Background(), "acme/widget", []string{"DEPLOY_TOKEN", "SHARED"})
	if err != nil || got["DEPLOY_TOKEN"] != value || got["SHARED"] != value+"-org" {
		t.Fatalf("after the API and a rotation: %v %v", got, err)
	}
	do("DELETE", "/repos/acme/widget/secrets/DEPLOY_TOKEN", "", 204)
	do("DELETE", "/repos/acme/widget/secrets/DEPLOY_TOKEN", "", 404)
	for _, out := range append(seen, logs.String()) {
		if strings.Contains(out, value) {
			t.Fatalf("a secret value came back: %s", out)
		}
	}
	if code, _ := call(t, "GET", base+"/repos/acme/widget/secrets", "", ""); code != 401 {
		t.Fatalf("without the token: %d", code)
	}
}

// With no API token the API is open; secrets are then refused entirely.
func TestSecretsAPIRefusedWithoutAnAPIToken(t *testing.T) {
	base, _, _ := startSecrets(t, "")
	if code, _ := call(t, "PUT", base+"/repos/acme/widget/secrets/A", "", `{"value":"abcdef"}`); code != 403 {
		t.Fatalf("open server set a secret: %d", code)
	}
}
