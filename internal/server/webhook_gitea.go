package server

import (
	"errors"
	"io"
	"net/http"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/forge"
	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
)

// handleGiteaWebhook turns a signed push into a queued job. The order of
// checks is the order of cheapness and of trust: size, signature, event,
// payload. Only after Redis confirms the job is stored does it answer 202;
// when Redis is down it answers 503 so Gitea delivers again later.
func (s *Server) handleGiteaWebhook(w http.ResponseWriter, r *http.Request) {
	result := func(res string) { s.metrics.webhooks.WithLabelValues("gitea", res).Inc() }
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			result("too_large")
			writeError(w, http.StatusRequestEntityTooLarge, "webhook body is larger than the limit")
			return
		}
		result("malformed")
		writeError(w, http.StatusBadRequest, "could not read webhook body")
		return
	}
	if !forge.ValidHMACSHA256([]byte(s.opts.WebhookSecret), body, r.Header.Get(gitea.HeaderSignature)) {
		result("unauthorized")
		writeError(w, http.StatusUnauthorized, "missing or invalid "+gitea.HeaderSignature)
		return
	}
	event := r.Header.Get(gitea.HeaderEvent)
	if event == "" {
		event = r.Header.Get("X-Gogs-Event")
	}
	if event != "push" {
		result("ignored")
		if event == "" {
			event = "(none)"
		}
		writeJSON(w, http.StatusOK, map[string]string{"ignored": "event " + event + " does not start builds"})
		return
	}
	decision, err := gitea.ParsePush(body)
	if err != nil {
		result("malformed")
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if decision.Push == nil {
		result("ignored")
		writeJSON(w, http.StatusOK, map[string]string{"ignored": decision.Ignored})
		return
	}
	p := decision.Push
	job := &ci.Job{
		Repo: p.Repo, CloneURL: p.CloneURL, Branch: p.Branch, Commit: p.Commit,
		Author: p.Author, Message: p.Message, Trigger: ci.TriggerPush,
	}
	id, created, err := s.opts.Store.Submit(r.Context(), job, r.Header.Get(gitea.HeaderDelivery))
	if err != nil {
		result("unavailable")
		s.log.Error("webhook: store job", "repo", p.Repo, "err", err)
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "job store unavailable, deliver again later")
		return
	}
	if !created {
		result("duplicate")
		writeJSON(w, http.StatusAccepted, map[string]any{"job_id": id, "duplicate": true})
		return
	}
	result("accepted")
	s.metrics.enqueued.WithLabelValues(ci.TriggerPush).Inc()
	s.log.Info("job queued", "job_id", id, "repo", p.Repo, "branch", p.Branch, "commit", p.Commit)
	writeJSON(w, http.StatusAccepted, map[string]string{"job_id": id})
}
