package ci

import "time"

// Event is a change that dashboards follow on GET /events.
type Event struct {
	// Type is "job" for a job's change of status or "queue" for the queue.
	Type   string `json:"type"`
	JobID  string `json:"job_id,omitempty"`
	Status Status `json:"status,omitempty"`
	// Agent is the agent that took the job (running) or ended it, so a
	// dashboard shows it busy or idle with the job's own event.
	Agent string    `json:"agent,omitempty"`
	Time  time.Time `json:"time"`
}

// LogLine is one line of a job's output.
type LogLine struct {
	// ID is the log stream's entry id; SSE clients resume from it.
	ID     string    `json:"id"`
	Step   string    `json:"step"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
	Text   string    `json:"text"`
	// N is the line's number in the log, from 1 (0 for lines of logs begun
	// before lines were numbered).
	N int64 `json:"n,omitempty"`
	// Cont marks the continuation of a line longer than the agent's line
	// buffer: it belongs after the previous line without a line break.
	Cont bool `json:"cont,omitempty"`
}
