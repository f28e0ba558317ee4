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

// routeTable is the core API's routes, then the features' (feature.go).
func (s *Server) routeTable() []route {
	core := []route{
		{"POST", "/webhook/gitea", true, s.handleGiteaWebhook},
		{"GET", "/jobs", false, s.handleListJobs},
		{"POST", "/jobs", false, s.handleCreateJob},
		{"GET", "/jobs/{id}", false, s.handleGetJob},
		{"POST", "/jobs/{id}/cancel", false, s.handleCancelJob},
		{"POST", "/jobs/{id}/retry", false, s.handleRetryJob},
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
		{"GET", "/healthz", true, s.handleHealthz},
		{"GET", "/readyz", true, s.handleReadyz},
		{"GET", "/metrics", false, s.handleMetrics},
		{"GET", "/openapi.yaml", true, s.handleOpenAPI},
	}
	return append(core, s.featureRoutes...)
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
