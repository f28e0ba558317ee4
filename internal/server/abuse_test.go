package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/server"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// serveWith runs a real listening server (timeouts live in http.Server, not
// in the handler) and returns its address.
func serveWith(t *testing.T, mod func(*server.Options)) string {
	t.Helper()
	return strings.TrimPrefix(startWith(t, mod).url, "http://")
}

// rawRequest writes head (and nothing more) and returns the connection.
func rawRequest(t *testing.T, addr, head string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	return c
}

func statusOf(t *testing.T, c net.Conn, within time.Duration) (int, http.Header) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(within))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer within %s: %v", within, err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

func webhookHead(length int, sig string) string {
	h := fmt.Sprintf("POST /webhook/gitea HTTP/1.1\r\nHost: x\r\nX-Gitea-Event: push\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", length)
	if sig != "" {
		h += "X-Gitea-Signature: " + sig + "\r\n"
	}
	return h + "\r\n"
}

// An unsigned webhook is refused before a byte of its body is read.
func TestUnsignedWebhookRefusedBeforeItsBody(t *testing.T) {
	addr := serveWith(t, func(*server.Options) {})
	c := rawRequest(t, addr, webhookHead(24<<20, ""))
	if code, _ := statusOf(t, c, 5*time.Second); code != http.StatusUnauthorized {
		t.Fatalf("unsigned 24 MiB webhook: %d, want 401 without its body", code)
	}
}

// Bodies being read reserve their length from a shared budget; a webhook
// that does not fit is answered 503 with Retry-After at once, and the budget
// comes back when the first body is done.
func TestWebhookBodiesShareABudget(t *testing.T) {
	e := startWith(t, func(o *server.Options) { o.BodyBytesInFlight = 1 << 20; o.MaxBody = 1 << 20 })
	addr := strings.TrimPrefix(e.url, "http://")
	first := rawRequest(t, addr, webhookHead(900<<10, strings.Repeat("ab", 32)))
	inFlight := func(n int) func() bool {
		return func() bool {
			_, metrics := e.do("GET", "/metrics", "", token)
			return strings.Contains(string(metrics), fmt.Sprintf("\nraibid_webhook_body_bytes_in_flight %d\n", n))
		}
	}
	if !testutil.Eventually(t, 5*time.Second, inFlight(900<<10)) {
		t.Fatal("the first body's reservation is not in raibid_webhook_body_bytes_in_flight")
	}
	second := rawRequest(t, addr, webhookHead(900<<10, strings.Repeat("ab", 32)))
	code, h := statusOf(t, second, 5*time.Second)
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
		t.Fatalf("second body while the first is read: %d (Retry-After %q), want 503 with Retry-After", code, h.Get("Retry-After"))
	}
	io.WriteString(first, strings.Repeat(" ", 900<<10))
	if code, _ := statusOf(t, first, 5*time.Second); code != http.StatusUnauthorized {
		t.Fatalf("first body (bad signature): %d, want 401", code)
	}
	if !testutil.Eventually(t, 5*time.Second, inFlight(0)) {
		t.Fatal("the first body's reservation was not given back")
	}
	third := rawRequest(t, addr, webhookHead(10, strings.Repeat("ab", 32)))
	io.WriteString(third, strings.Repeat(" ", 10))
	if code, _ := statusOf(t, third, 5*time.Second); code != http.StatusUnauthorized {
		t.Fatalf("after the first body the budget is back: %d, want 401 (read, then refused)", code)
	}
}

// A client that trickles its headers or its body is cut off.
func TestSlowClientsAreCutOff(t *testing.T) {
	addr := serveWith(t, func(o *server.Options) {
		o.HeaderTimeout = 300 * time.Millisecond
		o.BodyTimeout = 300 * time.Millisecond
	})
	slowHead := rawRequest(t, addr, "POST /webhook/gitea HTTP/1.1\r\nHost: x\r\n")
	slowHead.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(slowHead); err != nil {
		t.Fatalf("slow headers: connection not closed by the server: %v", err)
	}
	slowBody := rawRequest(t, addr, webhookHead(1000, strings.Repeat("ab", 32))+"{")
	if code, _ := statusOf(t, slowBody, 5*time.Second); code != http.StatusBadRequest {
		t.Fatalf("slow body: %d, want 400", code)
	}
}

// A signed push whose clone URL or branch git could misread is 400 with one
// clear line — not 503, which would make Gitea deliver it again forever —
// and queues nothing.
func TestSignedWebhookWithHostileInputIs400(t *testing.T) {
	e := start(t)
	for _, body := range []string{
		`{"ref":"refs/heads/main","after":"0123456789abcdef0123456789abcdef01234567","repository":{"full_name":"evil/x","clone_url":"file://--upload-pack=touch /tmp/pwned;"}}`,
		`{"ref":"refs/heads/--upload-pack=x","after":"0123456789abcdef0123456789abcdef01234567","repository":{"full_name":"evil/x","clone_url":"http://gitea.local:3000/evil/x.git"}}`,
	} {
		code, out := e.webhook(hook{body: []byte(body)})
		msg, _ := out["error"].(string)
		if code != 400 || msg == "" || strings.Contains(msg, "ci:") {
			t.Errorf("hostile push: %d %v", code, out)
		}
	}
	if st, _ := e.queue.Stats(context.Background()); st.Lag != 0 {
		t.Fatalf("hostile pushes queued %d jobs", st.Lag)
	}
}
