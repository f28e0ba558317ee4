package server

import (
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/api"
	"github.com/raibid-labs/raibid-ci/internal/jobs"
	"github.com/raibid-labs/raibid-ci/internal/queue"
)

// deadLetterID is a stream entry id.
var deadLetterID = regexp.MustCompile(`^[0-9]{1,20}-[0-9]{1,20}$`)

// lifecycles are the streams whose dead letters the server shows: ci-jobs,
// and the GPU stream when there is one.
func (s *Server) lifecycles() []*jobs.Lifecycle {
	out := []*jobs.Lifecycle{s.opts.Jobs}
	if s.opts.GPUJobs != nil {
		out = append(out, s.opts.GPUJobs)
	}
	return out
}

// handleDeadLetters lists the dead letters of every stream, newest first
// (?limit=N, default 50, at most 500).
func (s *Server) handleDeadLetters(w http.ResponseWriter, r *http.Request) {
	limit := int64(50)
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.ParseInt(l, 10, 64)
		if err != nil || n < 1 || n > 500 {
			writeError(w, http.StatusBadRequest, "limit must be a number from 1 to 500")
			return
		}
		limit = n
	}
	out := api.DeadLetterList{DeadLetters: []api.DeadLetter{}}
	for _, lc := range s.lifecycles() {
		letters, err := lc.DeadLetters(r.Context(), limit)
		if err != nil {
			s.storeError(w, err)
			return
		}
		for _, d := range letters {
			out.DeadLetters = append(out.DeadLetters, deadLetterRow(lc.Stream(), d))
		}
	}
	sort.SliceStable(out.DeadLetters, func(i, j int) bool { return out.DeadLetters[i].At.After(out.DeadLetters[j].At) })
	if int64(len(out.DeadLetters)) > limit {
		out.DeadLetters = out.DeadLetters[:limit]
	}
	writeJSON(w, http.StatusOK, out)
}

// handleRequeueDeadLetter runs a dead letter's job again (a retry, as
// POST /jobs/{id}/retry) and removes the letter: 201 with the new job.
func (s *Server) handleRequeueDeadLetter(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !deadLetterID.MatchString(id) {
		writeError(w, http.StatusNotFound, "dead letter not found")
		return
	}
	for _, lc := range s.lifecycles() {
		j, ok, err := lc.RequeueDeadLetter(r.Context(), id)
		if !ok && err == nil {
			continue
		}
		if err != nil {
			s.storeError(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, j)
		return
	}
	writeError(w, http.StatusNotFound, "dead letter not found")
}

// deadLetterRow is a dead letter as the API shows it; its time is its
// entry id's.
func deadLetterRow(stream string, d queue.DeadLetter) api.DeadLetter {
	row := api.DeadLetter{ID: d.ID, Stream: stream, JobID: d.Fields["job_id"], Repo: d.Fields["repo"], Branch: d.Fields["branch"],
		Commit: d.Fields["commit"], Reason: d.Fields["reason"]}
	row.Deliveries, _ = strconv.Atoi(d.Fields["deliveries"])
	if ms, err := strconv.ParseInt(strings.SplitN(d.ID, "-", 2)[0], 10, 64); err == nil {
		row.At = time.UnixMilli(ms).UTC()
	}
	return row
}
