package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raibid-labs/raibid-ci/internal/ci"
)

// appendLogScript stores a batch of log lines exactly once, in order. Each
// line gets the next line number n of the job's log and the stream id "0-n",
// so ids are line numbers: a page, a resume (?from=N, Last-Event-ID) and a
// #L123 link all address the same line. A writer (one agent run) numbers its
// batches; a batch it sends again — go-redis retrying after a timeout, or the
// sink retrying after an error — whose number is not above the last stored
// one is stored again as nothing. Lines past the server-wide byte maximum
// are counted, not stored.
//
// KEYS: job hash, log stream.
// ARGV: writer, batch, max bytes, log ttl s, then per line: step, stream,
// time, text, cont. Lines written after the job ended (an agent's last
// words) give the log the expiry a finished job's log has.
// Returns {stored, last line number}; stored -1: no such job, 0: a repeat.
var appendLogScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, 0} end
local n = tonumber(redis.call('HGET', KEYS[1], 'log_n') or '0')
if ARGV[1] ~= '' then
  local done = tonumber(redis.call('HGET', KEYS[1], 'log_b:' .. ARGV[1]) or '0')
  if tonumber(ARGV[2]) <= done then return {0, n} end
end
local bytes = tonumber(redis.call('HGET', KEYS[1], 'log_bytes') or '0')
local max = tonumber(ARGV[3])
local dropped = 0
for i = 5, #ARGV, 5 do
  local text = ARGV[i + 3]
  if max > 0 and bytes + #text > max then
    dropped = dropped + 1
  else
    n = n + 1
    bytes = bytes + #text
    local f = {'step', ARGV[i], 'stream', ARGV[i + 1], 'time', ARGV[i + 2], 'text', text}
    if ARGV[i + 4] == '1' then f[#f + 1] = 'cont'; f[#f + 1] = '1' end
    local ok = redis.pcall('XADD', KEYS[2], '0-' .. n, unpack(f))
    if type(ok) == 'table' and ok.err then
      -- a log begun before line-numbered ids: keep appending after it
      redis.call('XADD', KEYS[2], '*', unpack(f))
    end
  end
end
redis.call('HSET', KEYS[1], 'log_n', n, 'log_bytes', bytes)
if redis.call('TTL', KEYS[1]) > 0 and redis.call('TTL', KEYS[2]) == -1 then
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
if dropped > 0 then redis.call('HINCRBY', KEYS[1], 'log_dropped', dropped) end
if ARGV[1] ~= '' then redis.call('HSET', KEYS[1], 'log_b:' .. ARGV[1], ARGV[2]) end
return {1, n}
`)

// AppendLog adds lines to a job's log after whatever it holds. It is for
// writers that send each line once (the server's notes); an agent streaming
// a step's output uses AppendLogBatch, which a retry cannot duplicate.
func (s *Store) AppendLog(ctx context.Context, jobID string, lines ...ci.LogLine) error {
	_, err := s.AppendLogBatch(ctx, jobID, "", 0, lines)
	return err
}

// AppendLogBatch stores batch number batch of writer's lines, exactly once:
// sent again (after a timeout whose first try did reach Redis), it stores
// nothing. It returns the log's last line number.
func (s *Store) AppendLogBatch(ctx context.Context, jobID, writer string, batch int64, lines []ci.LogLine) (int64, error) {
	if len(lines) == 0 {
		return 0, nil
	}
	args := make([]any, 0, 4+5*len(lines))
	args = append(args, writer, batch, s.opts.MaxLogBytes, int(s.opts.LogTTL.Seconds()))
	for _, l := range lines {
		if l.Time.IsZero() {
			l.Time = s.now()
		}
		cont := "0"
		if l.Cont {
			cont = "1"
		}
		args = append(args, l.Step, l.Stream, FormatTime(l.Time), l.Text, cont)
	}
	res, err := appendLogScript.Run(ctx, s.rdb, []string{s.keys.Job(jobID), s.keys.Log(jobID)}, args...).Int64Slice()
	if err != nil {
		return 0, Wrap("append log", err)
	}
	if res[0] == -1 {
		return 0, fmt.Errorf("append log of job %s: %w", jobID, ci.ErrNotFound)
	}
	return res[1], nil
}

// LogLineID is the stream id of line n of a log.
func LogLineID(n int64) string { return "0-" + strconv.FormatInt(n, 10) }

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
			Streams: []string{s.keys.Log(jobID), after}, Count: count, Block: block,
		}).Result()
		if errors.Is(err, redis.Nil) {
			return nil, nil
		}
		if err != nil {
			return nil, Wrap("read log", err)
		}
		if len(res) > 0 {
			msgs = res[0].Messages
		}
	} else {
		var err error
		msgs, err = s.rdb.XRangeN(ctx, s.keys.Log(jobID), "("+after, "+", count).Result()
		if err != nil {
			return nil, Wrap("read log", err)
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
	msgs, err := s.rdb.XRevRangeN(ctx, s.keys.Log(jobID), end, "-", count).Result()
	if err != nil {
		return nil, Wrap("read log", err)
	}
	out := make([]ci.LogLine, len(msgs))
	for i, m := range msgs {
		out[len(msgs)-1-i] = logLine(m)
	}
	return out, nil
}

// LogLength is the number of lines in a job's log.
func (s *Store) LogLength(ctx context.Context, jobID string) (int64, error) {
	n, err := s.rdb.XLen(ctx, s.keys.Log(jobID)).Result()
	return n, Wrap("log length", err)
}

func logLine(m redis.XMessage) ci.LogLine {
	l := ci.LogLine{ID: m.ID}
	if ms, seq, ok := strings.Cut(m.ID, "-"); ok && ms == "0" {
		l.N, _ = strconv.ParseInt(seq, 10, 64)
	}
	l.Cont = m.Values["cont"] == "1"
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
