// Package api holds the wire types of raibid's HTTP API: what the server
// writes and the client reads, defined once. A job is ci.Job itself. The
// server builds these from its domain types (store.Agent, queue.Stats,
// mirror.Mirror); the client, the dashboard and `raibid job` read them.
// It imports nothing of ours but the domain.
package api

import (
	"net/url"
	"strconv"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
)

// JobFilter selects jobs for GET /jobs, as query parameters.
type JobFilter struct {
	Status ci.Status
	Repo   string
	Branch string
	// Group selects the jobs of one matrix.
	Group string
	// Event selects the jobs of one event (push, pull_request, tag, manual, cron).
	Event string
	// Limit is the page size (server default 50, at most 500).
	Limit int
	// Cursor is the NextCursor of the previous page.
	Cursor string
}

// Query is f as GET /jobs's query string.
func (f JobFilter) Query() url.Values {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("status", string(f.Status))
	set("repo", f.Repo)
	set("branch", f.Branch)
	set("group", f.Group)
	set("event", f.Event)
	set("cursor", f.Cursor)
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	return q
}

// JobPage is GET /jobs: one page of jobs, newest first.
type JobPage struct {
	Jobs       []ci.Job `json:"jobs"`
	NextCursor string   `json:"next_cursor"`
}

// NewJob is the body of POST /jobs: a manual trigger.
type NewJob struct {
	Repo     string `json:"repo"`
	Branch   string `json:"branch,omitempty"`
	Commit   string `json:"commit,omitempty"`
	CloneURL string `json:"clone_url,omitempty"`
	// Event is the event the job is run as (default manual): push, tag
	// (with Tag and Commit), pull_request (Branch is its head, Base where
	// it would land) or cron, so a pipeline's when: can be tried by hand.
	Event string `json:"event,omitempty"`
	Tag   string `json:"tag,omitempty"`
	Base  string `json:"base,omitempty"`
	// PR is the number of event pull_request (default 1).
	PR int `json:"pr,omitempty"`
	// Author and Message describe the commit, for the pages (raibid run
	// reads them from the checkout; a webhook's job has them from Gitea).
	Author  string `json:"author,omitempty"`
	Message string `json:"message,omitempty"`
}

// Agent is one row of GET /agents: the agent's own heartbeat, and in
// Kubernetes mode its pod's phase.
type Agent struct {
	Name       string    `json:"name"`
	Status     string    `json:"status"` // idle or busy (or a pod phase)
	CurrentJob string    `json:"current_job,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	LastSeen   time.Time `json:"last_seen"`
	Host       string    `json:"host,omitempty"`
	// Sandbox is "bwrap", or "off" for an agent whose steps run unsandboxed.
	Sandbox string `json:"sandbox,omitempty"`
	// Phase is the agent pod's phase when agents run on Kubernetes.
	Phase string `json:"phase,omitempty"`
	// GPUs is the GPU slots of the agent's machine, GPUsBusy those in use.
	GPUs     int `json:"gpus,omitempty"`
	GPUsBusy int `json:"gpus_busy,omitempty"`
}

// AgentList is GET /agents.
type AgentList struct {
	Agents []Agent `json:"agents"`
}

// QueueStats is GET /queue: the stream's figures.
type QueueStats struct {
	// Length is the number of entries in the stream (acked ones not yet
	// trimmed included).
	Length int64 `json:"length"`
	// Lag is the number of entries not yet delivered: what KEDA scales on;
	// -1 when Redis cannot tell.
	Lag int64 `json:"lag"`
	// Pending is the number of delivered, unacked entries (running jobs).
	Pending   int64 `json:"pending"`
	Dead      int64 `json:"dead"`
	Consumers int64 `json:"consumers"`
}

// Host are the figures of the machine the server runs on.
type Host struct {
	CPUPercent float64 `json:"cpu_percent"`
	CPUs       int     `json:"cpus"`
	MemTotal   uint64  `json:"mem_total_bytes"`
	MemUsed    uint64  `json:"mem_used_bytes"`
	Load1      float64 `json:"load1"`
}

// System is GET /system.
type System struct {
	Version   string    `json:"version"`
	StartedAt time.Time `json:"started_at"`
	Host      Host      `json:"host"`
	// ArtifactsBytes is what stored artifacts take on the server's disk.
	ArtifactsBytes int64 `json:"artifacts_bytes,omitempty"`
}

// Scale is GET and PUT /scale. In a PUT, MaxAgents is required.
type Scale struct {
	MaxAgents *int `json:"max_agents"`
}

// Mirror is one GitHub → Gitea pull mirror as GET /mirrors reports it.
type Mirror struct {
	Target   string    `json:"target"` // owner/name in Gitea
	Source   string    `json:"source"` // the original URL
	LastSync time.Time `json:"last_sync,omitzero"`
	Interval string    `json:"interval,omitempty"`
	Stale    bool      `json:"stale"`
	// Missing: the file names this single mirror but Gitea has no such repository.
	Missing bool `json:"missing,omitempty"`
	// LastTriggered is the server's last mirror-sync trigger of the repository.
	LastTriggered time.Time `json:"last_triggered,omitzero"`
	LastError     string    `json:"last_error,omitempty"`
}

// MirrorList is GET /mirrors; Enabled is false when the server has no
// mirrors file.
type MirrorList struct {
	Enabled bool     `json:"enabled"`
	Mirrors []Mirror `json:"mirrors"`
}

// Schedule is a cron schedule (GET /schedules): a job of event cron for
// Branch at the times Cron gives.
type Schedule struct {
	ID        string    `json:"id"`
	Repo      string    `json:"repo"`
	Branch    string    `json:"branch"`
	Cron      string    `json:"cron"`
	CloneURL  string    `json:"clone_url,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// LastFired is when it last queued a job (zero: never).
	LastFired time.Time `json:"last_fired,omitzero"`
	LastJob   string    `json:"last_job,omitempty"`
}

// NewSchedule is the body of POST /schedules.
type NewSchedule struct {
	Repo     string `json:"repo"`
	Branch   string `json:"branch"`
	Cron     string `json:"cron"`
	CloneURL string `json:"clone_url,omitempty"`
}

// Artifact is an artifact as GET /jobs/{id}/artifacts lists it.
type Artifact struct {
	ci.Artifact
	// Expired: pruned after the artifact retention; the record stays.
	Expired bool `json:"expired,omitempty"`
}

// Error is the body of every error answer.
type Error struct {
	Error string `json:"error"`
}

// DeadLetter is one row of GET /dead-letters: a queue entry delivered more
// often than --max-deliveries allows, its job ended in error.
type DeadLetter struct {
	ID         string    `json:"id"`
	Stream     string    `json:"stream"`
	JobID      string    `json:"job_id"`
	Repo       string    `json:"repo,omitempty"`
	Branch     string    `json:"branch,omitempty"`
	Commit     string    `json:"commit,omitempty"`
	Reason     string    `json:"reason"`
	Deliveries int       `json:"deliveries"`
	At         time.Time `json:"at"`
}

// DeadLetterList is GET /dead-letters.
type DeadLetterList struct {
	DeadLetters []DeadLetter `json:"dead_letters"`
}
