package server

import (
	"bytes"
	"errors"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
//
// Bodies are read into pooled buffers: a flood of large bodies that fail
// their signature reuses the same memory instead of leaving a body's worth
// of garbage per request, and once the last large body of a burst is done
// the memory goes back to the operating system (the heap would otherwise
// keep the burst's high-water mark for minutes).
type bodyBudget struct {
	mu    sync.Mutex
	left  int64
	total int64
	// large is set when a body of at least largeBody bytes was read since
	// the memory was last returned; returning is scheduled when the budget
	// is whole again.
	large    bool
	freeing  *time.Timer
	freeWait time.Duration
}

// largeBody is the size from which a body's memory is worth returning to
// the operating system after a burst.
const largeBody = 1 << 20

// bodyBuffers are reused between webhook bodies.
var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// inFlight is the bytes reserved by the bodies being read now.
func (b *bodyBudget) inFlight() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.total - b.left
}

// collector reports inFlight as raibid_webhook_body_bytes_in_flight: how
// close webhooks are to the cap (503 past it).
func (b *bodyBudget) collector() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "raibid_webhook_body_bytes_in_flight",
		Help: "Bytes of webhook bodies being read now (reserved by their Content-Length); past --body-bytes-in-flight webhooks get 503.",
	}, func() float64 { return float64(b.inFlight()) })
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
	defer b.mu.Unlock()
	b.left += n
	if n >= largeBody {
		b.large = true
	}
	if b.large && b.left == b.total && b.freeing == nil {
		// Debounced: a burst that goes on pushes it back.
		b.freeing = time.AfterFunc(b.freeWait, b.free)
	}
}

// free returns the heap's unused memory to the operating system once no
// body is being read.
func (b *bodyBudget) free() {
	b.mu.Lock()
	b.freeing = nil
	idle := b.left == b.total
	if idle {
		b.large = false
	}
	b.mu.Unlock()
	if idle {
		// Pooled buffers live through one collection (sync.Pool's victim
		// cache): the first drops them to the victim, FreeOSMemory's own
		// frees them and hands the pages back.
		runtime.GC()
		debug.FreeOSMemory()
	}
}

// readWebhookBody reads a webhook body up to MaxBody, within the body budget
// and the body timeout. A request without the signature header is 401 before
// anything is read; an oversized body is 413, no room in the budget 503, an
// unreadable or too slow one 400 — each counted by result. release gives the
// body's reservation and buffer back; call it when done with the body, and
// keep nothing that points into it.
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
	buf := bodyBuffers.Get().(*bytes.Buffer)
	buf.Reset()
	release = func() {
		if buf.Cap() <= int(s.opts.MaxBody)+bytes.MinRead {
			bodyBuffers.Put(buf)
		}
		s.bodies.give(n)
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.opts.BodyTimeout))
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
