package server

import (
	"net/http"
)

// route is one entry of the API; the table is also what the OpenAPI test
// checks, so a route cannot be added without documenting it.
type route struct {
	method, pattern string
	// public routes need no bearer token (webhooks carry signatures).
	public  bool
	handler http.HandlerFunc
}

func (s *Server) routeTable() []route {
	return []route{
		{"POST", "/webhook/gitea", true, s.handleGiteaWebhook},
		{"POST", "/webhook/github-sync", true, s.handleGitHubSyncWebhook},
		{"GET", "/jobs", false, s.handleListJobs},
		{"POST", "/jobs", false, s.handleCreateJob},
		{"GET", "/jobs/{id}", false, s.handleGetJob},
		{"POST", "/jobs/{id}/cancel", false, s.handleCancelJob},
		{"POST", "/jobs/{id}/retry", false, s.handleRetryJob},
		{"PUT", "/jobs/{id}/artifacts/{name}", true, s.handlePutArtifact},
		{"GET", "/jobs/{id}/artifacts", false, s.handleListArtifacts},
		{"GET", "/jobs/{id}/artifacts/{name}", false, s.handleGetArtifact},
		{"POST", "/groups/{id}/cancel", false, s.handleCancelGroup},
		{"POST", "/groups/{id}/retry", false, s.handleRetryGroup},
		{"GET", "/jobs/{id}/logs", false, s.handleLogs},
		{"GET", "/jobs/{id}/logs/stream", false, s.handleLogStream},
		{"GET", "/agents", false, s.handleAgents},
		{"GET", "/queue", false, s.handleQueue},
		{"GET", "/dead-letters", false, s.handleDeadLetters},
		{"POST", "/dead-letters/{id}/requeue", false, s.handleRequeueDeadLetter},
		{"GET", "/events", false, s.handleEvents},
		{"GET", "/system", false, s.handleSystem},
		{"GET", "/scale", false, s.handleGetScale},
		{"PUT", "/scale", false, s.handleSetScale},
		{"GET", "/mirrors", false, s.handleListMirrors},
		{"POST", "/mirrors/{owner}/{repo}/sync", false, s.handleSyncMirror},
		{"GET", "/repos/{owner}/{repo}/secrets", false, s.handleListSecrets},
		{"PUT", "/repos/{owner}/{repo}/secrets/{name}", false, s.handlePutSecret},
		{"DELETE", "/repos/{owner}/{repo}/secrets/{name}", false, s.handleDeleteSecret},
		{"GET", "/orgs/{owner}/secrets", false, s.handleListSecrets},
		{"PUT", "/orgs/{owner}/secrets/{name}", false, s.handlePutSecret},
		{"DELETE", "/orgs/{owner}/secrets/{name}", false, s.handleDeleteSecret},
		{"POST", "/secrets/rotate-key", false, s.handleRotateSecretsKey},
		{"GET", "/schedules", false, s.handleListSchedules},
		{"POST", "/schedules", false, s.handleAddSchedule},
		{"DELETE", "/schedules/{id}", false, s.handleRemoveSchedule},
		{"GET", "/healthz", true, s.handleHealthz},
		{"GET", "/readyz", true, s.handleReadyz},
		{"GET", "/metrics", false, s.handleMetrics},
		{"GET", "/openapi.yaml", true, s.handleOpenAPI},
	}
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	for _, r := range s.routeTable() {
		h := http.Handler(r.handler)
		if !r.public {
			h = s.requireToken(h)
		}
		mux.Handle(r.method+" "+r.pattern, s.instrument(r.pattern, h))
	}
	s.uiRoutes(mux)
	mux.Handle("/", s.instrument("other", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such route: "+r.Method+" "+r.URL.Path)
	})))
	return s.logRequests(mux)
}
