package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// keepAlive is how often an idle SSE stream sends a comment, so proxies and
// NATs do not drop a quiet connection.
const keepAlive = 15 * time.Second

// sseWriter writes Server-Sent Events and flushes each one.
type sseWriter struct {
	w http.ResponseWriter
	f http.Flusher
}

func startSSE(w http.ResponseWriter) (*sseWriter, bool) {
	f, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming unsupported")
		return nil, false
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	f.Flush()
	return &sseWriter{w: w, f: f}, true
}

// event writes one event; data is JSON-encoded unless it is a string.
func (s *sseWriter) event(id, name string, data any) error {
	var b strings.Builder
	if id != "" {
		fmt.Fprintf(&b, "id: %s\n", id)
	}
	if name != "" {
		fmt.Fprintf(&b, "event: %s\n", name)
	}
	var payload string
	switch d := data.(type) {
	case string:
		payload = d
	default:
		raw, err := json.Marshal(d)
		if err != nil {
			return err
		}
		payload = string(raw)
	}
	// SSE ends a line at CR, LF or CRLF: every one of them must start a new
	// data: line, or a CR inside the payload (a commit message, a log line)
	// could begin a field of its own, such as "event: end".
	payload = strings.ReplaceAll(strings.ReplaceAll(payload, "\r\n", "\n"), "\r", "\n")
	for _, line := range strings.Split(payload, "\n") {
		fmt.Fprintf(&b, "data: %s\n", line)
	}
	b.WriteString("\n")
	if _, err := s.w.Write([]byte(b.String())); err != nil {
		return err
	}
	s.f.Flush()
	return nil
}

func (s *sseWriter) ping() error {
	if _, err := s.w.Write([]byte(": ping\n\n")); err != nil {
		return err
	}
	s.f.Flush()
	return nil
}
