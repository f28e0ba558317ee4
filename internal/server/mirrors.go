package server

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/raibid-labs/raibid-ci/internal/api"
	"github.com/raibid-labs/raibid-ci/internal/forge/github"
)

// mirrorStatusTimeout bounds GET /mirrors' calls to Gitea.
const mirrorStatusTimeout = 10 * time.Second

// handleGitHubSyncWebhook maps a signed GitHub push to its Gitea mirror and
// asks Gitea to sync it in the background: GitHub waits for the answer (and
// gives up after 10 s), Gitea's mirror-sync only queues, so the answer never
// waits for it.
func (s *Server) handleGitHubSyncWebhook(w http.ResponseWriter, r *http.Request) {
	result := func(res string) { s.metrics.webhooks.WithLabelValues("github", res).Inc() }
	body, release, ok := s.readWebhookBody(w, r, github.HeaderSignature, result)
	if !ok {
		return
	}
	defer release()
	secret := s.opts.GitHubWebhookSecret
	if secret == "" {
		secret = s.opts.WebhookSecret
	}
	if !github.ValidSignature([]byte(secret), body, r.Header.Get(github.HeaderSignature)) {
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
	case s.opts.Mirrors == nil:
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
	target, ok := s.opts.Mirrors.TargetOf(push.Repo)
	if !ok {
		result("ignored")
		writeJSON(w, http.StatusOK, map[string]string{"ignored": push.Repo + " is not mirrored by the mirrors file"})
		return
	}
	s.opts.Mirrors.TriggerAsync(push.Repo, target)
	result("accepted")
	writeJSON(w, http.StatusAccepted, map[string]string{"mirror": target, "source": push.Repo})
}

func (s *Server) handleListMirrors(w http.ResponseWriter, r *http.Request) {
	if s.opts.Mirrors == nil {
		writeJSON(w, http.StatusOK, api.MirrorList{Mirrors: []api.Mirror{}})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), mirrorStatusTimeout)
	defer cancel()
	list, err := s.opts.Mirrors.Status(ctx)
	if err != nil {
		writeError(w, http.StatusBadGateway, "gitea: "+err.Error())
		return
	}
	out := api.MirrorList{Enabled: true, Mirrors: make([]api.Mirror, 0, len(list))}
	for _, m := range list {
		if !m.LastSync.IsZero() {
			s.metrics.mirrorLastSync.WithLabelValues(m.Target).Set(float64(m.LastSync.UnixMilli()) / 1000)
		}
		out.Mirrors = append(out.Mirrors, m)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleSyncMirror(w http.ResponseWriter, r *http.Request) {
	if s.opts.Mirrors == nil {
		writeError(w, http.StatusNotFound, "mirroring is not configured (--mirrors)")
		return
	}
	target := r.PathValue("owner") + "/" + r.PathValue("repo")
	if !s.opts.Mirrors.Mirrors(target) {
		writeError(w, http.StatusNotFound, target+" is not a mirror of the mirrors file")
		return
	}
	if err := s.opts.Mirrors.Trigger(r.Context(), target); err != nil {
		writeError(w, http.StatusBadGateway, err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"mirror": target, "status": "sync queued in gitea"})
}

// registerMirrorMetrics adds the mirror module's series.
func (m *metrics) registerMirrorMetrics(reg *prometheus.Registry) {
	m.mirrorDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "raibid_mirror_sync_duration_seconds",
		Help:    "Time of mirror calls to Gitea: migrate (a first full clone) and mirror-sync (a queued fetch).",
		Buckets: []float64{.01, .05, .1, .5, 1, 5, 15, 60, 300, 900},
	}, []string{"op"})
	m.mirrorErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "raibid_mirror_sync_errors_total",
		Help: "Failed mirror calls to Gitea, by operation.",
	}, []string{"op"})
	m.mirrorLastSync = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "raibid_mirror_last_sync_timestamp_seconds",
		Help: "Unix time of a mirror's last sync: Gitea's mirror_updated when read, else raibid's last successful call.",
	}, []string{"repo"})
	reg.MustRegister(m.mirrorDuration, m.mirrorErrors, m.mirrorLastSync)
}

// observeMirror records one forge call of the mirror service.
func (m *metrics) observeMirror(op, target string, d time.Duration, err error) {
	m.mirrorDuration.WithLabelValues(op).Observe(d.Seconds())
	if err != nil {
		m.mirrorErrors.WithLabelValues(op).Inc()
		return
	}
	m.mirrorLastSync.WithLabelValues(strings.ToLower(target)).SetToCurrentTime()
}
