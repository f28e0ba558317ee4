package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/api"
	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/store"
)

// storeError maps store errors to status codes.
func (s *Server) storeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ci.ErrNotFound):
		writeError(w, http.StatusNotFound, "job not found")
	case errors.Is(err, ci.ErrConflict):
		writeError(w, http.StatusConflict, userMessage(err))
	case errors.Is(err, ci.ErrInvalid):
		writeError(w, http.StatusBadRequest, userMessage(err))
	default:
		s.log.Error("store", "err", err)
		writeError(w, http.StatusServiceUnavailable, "job store unavailable")
	}
}

// userMessage keeps the human part of an error ("job x is success"),
// without the sentinel a package wrapped at its end (": ci: …").
func userMessage(err error) string {
	msg := err.Error()
	for _, sentinel := range []string{": ci:", ": secrets:"} {
		if i := strings.LastIndex(msg, sentinel); i > 0 {
			msg = msg[:i]
		}
	}
	return msg
}

var jobIDPattern = regexp.MustCompile(`^[0-9a-f]{20}$`)

// groupIDPattern is a group id as people give it: whole, or short.
var groupIDPattern = regexp.MustCompile(`^[0-9a-f]{4,20}$`)

// groupOf resolves a group id as people give it — the group's id, or a
// short id of it or of any member, as the CLI prints ("group b22b3b42") —
// to the group's full id. A full id no job has is returned as it is (a
// group with no members); an ambiguous short id is a ci.ErrInvalid.
func (s *Server) groupOf(ctx context.Context, g string) (string, error) {
	id, err := s.opts.Store.Resolve(ctx, g)
	if err != nil {
		return "", err
	}
	j, err := s.opts.Store.Get(ctx, id)
	switch {
	case errors.Is(err, ci.ErrNotFound):
		return id, nil
	case err != nil:
		return "", err
	case j.Group != "":
		return j.Group, nil
	}
	return id, nil
}

// jobID resolves the {id} of the path — a full id, or a short one copied
// from the dashboard or a page (see store.Resolve) — and answers 404, 400
// (an ambiguous short id, listing the matches) or 503 itself when it cannot.
func (s *Server) jobID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id, err := s.opts.Store.Resolve(r.Context(), r.PathValue("id"))
	if err != nil {
		var amb *store.AmbiguousError
		if errors.Is(err, ci.ErrInvalid) && !errors.As(err, &amb) {
			err = ci.ErrNotFound // not an id at all: no such job
		}
		s.storeError(w, err)
		return "", false
	}
	return id, true
}

// pathJob reads the job the {id} of the path names (see jobID), and
// answers 404, 400 or 503 itself when it cannot.
func (s *Server) pathJob(w http.ResponseWriter, r *http.Request) (*ci.Job, bool) {
	id, ok := s.jobID(w, r)
	if !ok {
		return nil, false
	}
	j, err := s.opts.Store.Get(r.Context(), id)
	if err != nil {
		s.storeError(w, err)
		return nil, false
	}
	return j, true
}

// jobFilter reads a job list's filters from a query (GET /jobs and the
// web list), or says in one line what is wrong with them.
func jobFilter(q url.Values) (store.Filter, string) {
	f := store.Filter{Status: ci.Status(q.Get("status")), Repo: strings.TrimSpace(q.Get("repo")),
		Branch: strings.TrimSpace(q.Get("branch")), Group: q.Get("group"), Event: q.Get("event"), Cursor: q.Get("cursor")}
	switch {
	case f.Group != "" && !groupIDPattern.MatchString(f.Group):
		return f, "group is not a group id (4 to 20 hex digits)"
	case f.Status != "" && !f.Status.Valid():
		return f, "status must be one of pending, running, success, failed, cancelled, error"
	case f.Event != "" && !ci.ValidEvent(f.Event):
		return f, "event must be one of push, pull_request, tag, manual, cron"
	case f.Cursor != "" && !jobIDPattern.MatchString(f.Cursor):
		return f, "cursor is not one this server gave out"
	}
	return f, ""
}

func (s *Server) handleListJobs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, bad := jobFilter(q)
	if bad != "" {
		writeError(w, http.StatusBadRequest, bad)
		return
	}
	if f.Group != "" {
		var err error
		f.Group, err = s.groupOf(r.Context(), f.Group)
		if errors.Is(err, ci.ErrNotFound) {
			writeError(w, http.StatusNotFound, "group not found")
			return
		}
		if err != nil {
			s.storeError(w, err)
			return
		}
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 500 {
			writeError(w, http.StatusBadRequest, "limit must be a number from 1 to 500")
			return
		}
		f.Limit = n
	}
	jobs, next, err := s.opts.Store.List(r.Context(), f)
	if err != nil {
		s.storeError(w, err)
		return
	}
	page := api.JobPage{Jobs: make([]ci.Job, len(jobs)), NextCursor: next}
	for i, j := range jobs {
		page.Jobs[i] = *j
	}
	writeJSON(w, http.StatusOK, page)
}

func (s *Server) handleGetJob(w http.ResponseWriter, r *http.Request) {
	j, ok := s.pathJob(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, j)
}

func (s *Server) handleCreateJob(w http.ResponseWriter, r *http.Request) {
	var req api.NewJob
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body must be JSON {repo, branch, clone_url?, commit?, event?, tag?, base?, pr?, author?, message?}: "+err.Error())
		return
	}
	if err := ci.CheckRepo(req.Repo); err != nil {
		writeError(w, http.StatusBadRequest, userMessage(err))
		return
	}
	job, msg := manualJob(req)
	if msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	if req.CloneURL == "" {
		if s.opts.GiteaURL == "" {
			writeError(w, http.StatusBadRequest, "clone_url is required when no Gitea URL is configured")
			return
		}
		job.CloneURL = strings.TrimRight(s.opts.GiteaURL, "/") + "/" + req.Repo + ".git"
	}
	if job.Commit == "" && s.opts.Heads != nil {
		if err := ci.CheckBranch(job.Branch); err != nil {
			writeError(w, http.StatusBadRequest, userMessage(err))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
		sha, err := s.opts.Heads.BranchHead(ctx, job.Repo, job.CloneURL, job.Branch)
		cancel()
		switch {
		case errors.Is(err, ci.ErrNotFound):
			writeError(w, http.StatusBadRequest, "branch "+job.Branch+" does not exist in "+job.Repo)
			return
		case err != nil:
			s.log.Warn("resolve branch head", "repo", job.Repo, "branch", job.Branch, "err", err)
			writeError(w, http.StatusBadGateway, "cannot find the head of "+job.Branch+": "+userMessage(err))
			return
		}
		job.Commit = sha
	}
	sub, err := s.submitEvent(r.Context(), job, "")
	if err != nil {
		s.storeError(w, err)
		return
	}
	j, err := s.opts.Store.Get(r.Context(), sub.ID)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, j)
}

// manualJob is the job a POST /jobs asks for, run as its event (manual by
// default), or why it cannot be made.
func manualJob(req api.NewJob) (*ci.Job, string) {
	if len(req.Author) > 256 || len(req.Message) > 16<<10 {
		return nil, "author is at most 256 bytes, message at most 16 KiB"
	}
	job := &ci.Job{Repo: req.Repo, CloneURL: req.CloneURL, Branch: req.Branch, Commit: req.Commit, Trigger: ci.TriggerManual, Event: req.Event,
		Author: req.Author, Message: req.Message}
	if job.Event == "" {
		job.Event = ci.EventManual
	}
	if req.Tag != "" && job.Event != ci.EventTag {
		return nil, "tag is only for event tag"
	}
	if (req.Base != "" || req.PR != 0) && job.Event != ci.EventPullRequest {
		return nil, "base and pr are only for event pull_request"
	}
	switch job.Event {
	case ci.EventManual, ci.EventPush, ci.EventCron:
	case ci.EventTag:
		if err := ci.CheckTag(req.Tag); err != nil {
			return nil, "event tag needs a tag: " + userMessage(err)
		}
		if req.Commit == "" {
			return nil, "event tag needs the commit the tag names"
		}
		job.Tag, job.Branch = req.Tag, ""
		return job, ""
	case ci.EventPullRequest:
		if err := ci.CheckBranch(req.Base); err != nil {
			return nil, "event pull_request needs base, the branch it would land on: " + userMessage(err)
		}
		job.PullRequest = &ci.PullRequest{Number: max(req.PR, 1), BaseBranch: req.Base, HeadBranch: req.Branch}
	default:
		return nil, fmt.Sprintf("event %q is not push, tag, pull_request, cron or manual", req.Event)
	}
	if job.Branch == "" {
		return nil, "branch is required"
	}
	return job, ""
}

func (s *Server) handleCancelJob(w http.ResponseWriter, r *http.Request) {
	id, ok := s.jobID(w, r)
	if !ok {
		return
	}
	j, err := s.cancelJob(r.Context(), id)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

func (s *Server) handleRetryJob(w http.ResponseWriter, r *http.Request) {
	id, ok := s.jobID(w, r)
	if !ok {
		return
	}
	j, err := s.retry(r.Context(), id)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, j)
}

func (s *Server) handleQueue(w http.ResponseWriter, r *http.Request) {
	st, err := s.opts.Queue.Stats(r.Context())
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.QueueStats(st))
}
