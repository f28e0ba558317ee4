// Package ci is the domain leaf of raibid: jobs, steps, statuses, events and the
// errors every other package shares. It imports nothing internal and knows nothing
// of Redis, HTTP or processes.
package ci

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Status is where a job is in its life.
type Status string

// Job statuses: pending → running → success | failed | cancelled | error.
// failed means the pipeline failed; error means the system failed (clone,
// timeout, dead letter).
const (
	StatusPending   Status = "pending"
	StatusRunning   Status = "running"
	StatusSuccess   Status = "success"
	StatusFailed    Status = "failed"
	StatusCancelled Status = "cancelled"
	StatusError     Status = "error"
	// StatusSkipped is used by steps only: a step that did not apply.
	StatusSkipped Status = "skipped"
)

// Final reports whether a job in this status will never change again.
func (s Status) Final() bool {
	switch s {
	case StatusSuccess, StatusFailed, StatusCancelled, StatusError:
		return true
	}
	return false
}

// Valid reports whether s is one of the job statuses.
func (s Status) Valid() bool {
	return s == StatusPending || s == StatusRunning || s.Final()
}

// Job is one run of a pipeline for one commit. Field names are part of the API.
type Job struct {
	ID       string `json:"id"`
	Repo     string `json:"repo"`
	CloneURL string `json:"clone_url"`
	Branch   string `json:"branch"`
	Commit   string `json:"commit"`
	Author   string `json:"author"`
	Message  string `json:"message"`
	Status   Status `json:"status"`
	Attempt  int    `json:"attempt"`
	RetryOf  string `json:"retry_of,omitempty"`
	Agent    string `json:"agent,omitempty"`
	Trigger  string `json:"trigger,omitempty"`
	// Event is what created the job: push, pull_request, tag, manual or
	// cron (a retry keeps its job's event).
	Event string `json:"event"`
	// Tag is the tag of a tag event.
	Tag string `json:"tag,omitempty"`
	// PullRequest describes a pull_request event.
	PullRequest *PullRequest `json:"pull_request,omitempty"`
	// Changed lists the files the push changed, when the webhook listed
	// them all; path filters fall back to git's diff against Before.
	Changed []string `json:"changed,omitempty"`
	Before  string   `json:"before,omitempty"`
	// Matrix is this job's combination of a matrix pipeline's axes; Group
	// is the id every job of that event's matrix shares.
	Matrix map[string]string `json:"matrix,omitempty"`
	Group  string            `json:"group,omitempty"`
	// Sidecars are the pipeline's services that name an image: an executor
	// with an image runtime (Kubernetes) runs them beside the agent.
	Sidecars []Sidecar `json:"sidecars,omitempty"`
	// GPUs is how many GPUs the job needs: it runs only on an agent with
	// that many free GPU slots (queued on the GPU stream).
	GPUs int `json:"gpus,omitempty"`
	// TagObject is the annotated tag object a tag's event named, when the
	// agent found it points at Commit (the commit built): statuses go to
	// both, so the pending status posted on the tag object is ended too.
	TagObject string `json:"tag_object,omitempty"`
	// Phases is where the agent's time on the job went, in milliseconds:
	// workspace, clone, plan, prepare (caches, sandbox), steps, and
	// everything but the steps as overhead (set with the verdict).
	Phases map[string]float64 `json:"phases,omitempty"`
	// Artifacts are the files the job's steps uploaded.
	Artifacts  []Artifact `json:"artifacts,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Error      string     `json:"error,omitempty"`
	Steps      []Step     `json:"steps"`
	// CacheArtifacts and CacheFresh are cargo's compiled artifacts and how
	// many of them were reused from the build cache (Rust pipelines).
	CacheArtifacts int `json:"cache_artifacts,omitempty"`
	CacheFresh     int `json:"cache_fresh,omitempty"`
}

// Step is one command of a job's pipeline.
type Step struct {
	Name       string     `json:"name"`
	Status     Status     `json:"status"`
	ExitCode   *int       `json:"exit_code,omitempty"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	DurationMS int64      `json:"duration_ms"`
	// AllowFailure marks a step whose failure does not fail the job.
	AllowFailure bool `json:"allow_failure,omitempty"`
}

// PullRequest is the pull request a job builds: its head commit, cloned
// from the head repository. A pull request from a fork gets no pipeline
// secrets.
type PullRequest struct {
	Number     int    `json:"number"`
	BaseBranch string `json:"base_branch"`
	HeadBranch string `json:"head_branch"`
	FromFork   bool   `json:"from_fork"`
}

// Sidecar is a service of a job's pipeline run from an image.
type Sidecar struct {
	Name  string `json:"name"`
	Image string `json:"image"`
	Port  int    `json:"port"`
}

// Artifact is a file a job's step uploaded: GET /jobs/{id}/artifacts/{name}.
type Artifact struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	Step   string `json:"step,omitempty"`
}

// Triggers say what created a job: the forge, a person, or a retry.
const (
	TriggerPush   = "push"
	TriggerManual = "manual"
	TriggerRetry  = "retry"
	// TriggerSchedule: a cron schedule (raibid schedule add) fired.
	TriggerSchedule = "schedule"
)

// Events say what a job is for; pipelines' when: filters match on them.
const (
	EventPush        = "push"
	EventPullRequest = "pull_request"
	EventTag         = "tag"
	EventManual      = "manual"
	EventCron        = "cron"
)

// Events lists the events, in the order pages and menus show them.
func Events() []string {
	return []string{EventPush, EventPullRequest, EventTag, EventManual, EventCron}
}

// ValidEvent reports whether e is one of the events.
func ValidEvent(e string) bool { return slices.Contains(Events(), e) }

// MatrixLabel is a matrix combination as its commit status names it:
// axis=value pairs by axis name ("target=x86_64,toolchain=stable").
func MatrixLabel(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

// NewID returns a job id that sorts by creation time: 12 hex digits of Unix
// milliseconds followed by 8 random hex digits.
func NewID(now time.Time) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("ci: random source failed: %v", err))
	}
	return fmt.Sprintf("%012x%s", now.UnixMilli(), hex.EncodeToString(b[:]))
}

// IDTime is the creation time an id made by NewID carries (its first 12
// hex digits, Unix milliseconds), or the zero time for any other id.
func IDTime(id string) time.Time {
	if len(id) != 20 {
		return time.Time{}
	}
	ms, err := strconv.ParseInt(id[:12], 16, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// Duration is how long the job ran, or has been running at now.
func (j *Job) Duration(now time.Time) time.Duration {
	if j.StartedAt == nil {
		return 0
	}
	end := now
	if j.FinishedAt != nil {
		end = *j.FinishedAt
	}
	return end.Sub(*j.StartedAt)
}

// PageURL is the job's web page under publicURL (the commit status link),
// or "" without a public URL.
func PageURL(publicURL, id string) string {
	if publicURL == "" {
		return ""
	}
	return strings.TrimRight(publicURL, "/") + "/ui/jobs/" + id
}

// CacheScope is what may share build caches, workspace slots and step
// homes with this job: its repository, or, for a pull request from a fork,
// that pull request alone. A build writes its caches, so a scope's caches
// are only ever read by builds of the same trust: a fork's pull request
// never writes what the base repository's builds later read or run, as
// GitHub Actions keeps a pull request's caches to its own ref.
func (j *Job) CacheScope() string {
	if pr := j.PullRequest; pr != nil && pr.FromFork {
		return fmt.Sprintf("%s#fork-pr-%d", j.Repo, pr.Number)
	}
	return j.Repo
}

// StepDuration is a step's duration as every view prints it, to the
// millisecond ("63ms", "1.204s", "2m3.5s"): a fast step's time is not
// rounded into another.
func StepDuration(ms int64) string {
	return (time.Duration(ms) * time.Millisecond).String()
}

// StepStatus is a step's status as text views print it: a failure the
// pipeline allows says so ("failed (allowed)").
func StepStatus(s Step) string {
	if s.AllowFailure && s.Status == StatusFailed {
		return string(s.Status) + " (allowed)"
	}
	return string(s.Status)
}
