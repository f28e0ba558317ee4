package server

import (
	"crypto/subtle"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// requireToken checks the bearer token when one is configured.
func (s *Server) requireToken(next http.Handler) http.Handler {
	if s.opts.APIToken == "" {
		return next
	}
	want := []byte(s.opts.APIToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="raibid"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// statusRecorder remembers the status code and passes Flush through for SSE.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// instrument records the latency of a route, labelled by its pattern (never
// the raw path, which would give one series per job id).
func (s *Server) instrument(pattern string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.code == 0 {
			rec.code = http.StatusOK
		}
		s.metrics.httpDuration.WithLabelValues(r.Method, pattern, strconv.Itoa(rec.code)).
			Observe(time.Since(start).Seconds())
	})
}

// slowRequest is how long a request (other than a stream) may take before
// its log line is raised to INFO.
const slowRequest = time.Second

// logRequests logs method, path, status and duration: at DEBUG as a rule
// (the dashboard's polling would flood a terminal), at INFO when something
// changed (not a GET), failed (4xx other than 404, 5xx) or was slow, and at
// WARN for 5xx. Headers and query strings are left out: they are where
// tokens and signatures travel.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			// Every request body has a deadline, so a client that sends one
			// byte every few seconds cannot hold a connection for long.
			_ = http.NewResponseController(w).SetReadDeadline(start.Add(s.opts.BodyTimeout))
		}
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		took := time.Since(start)
		level := slog.LevelDebug
		stream := strings.HasSuffix(r.URL.Path, "/stream") || r.URL.Path == "/events" || r.URL.Path == "/ui/events"
		switch {
		case rec.code >= 500:
			level = slog.LevelWarn
		case r.Method != http.MethodGet && r.Method != http.MethodHead,
			rec.code >= 400 && rec.code != http.StatusNotFound,
			took > slowRequest && !stream:
			level = slog.LevelInfo
		}
		s.log.LogAttrs(r.Context(), level, "request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", rec.code), slog.Duration("duration", took))
	})
}
