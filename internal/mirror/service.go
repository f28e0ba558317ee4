package mirror

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
)

// DefaultRescan is how often the server re-lists org entries for new repositories.
const DefaultRescan = 24 * time.Hour

// Observer is told of the service's forge calls, for metrics. op is
// "migrate" or "mirror-sync".
type Observer func(op, target string, d time.Duration, err error)

// ServiceOptions configure a Service.
type ServiceOptions struct {
	Config      *Config
	GitHub      GitHub
	Gitea       Gitea
	GitHubToken string
	Log         *slog.Logger
	Observe     Observer
	// Rescan is the period of the create-missing pass (default DefaultRescan).
	Rescan time.Duration
	// TriggerTimeout bounds one mirror-sync call (default 30 s).
	TriggerTimeout time.Duration
}

// Service is the server's side of mirroring: a periodic pass that creates
// mirrors for repositories new in the organisations, mirror-sync triggers
// from GitHub pushes (asynchronous, coalesced per repository) and the status
// the dashboard shows.
type Service struct {
	opts ServiceOptions
	log  *slog.Logger

	// ctx lives from New to the end of Run: triggers started by webhooks
	// belong to it, so shutdown cancels and waits for them.
	ctx      context.Context
	cancel   context.CancelFunc
	triggers sync.WaitGroup

	mu       sync.Mutex
	inFlight map[string]bool // target → another push arrived meanwhile
	state    map[string]triggerState
}

type triggerState struct {
	at  time.Time
	err string
}

// NewService builds a Service; call Run to start its periodic pass.
func NewService(opts ServiceOptions) *Service {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Rescan <= 0 {
		opts.Rescan = DefaultRescan
	}
	if opts.TriggerTimeout <= 0 {
		opts.TriggerTimeout = 30 * time.Second
	}
	s := &Service{opts: opts, log: opts.Log, inFlight: map[string]bool{}, state: map[string]triggerState{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// SetObserver installs the metrics hook; call it before Run.
func (s *Service) SetObserver(o Observer) { s.opts.Observe = o }

// Run creates missing mirrors now and every Rescan until ctx ends, then
// cancels and waits for webhook triggers still running.
func (s *Service) Run(ctx context.Context) {
	defer func() { s.cancel(); s.triggers.Wait() }()
	t := time.NewTicker(s.opts.Rescan)
	defer t.Stop()
	for {
		s.CreateMissing(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// CreateMissing plans the whole file and migrates what is missing (no
// repair: deleting is left to a person running `raibid mirror sync --repair`).
func (s *Service) CreateMissing(ctx context.Context) {
	items, err := Plan(ctx, s.opts.Config, s.opts.GitHub, s.opts.Gitea)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("mirror rescan failed", "err", err)
		}
		return
	}
	res := Sync(ctx, items, s.opts.Gitea, SyncOptions{GitHubToken: s.opts.GitHubToken,
		Observe: func(target string, d time.Duration, err error) { s.observe("migrate", target, d, err) }})
	created := 0
	for _, it := range res {
		switch it.Action {
		case ActionCreated:
			created++
			s.log.Info("mirror created", "repo", it.Target, "source", it.Source)
		case ActionFailed, ActionConflict, ActionError:
			s.log.Error("mirror not created", "repo", it.Target, "source", it.Source, "action", string(it.Action), "reason", it.Reason)
		}
	}
	s.log.Info("mirror rescan done", "repositories", len(res), "created", created)
}

// TargetOf maps a pushed GitHub repository to its Gitea mirror.
func (s *Service) TargetOf(source string) (string, bool) { return s.opts.Config.TargetOf(source) }

// Mirrors reports whether target is one of the configured mirrors.
func (s *Service) Mirrors(target string) bool { return s.opts.Config.Mirrors(target) }

// TriggerAsync asks Gitea to sync target (the mirror of source) in the
// background and returns at
// once. Pushes that arrive while a sync call for the same repository is in
// flight coalesce into one more call after it.
func (s *Service) TriggerAsync(source, target string) {
	key := strings.ToLower(target)
	s.mu.Lock()
	if _, busy := s.inFlight[key]; busy {
		s.inFlight[key] = true
		s.mu.Unlock()
		return
	}
	s.inFlight[key] = false
	s.mu.Unlock()
	s.triggers.Go(func() {
		for {
			if err := s.Trigger(s.ctx, target); errors.Is(err, gitea.ErrNotFound) && source != "" {
				// A repository new on GitHub that the file mirrors: make its
				// mirror now rather than at the next rescan.
				s.createOne(s.ctx, source, target)
			}
			s.mu.Lock()
			again := s.inFlight[key]
			if !again || s.ctx.Err() != nil {
				delete(s.inFlight, key)
				s.mu.Unlock()
				return
			}
			s.inFlight[key] = false
			s.mu.Unlock()
		}
	})
}

// createOne migrates the mirror of one source the config selects.
func (s *Service) createOne(ctx context.Context, source, target string) {
	if s.opts.GitHub == nil {
		return
	}
	owner, name, _ := strings.Cut(source, "/")
	repo, err := s.opts.GitHub.GetRepo(ctx, owner, name)
	if err != nil {
		s.log.Error("new mirror: GitHub repository", "source", source, "err", err)
		return
	}
	// The mirror takes GitHub's spelling of the name, not the push's.
	var entry *Entry
	for i := range s.opts.Config.Entries {
		e := &s.opts.Config.Entries[i]
		if t, ok := (&Config{Entries: []Entry{*e}}).TargetOf(repo.FullName); ok && strings.EqualFold(t, target) {
			entry, target = e, t
			break
		}
	}
	if entry == nil {
		return
	}
	it := Item{Entry: entry.Index, Source: repo.FullName, Target: target}
	it.fill(entry, repo)
	if err := checkTarget(ctx, s.opts.Gitea, &it); err != nil {
		s.log.Error("new mirror: Gitea", "repo", target, "err", err)
		return
	}
	res := Sync(ctx, []Item{it}, s.opts.Gitea, SyncOptions{GitHubToken: s.opts.GitHubToken,
		Observe: func(target string, d time.Duration, err error) { s.observe("migrate", target, d, err) }})
	if res[0].Action == ActionCreated {
		s.log.Info("mirror created for a new repository", "repo", target, "source", source)
	} else {
		s.log.Error("mirror of a new repository not created", "repo", target, "action", string(res[0].Action), "reason", res[0].Reason)
	}
}

// Trigger asks Gitea to sync target now (Gitea queues the fetch).
func (s *Service) Trigger(ctx context.Context, target string) error {
	owner, name, _ := strings.Cut(target, "/")
	ctx, cancel := context.WithTimeout(ctx, s.opts.TriggerTimeout)
	defer cancel()
	start := time.Now()
	err := s.opts.Gitea.MirrorSync(ctx, owner, name)
	s.observe("mirror-sync", target, time.Since(start), err)
	st := triggerState{at: time.Now()}
	if err != nil {
		st.err = err.Error()
		s.log.Error("mirror sync failed", "repo", target, "err", err)
	} else {
		s.log.Info("mirror sync queued in gitea", "repo", target)
	}
	s.mu.Lock()
	s.state[strings.ToLower(target)] = st
	s.mu.Unlock()
	return err
}

// Status lists the mirrors as Gitea reports them, with the server's last
// trigger of each.
func (s *Service) Status(ctx context.Context) ([]Mirror, error) {
	list, err := List(ctx, s.opts.Config, s.opts.Gitea, time.Now())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range list {
		if st, ok := s.state[strings.ToLower(list[i].Target)]; ok {
			list[i].LastTriggered, list[i].LastError = st.at, st.err
		}
	}
	return list, nil
}

func (s *Service) observe(op, target string, d time.Duration, err error) {
	if s.opts.Observe != nil {
		s.opts.Observe(op, target, d, err)
	}
}
