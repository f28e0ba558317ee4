package server

import (
	"context"
	"errors"
	"net/http"
	"time"

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
	body, release, ok := s.readWebhookBody(w, r, gitea.HeaderSignature, result)
	if !ok {
		return
	}
	defer release()
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
	id, created, err := s.opts.Jobs.Submit(r.Context(), job, r.Header.Get(gitea.HeaderDelivery))
	if errors.Is(err, ci.ErrInvalid) {
		// A commit, branch or clone URL raibid will not hand to git: no
		// redelivery can fix it.
		result("malformed")
		writeError(w, http.StatusBadRequest, userMessage(err))
		return
	}
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
	s.log.Info("job queued", "job_id", id, "repo", p.Repo, "branch", p.Branch, "commit", p.Commit)
	writeJSON(w, http.StatusAccepted, map[string]string{"job_id": id})
}

// postPending tells the forge the commit is queued, in the background: the
// webhook answer must not wait for the forge, and a forge outage is retried
// by the client and then only logged.
func (s *Server) postPending(jobID, repo, commit string) {
	if s.opts.Status == nil || commit == "" {
		return
	}
	target := ci.PageURL(s.opts.PublicURL, jobID)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := s.opts.Status.PostStatus(ctx, repo, commit, gitea.CommitStatus{
			State: gitea.StatePending, TargetURL: target, Description: "queued", Context: gitea.StatusContext,
		})
		if err != nil {
			s.log.Warn("pending commit status not posted", "job_id", jobID, "err", err)
		}
	}()
}
