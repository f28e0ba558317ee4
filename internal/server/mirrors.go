package server

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/raibid-labs/raibid-ci/internal/api"
	"github.com/raibid-labs/raibid-ci/internal/forge/github"
	"github.com/raibid-labs/raibid-ci/internal/mirror"
)

// mirrorStatusTimeout bounds GET /mirrors' calls to Gitea.
const mirrorStatusTimeout = 10 * time.Second

// Mirrors is GitHub → Gitea mirroring: the github-sync webhook (signed with
// webhookSecret, default the server's WebhookSecret), GET /mirrors, POST
// /mirrors/{owner}/{repo}/sync, the rescan loop and the mirror metrics. A
// nil svc is mirroring off: the webhook ignores pushes and the routes say
// so.
func Mirrors(svc *mirror.Service, webhookSecret string) Feature {
	return &mirrors{svc: svc, webhookSecret: webhookSecret}
}

type mirrors struct {
	s             *Server
	svc           *mirror.Service
	webhookSecret string

	duration *prometheus.HistogramVec
	failures *prometheus.CounterVec
	lastSync *prometheus.GaugeVec
}

func (m *mirrors) attach(s *Server) featureParts {
	m.s = s
	if m.webhookSecret == "" {
		m.webhookSecret = s.opts.WebhookSecret
	}
	m.registerMetrics(s.opts.Registry)
	parts := featureParts{routes: []route{
		{"POST", "/webhook/github-sync", true, m.handleGitHubSyncWebhook},
		{"GET", "/mirrors", false, m.handleList},
		{"POST", "/mirrors/{owner}/{repo}/sync", false, m.handleSync},
	}}
	if m.svc != nil {
		m.svc.SetObserver(m.observe)
		parts.loops = []controlLoop{{"mirror rescan", m.svc.Run}}
	}
	return parts
}

// handleGitHubSyncWebhook maps a signed GitHub push to its Gitea mirror and
// asks Gitea to sync it in the background: GitHub waits for the answer (and
// gives up after 10 s), Gitea's mirror-sync only queues, so the answer never
// waits for it.
func (m *mirrors) handleGitHubSyncWebhook(w http.ResponseWriter, r *http.Request) {
	s := m.s
	result := func(res string) { s.metrics.webhooks.WithLabelValues("github", res).Inc() }
	body, release, ok := s.readWebhookBody(w, r, github.HeaderSignature, result)
	if !ok {
		return
	}
	defer release()
	if !github.ValidSignature([]byte(m.webhookSecret), body, r.Header.Get(github.HeaderSignature)) {
		result("unauthorized")
		writeError(w, http.StatusUnauthorized, "missing or invalid "+github.HeaderSignature+" (sha256=<hex>)")
		return
	}
	event := r.Header.Get(github.HeaderEvent)
	switch {
	case event == "ping":
		result("ignored")
		writeJSON(w, http.StatusOK, map[string]string{"ignored": "ping", "pong": "raibid"})
		return
	case event != "push":
		result("ignored")
		writeJSON(w, http.StatusOK, map[string]string{"ignored": "event " + event + " does not sync mirrors"})
		return
	case m.svc == nil:
		result("ignored")
		writeJSON(w, http.StatusOK, map[string]string{"ignored": "mirroring is not configured (--mirrors)"})
		return
	}
	push, err := github.ParsePush(body)
	if err != nil {
		result("malformed")
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	target, ok := m.svc.TargetOf(push.Repo)
	if !ok {
		result("ignored")
		writeJSON(w, http.StatusOK, map[string]string{"ignored": push.Repo + " is not mirrored by the mirrors file"})
		return
	}
	m.svc.TriggerAsync(push.Repo, target)
	result("accepted")
	writeJSON(w, http.StatusAccepted, map[string]string{"mirror": target, "source": push.Repo})
}

func (m *mirrors) handleList(w http.ResponseWriter, r *http.Request) {
	if m.svc == nil {
		writeJSON(w, http.StatusOK, api.MirrorList{Mirrors: []api.Mirror{}})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), mirrorStatusTimeout)
	defer cancel()
	list, err := m.svc.Status(ctx)
	if err != nil {
		writeError(w, http.StatusBadGateway, "gitea: "+err.Error())
		return
	}
	out := api.MirrorList{Enabled: true, Mirrors: make([]api.Mirror, 0, len(list))}
	for _, mi := range list {
		if !mi.LastSync.IsZero() {
			m.lastSync.WithLabelValues(mi.Target).Set(float64(mi.LastSync.UnixMilli()) / 1000)
		}
		out.Mirrors = append(out.Mirrors, mi)
	}
	writeJSON(w, http.StatusOK, out)
}

func (m *mirrors) handleSync(w http.ResponseWriter, r *http.Request) {
	if m.svc == nil {
		writeError(w, http.StatusNotFound, "mirroring is not configured (--mirrors)")
		return
	}
	target := r.PathValue("owner") + "/" + r.PathValue("repo")
	if !m.svc.Mirrors(target) {
		writeError(w, http.StatusNotFound, target+" is not a mirror of the mirrors file")
		return
	}
	if err := m.svc.Trigger(r.Context(), target); err != nil {
		writeError(w, http.StatusBadGateway, err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"mirror": target, "status": "sync queued in gitea"})
}

// registerMetrics adds the mirror series to reg.
func (m *mirrors) registerMetrics(reg *prometheus.Registry) {
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "raibid_mirror_sync_duration_seconds",
		Help:    "Time of mirror calls to Gitea: migrate (a first full clone) and mirror-sync (a queued fetch).",
		Buckets: []float64{.01, .05, .1, .5, 1, 5, 15, 60, 300, 900},
	}, []string{"op"})
	m.failures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "raibid_mirror_sync_errors_total",
		Help: "Failed mirror calls to Gitea, by operation.",
	}, []string{"op"})
	m.lastSync = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "raibid_mirror_last_sync_timestamp_seconds",
		Help: "Unix time of a mirror's last sync: Gitea's mirror_updated when read, else raibid's last successful call.",
	}, []string{"repo"})
	reg.MustRegister(m.duration, m.failures, m.lastSync)
}

// observe records one forge call of the mirror service.
func (m *mirrors) observe(op, target string, d time.Duration, err error) {
	m.duration.WithLabelValues(op).Observe(d.Seconds())
	if err != nil {
		m.failures.WithLabelValues(op).Inc()
		return
	}
	m.lastSync.WithLabelValues(strings.ToLower(target)).SetToCurrentTime()
}
