package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raibid-labs/raibid-ci/internal/ci"
)

// AppendLog adds lines to a job's log stream. The stream id of each line is its
// SSE event id, so a client resumes exactly where it stopped.
func (s *Store) AppendLog(ctx context.Context, jobID string, lines ...ci.LogLine) error {
	if len(lines) == 0 {
		return nil
	}
	p := s.rdb.Pipeline()
	for _, l := range lines {
		if l.Time.IsZero() {
			l.Time = s.now()
		}
		p.XAdd(ctx, &redis.XAddArgs{
			Stream: s.logKey(jobID), MaxLen: s.opts.MaxLogLines, Approx: true,
			Values: []string{"step", l.Step, "stream", l.Stream, "time", formatTime(l.Time), "text", l.Text},
		})
	}
	_, err := p.Exec(ctx)
	return wrap("append log", err)
}

// ReadLogs returns up to count lines after the line with id after ("" or "0"
// for the start). With block > 0 it waits that long for a line when none is
// there yet, and returns none if none came.
func (s *Store) ReadLogs(ctx context.Context, jobID, after string, count int64, block time.Duration) ([]ci.LogLine, error) {
	if after == "" {
		after = "0"
	}
	if count <= 0 {
		count = 1000
	}
	var msgs []redis.XMessage
	if block > 0 {
		res, err := s.rdb.XRead(ctx, &redis.XReadArgs{
			Streams: []string{s.logKey(jobID), after}, Count: count, Block: block,
		}).Result()
		if errors.Is(err, redis.Nil) {
			return nil, nil
		}
		if err != nil {
			return nil, wrap("read log", err)
		}
		if len(res) > 0 {
			msgs = res[0].Messages
		}
	} else {
		var err error
		msgs, err = s.rdb.XRangeN(ctx, s.logKey(jobID), "("+after, "+", count).Result()
		if err != nil {
			return nil, wrap("read log", err)
		}
	}
	out := make([]ci.LogLine, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, logLine(m))
	}
	return out, nil
}

// ValidLogID reports whether id has the form of a stream id ("ms-seq"), so a
// Last-Event-ID header can be passed to Redis without a syntax error.
func ValidLogID(id string) bool {
	var ms, seq uint64
	n, err := fmt.Sscanf(id, "%d-%d", &ms, &seq)
	return err == nil && n == 2 && fmt.Sprintf("%d-%d", ms, seq) == id
}

// ReadLogsBefore returns up to count lines that come before the line with id
// before ("" for the end of the log), oldest first: the pages of a long log,
// read from the end.
func (s *Store) ReadLogsBefore(ctx context.Context, jobID, before string, count int64) ([]ci.LogLine, error) {
	end := "+"
	if before != "" {
		end = "(" + before
	}
	msgs, err := s.rdb.XRevRangeN(ctx, s.logKey(jobID), end, "-", count).Result()
	if err != nil {
		return nil, wrap("read log", err)
	}
	out := make([]ci.LogLine, len(msgs))
	for i, m := range msgs {
		out[len(msgs)-1-i] = logLine(m)
	}
	return out, nil
}

// LogLength is the number of lines in a job's log.
func (s *Store) LogLength(ctx context.Context, jobID string) (int64, error) {
	n, err := s.rdb.XLen(ctx, s.logKey(jobID)).Result()
	return n, wrap("log length", err)
}

func logLine(m redis.XMessage) ci.LogLine {
	l := ci.LogLine{ID: m.ID}
	l.Step, _ = m.Values["step"].(string)
	l.Stream, _ = m.Values["stream"].(string)
	l.Text, _ = m.Values["text"].(string)
	if ts, _ := m.Values["time"].(string); ts != "" {
		if t := parseTime(ts); t != nil {
			l.Time = *t
		}
	}
	return l
}
