package server

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/forge"
	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
	"github.com/raibid-labs/raibid-ci/internal/store"
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
	var decision gitea.Decision
	var err error
	switch event {
	case "push":
		decision, err = gitea.ParsePush(body)
	case "pull_request":
		decision, err = gitea.ParsePullRequest(body)
	case "create":
		decision, err = gitea.ParseCreate(body)
	default:
		result("ignored")
		if event == "" {
			event = "(none)"
		}
		writeJSON(w, http.StatusOK, map[string]string{"ignored": "event " + event + " does not start builds"})
		return
	}
	if err != nil {
		result("malformed")
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	delivery := r.Header.Get(gitea.HeaderDelivery)
	var job *ci.Job
	switch {
	case decision.Closed != nil:
		s.closePullRequest(w, r, decision.Closed, result)
		return
	case decision.PullRequest != nil:
		job = pullRequestJob(decision.PullRequest)
	case decision.Push != nil:
		job = pushJob(decision.Push)
		if job.Event == ci.EventTag {
			// A new tag arrives twice (its push and Gitea's create event):
			// one build, whichever comes first.
			delivery = "tag:" + job.Repo + ":" + job.Tag + ":" + job.Commit
		}
	default:
		result("ignored")
		writeJSON(w, http.StatusOK, map[string]string{"ignored": decision.Ignored})
		return
	}
	sub, err := s.submitEvent(r.Context(), job, delivery)
	if errors.Is(err, ci.ErrInvalid) {
		// A commit, branch or clone URL raibid will not hand to git: no
		// redelivery can fix it.
		result("malformed")
		writeError(w, http.StatusBadRequest, userMessage(err))
		return
	}
	if err != nil {
		result("unavailable")
		s.log.Error("webhook: store job", "repo", job.Repo, "err", err)
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "job store unavailable, deliver again later")
		return
	}
	if !sub.Created {
		result("duplicate")
		writeJSON(w, http.StatusAccepted, map[string]any{"job_id": sub.ID, "duplicate": true})
		return
	}
	result("accepted")
	s.log.Info("job queued", "job_id", sub.ID, "event", job.Event, "repo", job.Repo, "branch", job.Branch, "tag", job.Tag, "commit", job.Commit)
	writeJSON(w, http.StatusAccepted, map[string]any{"job_id": sub.ID})
}

// pushJob is the job of a branch or tag push.
func pushJob(p *gitea.Push) *ci.Job {
	j := &ci.Job{Repo: p.Repo, CloneURL: p.CloneURL, Branch: p.Branch, Tag: p.Tag, Commit: p.Commit,
		Before: p.Before, Changed: p.Changed, Author: p.Author, Message: p.Message,
		Trigger: ci.TriggerPush, Event: ci.EventPush}
	if p.Tag != "" {
		j.Event = ci.EventTag
	}
	return j
}

// pullRequestJob is the job of a pull request's head commit, in the base
// repository's name, cloned from the head repository.
func pullRequestJob(pr *gitea.PullRequest) *ci.Job {
	return &ci.Job{Repo: pr.Repo, CloneURL: pr.CloneURL, Branch: pr.HeadBranch, Commit: pr.Commit,
		Before: pr.BaseCommit, Author: pr.Author, Message: pr.Title, Trigger: ci.TriggerPush, Event: ci.EventPullRequest,
		PullRequest: &ci.PullRequest{Number: pr.Number, BaseBranch: pr.BaseBranch, HeadBranch: pr.HeadBranch, FromFork: pr.FromFork}}
}

// closePullRequest cancels the queued and running jobs of a closed pull
// request (its later pushes no longer matter).
func (s *Server) closePullRequest(w http.ResponseWriter, r *http.Request, pr *gitea.PullRequest, result func(string)) {
	var cancelled []string
	for _, st := range []ci.Status{ci.StatusPending, ci.StatusRunning} {
		cursor := ""
		for range 20 { // bounded: the status index holds only live jobs of this status
			page, next, err := s.opts.Store.List(r.Context(), store.Filter{Status: st, Repo: pr.Repo, Limit: 500, Cursor: cursor})
			if err != nil {
				result("unavailable")
				w.Header().Set("Retry-After", "5")
				writeError(w, http.StatusServiceUnavailable, "job store unavailable, deliver again later")
				return
			}
			for _, j := range page {
				if j.PullRequest == nil || j.PullRequest.Number != pr.Number {
					continue
				}
				if _, err := s.cancelJob(r.Context(), j.ID); err == nil {
					cancelled = append(cancelled, j.ID)
				}
			}
			if next == "" {
				break
			}
			cursor = next
		}
	}
	result("accepted")
	s.log.Info("pull request closed", "repo", pr.Repo, "number", pr.Number, "cancelled", len(cancelled))
	writeJSON(w, http.StatusOK, map[string]any{"closed": pr.Number, "cancelled": cancelled})
}

// postPending tells the forge the commit is queued. With the status
// outbox (internal/statuses) it is stored after the answer, in the
// background, marked as decided when the job was made, so the verdict —
// decided later — is never replaced by it however late it is stored; the
// answer pays nothing for it.
func (s *Server) postPending(jobID, repo, commit, statusContext string) {
	if s.opts.Status == nil || commit == "" {
		return
	}
	st := gitea.CommitStatus{State: gitea.StatePending, TargetURL: ci.PageURL(s.opts.PublicURL, jobID), Description: "queued", Context: statusContext}
	store := func(post func(context.Context) error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := post(ctx); err != nil {
			s.log.Warn("pending commit status not stored", "job_id", jobID, "err", err)
		}
	}
	if box, ok := s.opts.Status.(decidedPoster); ok {
		decided := ci.IDTime(jobID)
		s.background.Go(func() {
			store(func(ctx context.Context) error { return box.PostStatusDecided(ctx, repo, commit, st, decided) })
		})
		return
	}
	// A poster without decision times: in order, before the answer.
	store(func(ctx context.Context) error { return s.opts.Status.PostStatus(ctx, repo, commit, st) })
}

// decidedPoster stores a status decided before it is stored (the outbox).
type decidedPoster interface {
	PostStatusDecided(ctx context.Context, repo, sha string, st gitea.CommitStatus, decided time.Time) error
}
