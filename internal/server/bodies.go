package server

import (
	"bytes"
	"errors"

	"net/http"

	"sync"
	"time"
)

// Defaults of the limits that keep an unauthenticated client from holding
// the server's memory or connections: webhook bodies must be read whole
// before their signature can be checked, so how many bytes are being read
// at once is capped, and each read has a deadline.
const (
	DefaultBodyBytesInFlight = 64 << 20
	DefaultBodyTimeout       = 30 * time.Second
	DefaultHeaderTimeout     = 5 * time.Second
)

// bodyBudget counts the bytes reserved by webhook bodies being read. A body
// reserves its Content-Length (MaxBody when the length is not declared)
// before the first byte is read; when the budget is spent the request is
// answered 503 with Retry-After at once, without reading.
type bodyBudget struct {
	mu   sync.Mutex
	left int64
}

func (b *bodyBudget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.left {
		return false
	}
	b.left -= n
	return true
}

func (b *bodyBudget) give(n int64) {
	b.mu.Lock()
	b.left += n
	b.mu.Unlock()
}

// readWebhookBody reads a webhook body up to MaxBody, within the body budget
// and the body timeout. A request without the signature header is 401 before
// anything is read; an oversized body is 413, no room in the budget 503, an
// unreadable or too slow one 400 — each counted by result. release gives the
// body's reservation back; call it when done with the body.
func (s *Server) readWebhookBody(w http.ResponseWriter, r *http.Request, sigHeader string, result func(string)) (body []byte, release func(), ok bool) {
	if r.Header.Get(sigHeader) == "" {
		result("unauthorized")
		writeError(w, http.StatusUnauthorized, "missing "+sigHeader)
		return nil, nil, false
	}
	n := r.ContentLength
	if n > s.opts.MaxBody {
		result("too_large")
		writeError(w, http.StatusRequestEntityTooLarge, "webhook body is larger than the limit")
		return nil, nil, false
	}
	if n < 0 {
		n = s.opts.MaxBody
	}
	if !s.bodies.take(n) {
		result("busy")
		w.Header().Set("Retry-After", "5")
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusServiceUnavailable, "too many webhook bodies being read; deliver again later")
		return nil, nil, false
	}
	release = func() { s.bodies.give(n) }
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.opts.BodyTimeout))
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength)) // one allocation, not ReadAll's doublings
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, s.opts.MaxBody))
	if err != nil {
		release()
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			result("too_large")
			writeError(w, http.StatusRequestEntityTooLarge, "webhook body is larger than the limit")
			return nil, nil, false
		}
		result("malformed")
		writeError(w, http.StatusBadRequest, "could not read webhook body within "+s.opts.BodyTimeout.String())
		return nil, nil, false
	}
	return buf.Bytes(), release, true
}
