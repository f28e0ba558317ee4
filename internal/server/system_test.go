package server_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/raibid-labs/raibid-ci/internal/api"
	"github.com/raibid-labs/raibid-ci/internal/server"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

func TestScaleAndSystemEndpoints(t *testing.T) {
	r := testutil.StartRedis(t)
	rdb := r.Client()
	jb := testutil.NewJobs(rdb, 0)
	opts := server.Options{Store: jb.Store, Queue: jb.Queue, Jobs: jb.Lifecycle, ReaperInterval: -1, Version: "v9"}
	plain := httptest.NewServer(server.New(opts).Handler())
	defer plain.Close()
	req := func(base, method, path, body string) (int, string) {
		rq, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(rq)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
		return resp.StatusCode, b.String()
	}
	if code, _ := req(plain.URL, "GET", "/scale", ""); code != 501 {
		t.Fatalf("scale without scaler: %d", code)
	}
	sc := &testutil.Scaler{N: 2}
	opts.Scaler = sc
	srv := httptest.NewServer(server.New(opts).Handler())
	defer srv.Close()
	if code, body := req(srv.URL, "GET", "/scale", ""); code != 200 || !strings.Contains(body, `"max_agents":2`) {
		t.Fatalf("get scale %d %s", code, body)
	}
	if code, body := req(srv.URL, "PUT", "/scale", `{"max_agents":5}`); code != 200 || sc.N != 5 {
		t.Fatalf("put scale %d %s", code, body)
	}
	for _, bad := range []string{`{"max_agents":-1}`, `{"max_agents":100000}`, `{}`, `{"max":3}`, `x`} {
		if code, _ := req(srv.URL, "PUT", "/scale", bad); code != 400 {
			t.Errorf("PUT /scale %s: %d", bad, code)
		}
	}
	if sc.N != 5 {
		t.Fatalf("bad input changed the scale to %d", sc.N)
	}
	code, body := req(srv.URL, "GET", "/system", "")
	var sys api.System
	if code != 200 || json.Unmarshal([]byte(body), &sys) != nil || sys.Version != "v9" || sys.Host.CPUs < 1 || sys.Host.MemTotal == 0 || sys.Host.MemUsed == 0 {
		t.Fatalf("system %d %s", code, body)
	}
}
