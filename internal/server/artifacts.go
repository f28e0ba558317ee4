package server

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/api"
	"github.com/raibid-labs/raibid-ci/internal/artifacts"
	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/ticker"
)

// artifactsPrune is how often expired artifacts are removed.
const artifactsPrune = time.Hour

// Artifacts stores what agents upload (PUT /jobs/{id}/artifacts/{name}),
// lists and serves it, prunes it past its retention (a control loop) and
// adds what it takes to GET /system. A nil st is a server that keeps no
// artifacts: the routes answer 501.
func Artifacts(st *artifacts.Store) Feature { return &artifactsAPI{st: st} }

type artifactsAPI struct {
	s  *Server
	st *artifacts.Store
	// bytes is what stored artifacts take: measured at each prune, grown
	// by each upload in between.
	bytes atomic.Int64
}

func (f *artifactsAPI) attach(s *Server) featureParts {
	f.s = s
	parts := featureParts{routes: []route{
		{"PUT", "/jobs/{id}/artifacts/{name}", true, f.handlePut},
		{"GET", "/jobs/{id}/artifacts", false, f.handleList},
		{"GET", "/jobs/{id}/artifacts/{name}", false, f.handleGet},
	}, pages: []route{
		{"GET", "/ui/jobs/{id}/artifacts/{name}", false, f.handleGet},
	}}
	if f.st != nil {
		parts.loops = []controlLoop{{"artifacts prune", func(ctx context.Context) {
			f.prune(time.Now())
			ticker.Every(ctx, artifactsPrune, func() { f.prune(time.Now()) })
		}}}
	}
	return parts
}

func (f *artifactsAPI) addSystemFigures(sys *api.System) { sys.ArtifactsBytes = f.bytes.Load() }

func (f *artifactsAPI) store(w http.ResponseWriter) (*artifacts.Store, bool) {
	if f.st == nil {
		writeError(w, http.StatusNotImplemented, "this server keeps no artifacts (--artifacts-dir)")
		return nil, false
	}
	return f.st, true
}

// handlePut takes an artifact from the agent running the job: its
// bearer token is the run's upload token, not the API token, and is good
// only while the job runs. The file streams to disk through a SHA-256.
func (f *artifactsAPI) handlePut(w http.ResponseWriter, r *http.Request) {
	s := f.s
	st, ok := f.store(w)
	if !ok {
		return
	}
	id, name := r.PathValue("id"), r.PathValue("name")
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	allowed, err := s.opts.Store.UploadAllowed(r.Context(), id, token)
	if err != nil {
		s.storeError(w, err)
		return
	}
	if !allowed {
		writeError(w, http.StatusUnauthorized, "artifacts come only from the agent running the job")
		return
	}
	if !artifacts.ValidName(name) {
		writeError(w, http.StatusBadRequest, "artifact names are file names: letters, digits and ._+-")
		return
	}
	meta, err := st.Put(id, name, r.Body)
	switch {
	case errors.Is(err, artifacts.ErrTooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, userMessage(err))
		return
	case err != nil:
		s.log.Error("artifact upload", "job_id", id, "artifact", name, "err", err)
		writeError(w, http.StatusInternalServerError, "artifact not stored")
		return
	}
	a := ci.Artifact{Name: meta.Name, Size: meta.Size, SHA256: meta.SHA256, Step: r.URL.Query().Get("step")}
	if err := s.opts.Store.AddArtifact(r.Context(), id, a); err != nil {
		s.storeError(w, err)
		return
	}
	f.bytes.Add(meta.Size)
	s.log.Info("artifact stored", "job_id", id, "artifact", name, "bytes", meta.Size)
	writeJSON(w, http.StatusCreated, a)
}

func (f *artifactsAPI) handleList(w http.ResponseWriter, r *http.Request) {
	s := f.s
	st, ok := f.store(w)
	if !ok {
		return
	}
	j, ok := s.pathJob(w, r)
	if !ok {
		return
	}
	out := []api.Artifact{}
	for _, a := range j.Artifacts {
		f, err := st.Open(j.ID, a.Name)
		if err == nil {
			f.Close()
		}
		out = append(out, api.Artifact{Artifact: a, Expired: errors.Is(err, fs.ErrNotExist)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"artifacts": out})
}

func (f *artifactsAPI) handleGet(w http.ResponseWriter, r *http.Request) {
	s := f.s
	st, ok := f.store(w)
	if !ok {
		return
	}
	j, ok := s.pathJob(w, r)
	if !ok {
		return
	}
	id, name := j.ID, r.PathValue("name")
	var meta *ci.Artifact
	for i := range j.Artifacts {
		if j.Artifacts[i].Name == name {
			meta = &j.Artifacts[i]
		}
	}
	if meta == nil {
		writeError(w, http.StatusNotFound, "job "+id+" has no artifact "+name)
		return
	}
	file, err := st.Open(id, name)
	if errors.Is(err, fs.ErrNotExist) {
		writeError(w, http.StatusGone, "artifact "+name+" has expired")
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "artifact unreadable")
		return
	}
	defer file.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	h.Set("X-Checksum-Sha256", meta.SHA256)
	h.Set("Content-Length", strconv.FormatInt(meta.Size, 10))
	http.ServeContent(w, r, "", time.Time{}, file)
}

// prune removes the artifacts past their retention.
func (f *artifactsAPI) prune(now time.Time) {
	if freed, err := f.st.Prune(now); err != nil {
		f.s.log.Warn("artifacts prune", "err", err)
	} else if freed > 0 {
		f.s.log.Info("artifacts pruned", "bytes", freed)
	}
	f.bytes.Store(f.st.Usage())
}
