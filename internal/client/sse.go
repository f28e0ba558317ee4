package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
)

// Event is one Server-Sent Event.
type Event struct {
	ID, Name string
	Data     []byte
}

// readEvents parses an SSE stream, calling fn for each event until the
// stream ends or fn returns false.
func readEvents(r io.Reader, fn func(Event) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var ev Event
	var data []string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.Name != "" || len(data) > 0 {
				ev.Data = []byte(strings.Join(data, "\n"))
				if !fn(ev) {
					return nil
				}
			}
			ev, data = Event{}, nil
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id:"):
			ev.ID = strings.TrimSpace(line[3:])
		case strings.HasPrefix(line, "event:"):
			ev.Name = strings.TrimSpace(line[6:])
		case strings.HasPrefix(line, "data:"):
			data = append(data, strings.TrimPrefix(line[5:], " "))
		}
	}
	return sc.Err()
}

// stream opens an SSE endpoint once and feeds its events to fn.
func (c *Client) streamOnce(ctx context.Context, path, lastID string, fn func(Event) bool) error {
	req, err := c.newRequest(ctx, "GET", path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := c.stream.Do(req)
	if err != nil {
		return c.unreachable(unwrapURLError(err))
	}
	defer resp.Body.Close()
	if err := c.checkStatus(resp); err != nil {
		return err
	}
	return readEvents(resp.Body, fn)
}

// Backoff bounds reconnect delays of followed streams.
var Backoff = struct{ Min, Max time.Duration }{200 * time.Millisecond, 10 * time.Second}

// FollowLogs streams a job's log lines to fn as they are written, resuming
// with Last-Event-ID after a dropped connection, until the job ends. It
// returns the job's final status. Client errors (4xx) are not retried.
func (c *Client) FollowLogs(ctx context.Context, id string, fn func(ci.LogLine)) (ci.Status, error) {
	path := "/jobs/" + url.PathEscape(id) + "/logs/stream"
	lastID := ""
	var final ci.Status
	delay := Backoff.Min
	for {
		err := c.streamOnce(ctx, path, lastID, func(ev Event) bool {
			switch ev.Name {
			case "log":
				var l ci.LogLine
				if json.Unmarshal(ev.Data, &l) == nil {
					fn(l)
				}
				lastID = ev.ID
				delay = Backoff.Min
			case "end":
				var e struct {
					Status ci.Status `json:"status"`
				}
				_ = json.Unmarshal(ev.Data, &e)
				final = e.Status
				return false
			}
			return true
		})
		if final != "" {
			return final, nil
		}
		var apiErr *APIError
		if errors.As(err, &apiErr) && apiErr.Status < 500 {
			return "", err
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, Backoff.Max)
	}
}

// ConnState is reported by FollowEvents when the connection changes.
type ConnState struct {
	Connected bool
	Err       error
	// RetryIn is the delay before the next attempt when not connected.
	RetryIn time.Duration
}

// FollowEvents streams /events to fn until ctx ends, reconnecting with
// backoff; state (may be nil) hears of every connect and disconnect.
func (c *Client) FollowEvents(ctx context.Context, fn func(Event), state func(ConnState)) error {
	delay := Backoff.Min
	for {
		connected := false
		err := c.streamOnce(ctx, "/events", "", func(ev Event) bool {
			if !connected {
				connected = true
				delay = Backoff.Min
				if state != nil {
					state(ConnState{Connected: true})
				}
			}
			fn(ev)
			return true
		})
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			err = errors.New("stream ended")
		}
		var apiErr *APIError
		if errors.As(err, &apiErr) && apiErr.Status == http.StatusUnauthorized {
			if state != nil {
				state(ConnState{Err: err})
			}
			return err
		}
		if state != nil {
			state(ConnState{Err: fmt.Errorf("events: %w", err), RetryIn: delay})
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, Backoff.Max)
	}
}
