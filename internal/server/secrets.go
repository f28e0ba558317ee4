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

// Secrets serves the pipeline secrets API over st, whose key file is
// keyFile (rotate-key writes it). A nil st is the API off: its routes
// answer 501 and say how to turn it on.
func Secrets(st *secrets.Store, keyFile string) Feature {
	return &secretsAPI{st: st, keyFile: keyFile}
}

type secretsAPI struct {
	s       *Server
	st      *secrets.Store
	keyFile string
}

func (f *secretsAPI) attach(s *Server) featureParts {
	f.s = s
	return featureParts{routes: []route{
		{"GET", "/repos/{owner}/{repo}/secrets", false, f.handleList},
		{"PUT", "/repos/{owner}/{repo}/secrets/{name}", false, f.handlePut},
		{"DELETE", "/repos/{owner}/{repo}/secrets/{name}", false, f.handleDelete},
		{"GET", "/orgs/{owner}/secrets", false, f.handleList},
		{"PUT", "/orgs/{owner}/secrets/{name}", false, f.handlePut},
		{"DELETE", "/orgs/{owner}/secrets/{name}", false, f.handleDelete},
		{"POST", "/secrets/rotate-key", false, f.handleRotateKey},
	}}
}

func (f *secretsAPI) ready(w http.ResponseWriter) bool {
	switch {
	case f.s.opts.APIToken == "":
		writeError(w, http.StatusForbidden, "pipeline secrets need an API token on the server (RAIBID_API_TOKEN or --api-token-file)")
		return false
	case f.st == nil:
		writeError(w, http.StatusNotImplemented, "pipeline secrets need a key: start the server with --secrets-key-file (raibid up makes one)")
		return false
	}
	return true
}

// scope is the scope of /repos/{owner}/{repo}/secrets or
// /orgs/{owner}/secrets, once the secrets API may answer at all; ok false
// means the answer was written.
func (f *secretsAPI) scope(w http.ResponseWriter, r *http.Request) (sc secrets.Scope, ok bool) {
	if !f.ready(w) {
		return sc, false
	}
	var err error
	if repo := r.PathValue("repo"); repo != "" {
		sc, err = secrets.RepoScope(r.PathValue("owner") + "/" + repo)
	} else {
		sc, err = secrets.OrgScope(r.PathValue("owner"))
	}
	if err != nil {
		f.fail(w, err)
		return sc, false
	}
	return sc, true
}

func (f *secretsAPI) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, secrets.ErrInvalid):
		writeError(w, http.StatusBadRequest, userMessage(err))
	case errors.Is(err, secrets.ErrNotFound):
		writeError(w, http.StatusNotFound, userMessage(err))
	default:
		f.s.log.Error("secrets", "err", err)
		writeError(w, http.StatusServiceUnavailable, "secret store unavailable")
	}
}

func (f *secretsAPI) handleList(w http.ResponseWriter, r *http.Request) {
	sc, ok := f.scope(w, r)
	if !ok {
		return
	}
	list, err := f.st.List(r.Context(), sc)
	if err != nil {
		f.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

// secretBody is PUT's body: the value, which is never sent back.
type secretBody struct {
	Value string `json:"value"`
}

func (f *secretsAPI) handlePut(w http.ResponseWriter, r *http.Request) {
	sc, ok := f.scope(w, r)
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
	meta, err := f.st.Set(r.Context(), sc, r.PathValue("name"), body.Value)
	if err != nil {
		f.fail(w, err)
		return
	}
	f.s.log.Info("secret set", "scope", meta.Scope, "name", meta.Name)
	writeJSON(w, http.StatusOK, meta)
}

func (f *secretsAPI) handleDelete(w http.ResponseWriter, r *http.Request) {
	sc, ok := f.scope(w, r)
	if !ok {
		return
	}
	if err := f.st.Delete(r.Context(), sc, r.PathValue("name")); err != nil {
		f.fail(w, err)
		return
	}
	f.s.log.Info("secret removed", "scope", sc.String(), "name", r.PathValue("name"))
	w.WriteHeader(http.StatusNoContent)
}

// handleRotateKey re-encrypts every secret under a new key (or, when
// the key file is read-only, under the key the operator put first in it).
func (f *secretsAPI) handleRotateKey(w http.ResponseWriter, r *http.Request) {
	if !f.ready(w) {
		return
	}
	changed, newKey, err := secrets.Rotate(r.Context(), f.keyFile, f.st)
	if err != nil {
		f.fail(w, err)
		return
	}
	f.s.log.Info("secrets key rotated", "reencrypted", changed, "new_key", newKey)
	writeJSON(w, http.StatusOK, map[string]any{"reencrypted": changed, "new_key": newKey})
}
