// Package server is raibid's HTTP API: forge webhooks, the jobs API, logs and
// events over SSE, health, metrics, the web pages and the OpenAPI document,
// and the control loops beside them (loops.go). Optional parts — mirrors,
// pipeline secrets, schedules, artifacts — are Features (feature.go), each
// bringing its own routes and loops. A job's state changes go
// through internal/jobs (its hash and its queue entry move together there);
// the server reads jobs and logs from internal/store, and never runs jobs
// itself.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/raibid-labs/raibid-ci/internal/api"
	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
	"github.com/raibid-labs/raibid-ci/internal/jobs"
	"github.com/raibid-labs/raibid-ci/internal/queue"
	"github.com/raibid-labs/raibid-ci/internal/store"
	"github.com/raibid-labs/raibid-ci/internal/web"
)

// DefaultMaxBody is the largest webhook body accepted (Gitea's own limit for
// payloads is far below; anything bigger is not a push).
const DefaultMaxBody = 25 << 20

// ShutdownTimeout is how long in-flight requests get to finish on SIGTERM.
const ShutdownTimeout = 10 * time.Second

// Options configure a Server. Store, Queue and Jobs are required.
type Options struct {
	Store *store.Store
	Queue *queue.Queue
	Jobs  *jobs.Lifecycle
	// GPUJobs, when set, is the lifecycle of jobs that need a GPU (their
	// own stream, claimed only by agents with a free GPU slot).
	GPUJobs *jobs.Lifecycle
	Logger  *slog.Logger
	// WebhookSecret signs forge webhooks; with none set every webhook is 401.
	WebhookSecret string
	// APIToken, when set, is required as a bearer token on every route but
	// webhooks and health.
	APIToken string
	// GiteaURL is used to derive clone URLs of manual triggers.
	GiteaURL string
	// MaxBody caps webhook bodies (default 25 MiB).
	MaxBody int64
	// BodyBytesInFlight caps the bytes of webhook bodies being read at once
	// (default 64 MiB); past it webhooks are 503 with Retry-After.
	BodyBytesInFlight int64
	// BodyTimeout bounds reading one request body (default 30 s).
	BodyTimeout time.Duration
	// HeaderTimeout bounds reading a request's headers (default 5 s).
	HeaderTimeout time.Duration
	// ReaperInterval is how often abandoned queue entries are requeued
	// (default a third of the lease; negative turns the reaper off).
	ReaperInterval time.Duration
	// Registry receives the metrics (default a new registry).
	Registry *prometheus.Registry
	// Version is reported by /healthz.
	Version string
	// Status, when set, receives a pending commit status for every queued
	// push. raibid wires the status outbox (internal/statuses), which
	// stores it after the webhook's answer; a plain poster is called before
	// the answer, which then waits for the forge (tests that check order).
	Status StatusPoster
	// PublicURL is the base of commit status links.
	PublicURL string
	// Scaler, when set, lets clients change the number of agents (PUT /scale).
	Scaler Scaler
	// UIPublic lets anyone who can reach the server read the web pages;
	// cancel and retry still need a login. Default: pages need the token.
	UIPublic bool
	// Executor, when set, starts an agent for every queued job (Kubernetes).
	Executor Executor
	// Pods, when set, adds the agent pods' phases to GET /agents.
	Pods PodLister
	// Heads, when set, resolves the branch of a manual job (POST /jobs
	// without a commit) to its head commit, recorded on the job.
	Heads HeadResolver
	// HostStats reads the host's figures for GET /system (default /proc).
	HostStats func() api.Host
	// Features are the optional parts served beside the core API
	// (feature.go): Mirrors, Secrets, Schedules, Artifacts.
	Features []Feature
}

// HeadResolver finds a branch's head commit: ci.ErrNotFound when the branch
// does not exist.
type HeadResolver interface {
	BranchHead(ctx context.Context, repo, cloneURL, branch string) (string, error)
}

// StatusPoster reports commit statuses to the forge.
type StatusPoster interface {
	PostStatus(ctx context.Context, repo, sha string, st gitea.CommitStatus) error
}

// Server is the HTTP API.
type Server struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics
	handler http.Handler
	// stopStreams ends SSE responses on shutdown: http.Server.Shutdown waits
	// for handlers but does not cancel their requests' contexts.
	streams     context.Context
	stopStreams context.CancelFunc
	started     time.Time
	// background holds work started by requests that outlives them
	// (executor launches); shutdown waits for it.
	background sync.WaitGroup
	// launched holds the jobs this server queued and launched an agent
	// for, until their pending event comes by (launchQueuedElsewhere skips
	// them): job id → when.
	launched sync.Map
	pages    *web.Pages
	sessions *web.Sessions
	bodies   *bodyBudget
	// featureRoutes, featurePages and featureLoops are what opts.Features
	// added.
	featureRoutes []route
	featurePages  []route
	featureLoops  []controlLoop
}

// New builds a Server.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.BodyBytesInFlight <= 0 {
		opts.BodyBytesInFlight = DefaultBodyBytesInFlight
	}
	opts.MaxBody = min(opts.MaxBody, opts.BodyBytesInFlight)
	if opts.BodyTimeout <= 0 {
		opts.BodyTimeout = DefaultBodyTimeout
	}
	if opts.HeaderTimeout <= 0 {
		opts.HeaderTimeout = DefaultHeaderTimeout
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.HostStats == nil {
		opts.HostStats = (&hostSampler{}).sample
	}
	s := &Server{opts: opts, log: opts.Logger, started: time.Now(),
		pages: web.NewPages(nil), sessions: web.NewSessions(opts.APIToken),
		bodies: &bodyBudget{left: opts.BodyBytesInFlight, total: opts.BodyBytesInFlight, freeWait: 2 * time.Second}}
	s.streams, s.stopStreams = context.WithCancel(context.Background())
	s.metrics = newMetrics(opts.Registry, opts.Queue)
	opts.Registry.MustRegister(s.bodies.collector())
	if opts.Jobs != nil { // nil only in tests that read the route table
		opts.Jobs.OnSubmit(s.queued)
	}
	if opts.GPUJobs != nil {
		opts.GPUJobs.OnSubmit(s.queued)
	}
	for _, f := range opts.Features {
		parts := f.attach(s)
		s.featureRoutes = append(s.featureRoutes, parts.routes...)
		s.featurePages = append(s.featurePages, parts.pages...)
		s.featureLoops = append(s.featureLoops, parts.loops...)
	}
	s.handler = s.routes()
	return s
}

// SetScaler installs the agent scaler before Serve (raibid up builds its
// agent pool after the server).
func (s *Server) SetScaler(sc Scaler) { s.opts.Scaler = sc }

// Handler is the server's http.Handler, for tests and embedding.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve answers on l until ctx ends, then shuts down in this order: stop
// accepting and end SSE streams, let in-flight requests finish (at most
// ShutdownTimeout), wait for the work they started (executor launches),
// then stop the control loops (see loops.go).
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	hs := &http.Server{
		Handler: s.handler,
		// A client that trickles its headers is cut off; bodies have their
		// own deadline (readWebhookBody), and idle keep-alive connections
		// are closed. No write timeout: SSE streams are long responses.
		ReadHeaderTimeout: s.opts.HeaderTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	stopLoops := s.startLoops()
	defer func() { s.background.Wait(); stopLoops() }()

	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.stopStreams()
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	err := hs.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
