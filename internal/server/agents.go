package server

import (
	"context"
	"net/http"

	"github.com/raibid-labs/raibid-ci/internal/api"
	"github.com/raibid-labs/raibid-ci/internal/kube"
	"github.com/raibid-labs/raibid-ci/internal/store"
)

// PodLister lists agent pods (Kubernetes mode) for GET /agents.
type PodLister interface {
	AgentPods(ctx context.Context) ([]kube.Pod, error)
}

// agentRow is a to GET /agents's row, with its pod's phase in Kubernetes
// mode.
func agentRow(a store.Agent, phase string) api.Agent {
	return api.Agent{Name: a.Name, Status: a.Status, CurrentJob: a.CurrentJob, StartedAt: a.StartedAt,
		LastSeen: a.LastSeen, Host: a.Host, Sandbox: a.Sandbox, Phase: phase, GPUs: a.GPUs, GPUsBusy: a.GPUsBusy}
}

func (s *Server) handleAgents(w http.ResponseWriter, r *http.Request) {
	agents, err := s.opts.Store.Agents(r.Context())
	if err != nil {
		s.storeError(w, err)
		return
	}
	out := api.AgentList{Agents: make([]api.Agent, 0, len(agents))}
	if s.opts.Pods == nil {
		for _, a := range agents {
			out.Agents = append(out.Agents, agentRow(a, ""))
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	pods, err := s.opts.Pods.AgentPods(r.Context())
	if err != nil {
		writeError(w, http.StatusBadGateway, "kubernetes: "+err.Error())
		return
	}
	byName := map[string]store.Agent{}
	for _, a := range agents {
		byName[a.Name] = a
	}
	for _, p := range pods {
		// An agent pod heartbeats under its pod name (RAIBID_NAME).
		a, ok := byName[p.Name]
		delete(byName, p.Name)
		if !ok {
			a = store.Agent{Name: p.Name, Status: p.Phase, CurrentJob: p.JobID, StartedAt: p.StartedAt}
		}
		if a.Host == "" {
			a.Host = p.Node
		}
		out.Agents = append(out.Agents, agentRow(a, p.Phase))
	}
	for _, a := range agents { // agents outside the cluster, still heartbeating
		if _, left := byName[a.Name]; left {
			out.Agents = append(out.Agents, agentRow(a, ""))
		}
	}
	writeJSON(w, http.StatusOK, out)
}
