package server

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/store"
)

// logPage is how many lines one read of a plain log takes from Redis: with
// lines of at most 64 KiB, a page is at most 8 MiB whatever the log's size.
const logPage = 128

// handleLogs streams a job's log as plain text, page by page in constant
// memory. Pieces of a line longer than the agent's buffer are joined again.
// ?from=N starts at line N; ?step=NAME keeps only that step's lines.
func (s *Server) handleLogs(w http.ResponseWriter, r *http.Request) {
	j, ok := s.pathJob(w, r)
	if !ok {
		return
	}
	id := j.ID
	after := ""
	if from := r.URL.Query().Get("from"); from != "" {
		n, err := strconv.ParseInt(from, 10, 64)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "from must be a line number (1 is the first line)")
			return
		}
		after = store.LogLineID(n - 1)
	}
	step := r.URL.Query().Get("step")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	bw := bufio.NewWriterSize(w, 64<<10)
	defer bw.Flush()
	first := true
	for {
		lines, err := s.opts.Store.ReadLogs(r.Context(), id, after, logPage, 0)
		if err != nil {
			if first {
				s.storeError(w, err)
			}
			return
		}
		if len(lines) == 0 {
			if !first {
				bw.WriteByte('\n')
			}
			return
		}
		for _, l := range lines {
			if step != "" && l.Step != step {
				continue
			}
			if !first && !l.Cont {
				bw.WriteByte('\n')
			}
			first = false
			if _, err := bw.WriteString(l.Text); err != nil {
				return
			}
		}
		after = lines[len(lines)-1].ID
	}
}

// handleLogStream follows a job's log as SSE. Each line's id is its log stream
// id, so a client that reconnects with Last-Event-ID gets exactly the lines it
// missed. When the job has finished and every line is sent, an "end" event
// carries the final status and the stream closes.
func (s *Server) handleLogStream(w http.ResponseWriter, r *http.Request) {
	s.streamLog(w, r, logPresenter{
		line: func(sse *sseWriter, l ci.LogLine) error { return sse.event(l.ID, "log", l) },
	})
}

// logPresenter says how a log stream presents lines and job changes.
type logPresenter struct {
	line func(*sseWriter, ci.LogLine) error
	// job, when set, is called with the job at the start and whenever its
	// status or steps changed, and once more at the end.
	job func(*sseWriter, *ci.Job) error
}

// streamLog is the log-following loop behind the API's and the pages' streams.
func (s *Server) streamLog(w http.ResponseWriter, r *http.Request, sink logPresenter) {
	j, ok := s.pathJob(w, r)
	if !ok {
		return
	}
	id := j.ID
	after := r.Header.Get("Last-Event-ID")
	if after == "" {
		after = r.URL.Query().Get("after")
	}
	if after != "" && !store.ValidLogID(after) {
		writeError(w, http.StatusBadRequest, "Last-Event-ID is not a log line id")
		return
	}
	sse, ok := startSSE(w)
	if !ok {
		return
	}
	ctx, cancel := mergeDone(r.Context(), s.streams)
	defer cancel()
	lastPing := time.Now()
	lastJob, lastJobCheck := "", time.Time{}
	jobChanged := func(j *ci.Job) error {
		if sink.job == nil || j == nil {
			return nil
		}
		key := fmt.Sprintf("%s%v", j.Status, j.Steps)
		if key == lastJob {
			return nil
		}
		lastJob = key
		return sink.job(sse, j)
	}
	for ctx.Err() == nil {
		lines, err := s.opts.Store.ReadLogs(ctx, id, after, 500, time.Second)
		if err != nil {
			if ctx.Err() == nil {
				_ = sse.event("", "error", map[string]string{"error": "log store unavailable"})
			}
			return
		}
		for _, l := range lines {
			if err := sink.line(sse, l); err != nil {
				return
			}
			after = l.ID
		}
		if len(lines) > 0 {
			// A busy log must not hide status changes for long.
			if sink.job != nil && time.Since(lastJobCheck) >= time.Second {
				j, _ := s.opts.Store.Get(ctx, id)
				if jobChanged(j) != nil {
					return
				}
				lastJobCheck = time.Now()
			}
			continue
		}
		j, err := s.opts.Store.Get(ctx, id)
		lastJobCheck = time.Now()
		if jobChanged(j) != nil {
			return
		}
		if errors.Is(err, ci.ErrNotFound) || (err == nil && j.Status.Final()) {
			// One more read: a line written just before the final status.
			if more, _ := s.opts.Store.ReadLogs(ctx, id, after, 500, 0); len(more) > 0 {
				continue
			}
			status := ci.StatusError
			if j != nil {
				status = j.Status
			}
			_ = sse.event("", "end", map[string]string{"status": string(status)})
			return
		}
		if time.Since(lastPing) >= keepAlive {
			if sse.ping() != nil {
				return
			}
			lastPing = time.Now()
		}
	}
}
