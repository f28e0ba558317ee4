package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/raibid-labs/raibid-ci/internal/api"
	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/schedule"
)

// Schedules serves /schedules and fires the due ones (a control loop, once
// across every server sharing the Redis). A nil st is a server that runs
// no schedules: the routes answer 501.
func Schedules(st *schedule.Store) Feature { return &schedules{st: st} }

type schedules struct {
	s  *Server
	st *schedule.Store
}

func (f *schedules) attach(s *Server) featureParts {
	f.s = s
	parts := featureParts{routes: []route{
		{"GET", "/schedules", false, f.handleList},
		{"POST", "/schedules", false, f.handleAdd},
		{"DELETE", "/schedules/{id}", false, f.handleRemove},
	}}
	if f.st != nil {
		parts.loops = []controlLoop{{"schedules", func(ctx context.Context) { f.st.Run(ctx, s.submitScheduled, s.log) }}}
	}
	return parts
}

// submitScheduled queues a schedule's job; its clone URL defaults to the
// configured Gitea's, its commit to the branch head when it can be told.
func (s *Server) submitScheduled(ctx context.Context, j *ci.Job) (string, error) {
	if j.CloneURL == "" && s.opts.GiteaURL != "" {
		j.CloneURL = strings.TrimRight(s.opts.GiteaURL, "/") + "/" + j.Repo + ".git"
	}
	if s.opts.Heads != nil {
		if sha, err := s.opts.Heads.BranchHead(ctx, j.Repo, j.CloneURL, j.Branch); err == nil {
			j.Commit = sha
		}
	}
	sub, err := s.submitEvent(ctx, j, "")
	return sub.ID, err
}

func (f *schedules) store(w http.ResponseWriter) (*schedule.Store, bool) {
	if f.st == nil {
		writeError(w, http.StatusNotImplemented, "this server runs no schedules")
		return nil, false
	}
	return f.st, true
}

func (f *schedules) handleList(w http.ResponseWriter, r *http.Request) {
	s := f.s
	st, ok := f.store(w)
	if !ok {
		return
	}
	list, err := st.List(r.Context())
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"schedules": list})
}

func (f *schedules) handleAdd(w http.ResponseWriter, r *http.Request) {
	s := f.s
	st, ok := f.store(w)
	if !ok {
		return
	}
	var req api.NewSchedule
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body must be JSON {repo, branch, cron, clone_url?}: "+err.Error())
		return
	}
	sc, err := st.Add(r.Context(), schedule.Schedule{Repo: req.Repo, Branch: req.Branch, Cron: req.Cron, CloneURL: req.CloneURL})
	if err != nil {
		s.storeError(w, err)
		return
	}
	s.log.Info("schedule added", "schedule", sc.ID, "repo", sc.Repo, "branch", sc.Branch, "cron", sc.Cron)
	writeJSON(w, http.StatusCreated, sc)
}

func (f *schedules) handleRemove(w http.ResponseWriter, r *http.Request) {
	s := f.s
	st, ok := f.store(w)
	if !ok {
		return
	}
	if err := st.Remove(r.Context(), r.PathValue("id")); err != nil {
		if errors.Is(err, ci.ErrNotFound) {
			writeError(w, http.StatusNotFound, "schedule not found")
			return
		}
		s.storeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
