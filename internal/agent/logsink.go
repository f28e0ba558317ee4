package agent

import (
	"context"
	"sync"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
)

// logSink sends output lines to the job's log stream in small batches: one
// round trip per 50 ms or 200 lines instead of one per line, which keeps a
// chatty build from flooding Redis while a follower still sees lines live.
type logSink struct {
	store Store
	jobID string
	mu    sync.Mutex
	buf   []ci.LogLine
	// flushMu keeps batches in order when Flush runs from two goroutines.
	flushMu sync.Mutex
	kick    chan struct{}
	done    chan struct{}
	stop    chan struct{}
	once    sync.Once
}

const (
	sinkFlushEvery = 50 * time.Millisecond
	sinkBatch      = 200
)

func newLogSink(st Store, jobID string) *logSink {
	s := &logSink{store: st, jobID: jobID, kick: make(chan struct{}, 1), done: make(chan struct{}), stop: make(chan struct{})}
	go s.loop()
	return s
}

// Line implements pipeline.Sink.
func (s *logSink) Line(step, stream, text string) {
	s.mu.Lock()
	s.buf = append(s.buf, ci.LogLine{Step: step, Stream: stream, Text: text, Time: time.Now()})
	full := len(s.buf) >= sinkBatch
	s.mu.Unlock()
	if full {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

func (s *logSink) loop() {
	defer close(s.done)
	t := time.NewTicker(sinkFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			s.Flush()
			return
		case <-t.C:
		case <-s.kick:
		}
		s.Flush()
	}
}

// Flush writes what is buffered now.
func (s *logSink) Flush() {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	lines := s.buf
	s.buf = nil
	s.mu.Unlock()
	if len(lines) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.store.AppendLog(ctx, s.jobID, lines...)
}

// Close flushes and stops the sink.
func (s *logSink) Close() {
	s.once.Do(func() { close(s.stop) })
	<-s.done
}
