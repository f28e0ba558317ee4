package server

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/raibid-labs/raibid-ci/internal/secrets"
)

// Pipeline secrets: names and times go out, values only come in. The routes
// need the API token itself — they are refused when no token is configured
// (an open API must not hand out write access to credentials) — and no web
// page reaches them.

func (s *Server) secretsReady(w http.ResponseWriter) bool {
	switch {
	case s.opts.APIToken == "":
		writeError(w, http.StatusForbidden, "pipeline secrets need an API token on the server (RAIBID_API_TOKEN or --api-token-file)")
		return false
	case s.opts.Secrets == nil:
		writeError(w, http.StatusNotImplemented, "pipeline secrets need a key: start the server with --secrets-key-file (raibid up makes one)")
		return false
	}
	return true
}

// secretScope is the scope of /repos/{owner}/{repo}/secrets or
// /orgs/{owner}/secrets, once the secrets API may answer at all; ok false
// means the answer was written.
func (s *Server) secretScope(w http.ResponseWriter, r *http.Request) (sc secrets.Scope, ok bool) {
	if !s.secretsReady(w) {
		return sc, false
	}
	var err error
	if repo := r.PathValue("repo"); repo != "" {
		sc, err = secrets.RepoScope(r.PathValue("owner") + "/" + repo)
	} else {
		sc, err = secrets.OrgScope(r.PathValue("owner"))
	}
	if err != nil {
		s.secretError(w, err)
		return sc, false
	}
	return sc, true
}

func (s *Server) secretError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, secrets.ErrInvalid):
		writeError(w, http.StatusBadRequest, userMessage(err))
	case errors.Is(err, secrets.ErrNotFound):
		writeError(w, http.StatusNotFound, userMessage(err))
	default:
		s.log.Error("secrets", "err", err)
		writeError(w, http.StatusServiceUnavailable, "secret store unavailable")
	}
}

func (s *Server) handleListSecrets(w http.ResponseWriter, r *http.Request) {
	sc, ok := s.secretScope(w, r)
	if !ok {
		return
	}
	list, err := s.opts.Secrets.List(r.Context(), sc)
	if err != nil {
		s.secretError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

// secretBody is PUT's body: the value, which is never sent back.
type secretBody struct {
	Value string `json:"value"`
}

func (s *Server) handlePutSecret(w http.ResponseWriter, r *http.Request) {
	sc, ok := s.secretScope(w, r)
	if !ok {
		return
	}
	var body secretBody
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 2*secrets.MaxValue+1024))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		// The decoder's message could quote the value: say only what is wrong.
		writeError(w, http.StatusBadRequest, `body must be JSON {"value": "..."}`)
		return
	}
	meta, err := s.opts.Secrets.Set(r.Context(), sc, r.PathValue("name"), body.Value)
	if err != nil {
		s.secretError(w, err)
		return
	}
	s.log.Info("secret set", "scope", meta.Scope, "name", meta.Name)
	writeJSON(w, http.StatusOK, meta)
}

func (s *Server) handleDeleteSecret(w http.ResponseWriter, r *http.Request) {
	sc, ok := s.secretScope(w, r)
	if !ok {
		return
	}
	if err := s.opts.Secrets.Delete(r.Context(), sc, r.PathValue("name")); err != nil {
		s.secretError(w, err)
		return
	}
	s.log.Info("secret removed", "scope", sc.String(), "name", r.PathValue("name"))
	w.WriteHeader(http.StatusNoContent)
}

// handleRotateSecretsKey re-encrypts every secret under a new key (or, when
// the key file is read-only, under the key the operator put first in it).
func (s *Server) handleRotateSecretsKey(w http.ResponseWriter, r *http.Request) {
	if !s.secretsReady(w) {
		return
	}
	changed, newKey, err := secrets.Rotate(r.Context(), s.opts.SecretsKeyFile, s.opts.Secrets)
	if err != nil {
		s.secretError(w, err)
		return
	}
	s.log.Info("secrets key rotated", "reencrypted", changed, "new_key", newKey)
	writeJSON(w, http.StatusOK, map[string]any{"reencrypted": changed, "new_key": newKey})
}
