package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/raibid-labs/raibid-ci/internal/api"
)

// Scaler changes how many agents may run: the local pool of `raibid up`, or
// the ScaledJob's maxReplicaCount on Kubernetes.
type Scaler interface {
	MaxAgents(ctx context.Context) (int, error)
	SetMaxAgents(ctx context.Context, n int) error
}

// MaxScale bounds PUT /scale: one box does not run more agents than this.
const MaxScale = 256

func (s *Server) handleGetScale(w http.ResponseWriter, r *http.Request) {
	if s.opts.Scaler == nil {
		writeError(w, http.StatusNotImplemented, "this server does not manage agents (run agents yourself or use raibid up)")
		return
	}
	n, err := s.opts.Scaler.MaxAgents(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "scaler: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, api.Scale{MaxAgents: &n})
}

func (s *Server) handleSetScale(w http.ResponseWriter, r *http.Request) {
	if s.opts.Scaler == nil {
		writeError(w, http.StatusNotImplemented, "this server does not manage agents (run agents yourself or use raibid up)")
		return
	}
	var req api.Scale
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.MaxAgents == nil {
		writeError(w, http.StatusBadRequest, `body must be {"max_agents": N}`)
		return
	}
	if *req.MaxAgents < 0 || *req.MaxAgents > MaxScale {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("max_agents must be from 0 to %d", MaxScale))
		return
	}
	if err := s.opts.Scaler.SetMaxAgents(r.Context(), *req.MaxAgents); err != nil {
		writeError(w, http.StatusServiceUnavailable, "scaler: "+err.Error())
		return
	}
	s.log.Info("agents scaled", "max_agents", *req.MaxAgents)
	writeJSON(w, http.StatusOK, req)
}
