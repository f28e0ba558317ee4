package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
)

// logSink streams a job's output to its log: every line once, in order, in
// bounded memory.
//
//   - Exactly once: lines go out in numbered batches through
//     Store.AppendLogBatch, which stores a batch sent again as nothing. A
//     batch that failed (Redis paused, a timeout) is retried with the same
//     number and lines until it is stored.
//   - Back-pressure: at most maxBuffered bytes wait for Redis; a step that
//     prints faster than Redis stores blocks in Line (its pipe fills, its
//     writes block), so the agent's memory does not grow with the output.
//   - A byte cap per job: past maxBytes less the tail, lines go to a ring of
//     the last tailBytes; at the end one marker line says what was not
//     stored, then the tail follows, so the end of the output and the step's
//     verdict are always there.
type logSink struct {
	store    Store
	jobID    string
	writer   string // names this run's batches (agent + queue entry)
	maxBytes int64
	tailKeep int

	mu   sync.Mutex
	cond *sync.Cond
	buf  []ci.LogLine
	// bufBytes counts buf and the batch being stored: what waits for Redis.
	bufBytes int
	stored   int64 // bytes handed to the head of the log
	capped   bool
	tail     tailRing
	dropped  struct{ lines, bytes int64 }
	closed   bool

	batch int64
	kick  chan struct{}
	done  chan struct{}
	stop  chan struct{}
	once  sync.Once
	// abandon ends retries of a batch that cannot be stored (Close's bound).
	abandon chan struct{}
}

const (
	sinkFlushEvery = 50 * time.Millisecond
	sinkBatchLines = 2000
	sinkBatchBytes = 1 << 20
	// maxBuffered bounds the output waiting for Redis, per job, counted with
	// lineOverhead per line (the line's struct and string header cost more
	// than a short line's text).
	maxBuffered  = 8 << 20
	lineOverhead = 128
	// DefaultMaxLogBytes is a job's log cap; DefaultLogTail what is kept of
	// the end past it.
	DefaultMaxLogBytes = 64 << 20
	DefaultLogTail     = 1 << 20
	// closeDeadline bounds the last writes of a log when Redis is gone.
	closeDeadline = 60 * time.Second
)

func newLogSink(st Store, jobID, writer string, maxBytes int64) *logSink {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxLogBytes
	}
	tail := DefaultLogTail
	if int64(tail) > maxBytes/2 {
		tail = int(maxBytes / 2)
	}
	s := &logSink{store: st, jobID: jobID, writer: writer, maxBytes: maxBytes, tailKeep: tail,
		kick: make(chan struct{}, 1), done: make(chan struct{}), stop: make(chan struct{}), abandon: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	s.tail.max = tail
	go s.loop()
	return s
}

// Line implements runner.Sink.
func (s *logSink) Line(step, stream, text string) { s.LineCont(step, stream, text, false) }

// LineCont implements runner.ContinuedSink: cont marks the continuation of
// a line cut at the reader's buffer.
func (s *logSink) LineCont(step, stream, text string, cont bool) {
	l := ci.LogLine{Step: step, Stream: stream, Text: text, Time: time.Now(), Cont: cont}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if !s.capped && s.stored+s.waitingText()+int64(len(text)) > s.maxBytes-int64(s.tailKeep) {
		s.capped = true
	}
	if s.capped {
		gone, n := s.tail.push(l)
		s.dropped.lines += int64(gone)
		s.dropped.bytes += int64(n)
		return
	}
	s.buf = append(s.buf, l)
	s.bufBytes += len(text) + lineOverhead
	if len(s.buf) >= sinkBatchLines || s.bufBytes >= sinkBatchBytes {
		s.kickLocked()
	}
	for s.bufBytes >= maxBuffered && !s.closed {
		s.kickLocked()
		s.cond.Wait()
	}
}

// waitingText is the text (not the overhead) of the lines waiting for Redis.
func (s *logSink) waitingText() int64 {
	return int64(s.bufBytes - len(s.buf)*lineOverhead)
}

func (s *logSink) kickLocked() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *logSink) loop() {
	defer close(s.done)
	t := time.NewTicker(sinkFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			s.drain()
			s.writeTail()
			return
		case <-t.C:
		case <-s.kick:
		}
		s.drain()
	}
}

// drain stores what is buffered now, batch by batch, in order.
func (s *logSink) drain() {
	for {
		s.mu.Lock()
		n, size := 0, 0
		text := 0
		for n < len(s.buf) && n < sinkBatchLines && (n == 0 || size+len(s.buf[n].Text)+lineOverhead <= sinkBatchBytes) {
			size += len(s.buf[n].Text) + lineOverhead
			text += len(s.buf[n].Text)
			n++
		}
		lines := append([]ci.LogLine(nil), s.buf[:n]...)
		s.mu.Unlock()
		if n == 0 {
			return
		}
		s.batch++
		ok := s.storeBatch(lines)
		s.mu.Lock()
		s.buf = s.buf[n:]
		s.bufBytes -= size
		if ok { // else given up after the close deadline: Redis is gone
			s.stored += int64(text)
		}
		s.cond.Broadcast()
		s.mu.Unlock()
	}
}

// writeTail writes the cap's marker and the kept tail after the head.
func (s *logSink) writeTail() {
	s.mu.Lock()
	if !s.capped {
		s.mu.Unlock()
		return
	}
	tail := s.tail.lines()
	marker := ci.LogLine{Step: "log", Stream: "system", Time: time.Now(), Text: fmt.Sprintf(
		"log truncated at %s: %d lines, %s not stored; the last %s of the output follows",
		humanBytes(s.maxBytes), s.dropped.lines, humanBytes(s.dropped.bytes), humanBytes(int64(s.tail.size)))}
	if s.dropped.bytes == 0 {
		marker.Text = fmt.Sprintf("log reached its cap of %s; nothing was lost", humanBytes(s.maxBytes))
	}
	s.buf = append(append(s.buf, marker), tail...)
	s.mu.Unlock()
	s.drain()
}

// Flush blocks until what was written so far is stored (or given up).
func (s *logSink) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.bufBytes > 0 || len(s.buf) > 0 {
		s.kickLocked()
		s.cond.Wait()
	}
}

// Close stores everything, then the marker and tail of a capped log, and
// stops the sink; after closeDeadline without Redis it gives up.
func (s *logSink) Close() {
	s.once.Do(func() {
		t := time.AfterFunc(closeDeadline, func() { close(s.abandon) })
		defer t.Stop()
		close(s.stop)
		<-s.done
		s.mu.Lock()
		s.closed = true
		s.cond.Broadcast()
		s.mu.Unlock()
	})
}

// tailRing keeps the last max bytes of lines.
type tailRing struct {
	max  int
	size int
	buf  []ci.LogLine
}

// push adds l and returns how many lines (and bytes) fell out of the ring.
// push adds l and drops the oldest pieces past the ring's size. It counts
// what it dropped as the output had it: lines (a line cut into pieces at the
// reader's buffer is one line, counted by its first piece) and bytes with
// each line's newline.
func (r *tailRing) push(l ci.LogLine) (lines, bytes int) {
	r.buf = append(r.buf, l)
	r.size += len(l.Text)
	for r.size > r.max && len(r.buf) > 1 {
		bytes += len(r.buf[0].Text)
		if !r.buf[0].Cont {
			lines++
			bytes++ // its newline
		}
		r.size -= len(r.buf[0].Text)
		r.buf[0] = ci.LogLine{}
		r.buf = r.buf[1:]
	}
	return lines, bytes
}

func (r *tailRing) lines() []ci.LogLine { return append([]ci.LogLine(nil), r.buf...) }

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// storeBatch retries one batch until it is stored, the sink gives up
// (closeDeadline after Close), and reports whether it was stored. The same
// batch number goes with every try, so a try that reached Redis before its
// answer was lost is not stored twice.
func (s *logSink) storeBatch(lines []ci.LogLine) bool {
	backoff := 50 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := s.store.AppendLogBatch(ctx, s.jobID, s.writer, s.batch, lines)
		cancel()
		if err == nil {
			return true
		}
		if errors.Is(err, ci.ErrNotFound) {
			return false // the job is gone: nothing will ever store its lines
		}
		select {
		case <-s.abandon:
			return false
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}
