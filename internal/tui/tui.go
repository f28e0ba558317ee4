// Package tui is `raibid tui`, the terminal dashboard: jobs, agents, queue,
// logs, cancel, trigger and scale. It talks to the server only through
// internal/client (the /events stream plus fetches), never to Redis, and
// logs to a file, never to the screen.
package tui

import (
	"context"
	"encoding/json"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/raibid-labs/raibid-ci/internal/api"
	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/client"
	"github.com/raibid-labs/raibid-ci/internal/termtext"
)

// JobsSource is what the Jobs tab and its job view need of the server.
type JobsSource interface {
	ListJobs(ctx context.Context, f api.JobFilter) (*api.JobPage, error)
	GetJob(ctx context.Context, id string) (*ci.Job, error)
	CancelJob(ctx context.Context, id string) (*ci.Job, error)
	RetryJob(ctx context.Context, id string) (*ci.Job, error)
	CancelGroup(ctx context.Context, group string) ([]string, error)
	RetryGroup(ctx context.Context, group string) ([]ci.Job, error)
	CreateJob(ctx context.Context, n api.NewJob) (*ci.Job, error)
	FollowLogs(ctx context.Context, id string, fn func(ci.LogLine)) (ci.Status, error)
}

// FleetSource is what the header, the Agents and the System tabs need: the
// agents, the queue, the host, and the agent limit.
type FleetSource interface {
	Agents(ctx context.Context) ([]api.Agent, error)
	Queue(ctx context.Context) (*api.QueueStats, error)
	System(ctx context.Context) (*api.System, error)
	MaxAgents(ctx context.Context) (int, error)
	SetMaxAgents(ctx context.Context, n int) (int, error)
}

// MirrorsSource is what the Mirrors tab needs.
type MirrorsSource interface {
	Mirrors(ctx context.Context) (bool, []api.Mirror, error)
	SyncMirror(ctx context.Context, target string) error
}

// EventsSource is the live event stream every view refreshes from.
type EventsSource interface {
	FollowEvents(ctx context.Context, fn func(client.Event), state func(client.ConnState)) error
}

// Source is the whole dashboard's need; *client.Client is it.
type Source interface {
	JobsSource
	FleetSource
	MirrorsSource
	EventsSource
}

var _ Source = (*client.Client)(nil)

// Messages from background work into Update.
type (
	retriedMsg struct{ job *ci.Job }
	jobsMsg    struct {
		jobs []ci.Job
		err  error
	}
	agentsMsg struct {
		agents []api.Agent
		err    error
	}
	systemMsg struct {
		sys *api.System
		err error
	}
	scaleMsg struct {
		max int
		err error
	}
	// scaledMsg answers our own PUT /scale.
	scaledMsg scaleMsg
	queueMsg  api.QueueStats
	connMsg   client.ConnState
	// jobEventMsg is a job's change, with the agent it concerns.
	jobEventMsg ci.Event
	detailMsg   struct {
		job *ci.Job
		err error
	}
	logLineMsg struct {
		jobID string
		line  ci.LogLine
	}
	actionMsg struct {
		text string
		err  error
	}
	mirrorsMsg struct {
		enabled bool
		mirrors []api.Mirror
		err     error
	}
	// mirrorSyncedMsg answers a sync asked for from the Mirrors tab.
	mirrorSyncedMsg struct {
		target string
		err    error
	}
	tickMsg time.Time
	// refetchMsg fires a debounced jobs fetch.
	refetchMsg struct{}
)

// inbox carries messages from goroutines (the event stream, log follower)
// into the program. Exactly one wait is outstanding at a time: Update
// re-arms it after each inboxMsg, which keeps the messages in order.
type inbox chan tea.Msg

// inboxMsg wraps a message that came through the inbox.
type inboxMsg struct{ msg tea.Msg }

func (in inbox) wait() tea.Cmd {
	return func() tea.Msg { return inboxMsg{<-in} }
}

// send delivers without blocking the producer: a full inbox drops hints
// (job events, queue figures), which the next fetch makes up for.
func (in inbox) send(m tea.Msg) {
	select {
	case in <- m:
	default:
	}
}

// followEvents streams /events into the inbox until ctx ends.
func followEvents(ctx context.Context, src EventsSource, in inbox) {
	_ = src.FollowEvents(ctx, func(ev client.Event) {
		switch ev.Name {
		case "job":
			var e ci.Event
			_ = json.Unmarshal(ev.Data, &e)
			in.send(jobEventMsg(e))
		case "queue":
			var q api.QueueStats
			if json.Unmarshal(ev.Data, &q) == nil {
				in.send(queueMsg(q))
			}
		}
	}, func(s client.ConnState) {
		// Connection changes must not be lost: block for them.
		select {
		case in <- connMsg(s):
		case <-ctx.Done():
		}
	})
}

const fetchTimeout = 10 * time.Second

func fetchJobs(ctx context.Context, src JobsSource, f api.JobFilter) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		defer cancel()
		p, err := src.ListJobs(ctx, f)
		if err != nil {
			return jobsMsg{err: err}
		}
		for i := range p.Jobs { // fields from webhooks and builds, shown as data
			p.Jobs[i] = *termtext.Job(&p.Jobs[i])
		}
		return jobsMsg{jobs: p.Jobs}
	}
}

func fetchAgents(ctx context.Context, src FleetSource) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		defer cancel()
		a, err := src.Agents(ctx)
		return agentsMsg{agents: a, err: err}
	}
}

func fetchSystem(ctx context.Context, src FleetSource) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		defer cancel()
		s, err := src.System(ctx)
		return systemMsg{sys: s, err: err}
	}
}

func fetchScale(ctx context.Context, src FleetSource) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		defer cancel()
		n, err := src.MaxAgents(ctx)
		return scaleMsg{max: n, err: err}
	}
}

func fetchQueue(ctx context.Context, src FleetSource) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		defer cancel()
		q, err := src.Queue(ctx)
		if err != nil {
			return nil
		}
		return queueMsg(*q)
	}
}

func fetchDetail(ctx context.Context, src JobsSource, id string) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		defer cancel()
		j, err := src.GetJob(ctx, id)
		return detailMsg{job: termtext.Job(j), err: err}
	}
}

func fetchMirrors(ctx context.Context, src MirrorsSource) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		defer cancel()
		enabled, list, err := src.Mirrors(ctx)
		return mirrorsMsg{enabled: enabled, mirrors: list, err: err}
	}
}

func syncMirror(ctx context.Context, src MirrorsSource, target string) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		defer cancel()
		return mirrorSyncedMsg{target: target, err: src.SyncMirror(ctx, target)}
	}
}

func tick() tea.Cmd {
	return tea.Tick(time.Second, func(t time.Time) tea.Msg { return tickMsg(t) })
}

// MaxFPS caps redraws: a burst of job events costs at most this many frames a
// second on a slow link.
const MaxFPS = 10

// Run shows the dashboard until the user quits or ctx ends, and restores the
// terminal.
func Run(ctx context.Context, src Source, opts Options, progOpts ...tea.ProgramOption) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the event stream and log follower
	m := New(ctx, src, opts)
	all := append([]tea.ProgramOption{tea.WithContext(ctx), tea.WithFPS(MaxFPS)}, progOpts...)
	_, err := tea.NewProgram(m, all...).Run()
	if err != nil && ctx.Err() != nil {
		return nil // interrupted from outside (SIGTERM): not an error
	}
	return err
}
