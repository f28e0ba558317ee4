package server

import (
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// An SSE line ends at CR, LF or CRLF. A payload carrying any of them (a
// commit message, a log line) must not start a field of its own.
func TestSSEDataCannotInjectFields(t *testing.T) {
	for _, payload := range []string{
		"fix\r\revent: end\rdata: {}",
		"fix\nevent: end\n\ndata: x",
		"fix\r\nid: 999\r\n\r\nevent: end",
	} {
		rec := httptest.NewRecorder()
		sse, _ := startSSE(rec)
		if err := sse.event("7", "job", payload); err != nil {
			t.Fatal(err)
		}
		lines := regexp.MustCompile(`\r\n|\r|\n`).Split(rec.Body.String(), -1)
		fields := map[string]int{}
		for _, l := range lines {
			if l == "" {
				continue
			}
			name, _, _ := strings.Cut(l, ":")
			fields[name]++
		}
		if fields["event"] != 1 || fields["id"] != 1 || len(fields) != 3 {
			t.Errorf("payload %q framed as %q: fields %v", payload, rec.Body.String(), fields)
		}
		if strings.Count(rec.Body.String(), "\n\n") != 1 {
			t.Errorf("payload %q ends the event early: %q", payload, rec.Body.String())
		}
	}
}
