package server

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/store"
	"github.com/raibid-labs/raibid-ci/internal/web"
)

// logPageLines is how many log lines one page of the job page shows: a
// 100k-line log is read and rendered a page at a time.
const logPageLines = 1000

// uiRoutes registers the web pages. They are not API (HTML, a session
// cookie instead of the bearer token), so they stay out of openapi.yaml.
func (s *Server) uiRoutes(mux *http.ServeMux) {
	page := func(pattern string, h http.HandlerFunc) {
		mux.Handle(pattern, s.instrument("ui", s.uiHeaders(s.uiView(h))))
	}
	act := func(pattern string, h http.HandlerFunc) {
		mux.Handle(pattern, s.instrument("ui", s.uiHeaders(s.uiAct(h))))
	}
	mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusSeeOther))
	mux.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently))
	page("GET /ui/{$}", s.listHandler(s.pages.List))
	page("GET /ui/rows", s.listHandler(s.pages.Rows))
	page("GET /ui/events", s.handleEvents)
	page("GET /ui/jobs/{id}", s.handleUIJob)
	page("GET /ui/jobs/{id}/stream", s.handleUIJobStream)
	page("GET /ui/jobs/{id}/log.txt", s.handleLogs)
	for _, p := range s.featurePages {
		page(p.method+" "+p.pattern, p.handler)
	}
	act("POST /ui/jobs/{id}/cancel", s.handleUICancel)
	act("POST /ui/jobs/{id}/retry", s.handleUIRetry)
	act("POST /ui/logout", s.handleUILogout)
	mux.Handle("GET /ui/login", s.instrument("ui", s.uiHeaders(http.HandlerFunc(s.handleUILoginForm))))
	mux.Handle("POST /ui/login", s.instrument("ui", s.uiHeaders(http.HandlerFunc(s.handleUILogin))))
	mux.Handle("GET /ui/static/", s.instrument("ui", http.StripPrefix("/ui/static/", web.Static())))
}

// uiHeaders sets the pages' security headers.
func (s *Server) uiHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", web.ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// session is the request's valid session cookie value, or "".
func (s *Server) session(r *http.Request) string {
	c, err := r.Cookie(web.CookieName)
	if err != nil || !s.sessions.Valid(c.Value, time.Now()) {
		return ""
	}
	if id, _, ok := s.sessions.ID(c.Value); !ok || s.opts.Store.SessionRevoked(r.Context(), id) {
		return ""
	}
	return c.Value
}

type viewerKey struct{}

// uiView lets a viewer see a page: anyone with --ui-public or with no API
// token, else only a logged-in browser (others are sent to the login form;
// scripts' fetches get 401). With no token every browser gets a session
// cookie, so its forms still carry a CSRF token bound to it.
func (s *Server) uiView(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess := s.session(r)
		if sess == "" && s.sessions.Open() {
			sess = s.sessions.Issue(time.Now())
			http.SetCookie(w, web.Cookie(sess, web.Secure(r, s.opts.PublicURL), web.SessionTTL))
		}
		if sess == "" && !s.opts.UIPublic {
			if strings.HasSuffix(r.URL.Path, "/stream") || r.URL.Path == "/ui/events" || r.URL.Path == "/ui/rows" {
				writeError(w, http.StatusUnauthorized, "log in at /ui/login")
				return
			}
			http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		next.ServeHTTP(w, r.WithContext(contextWithViewer(r.Context(), s.viewer(r, sess))))
	})
}

// uiAct guards the forms: a session (public pages do not let anonymous
// viewers act), a same-origin request, and the session's CSRF token.
func (s *Server) uiAct(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess := s.session(r)
		if sess == "" {
			s.uiFail(w, r, http.StatusForbidden, "log in first: /ui/login")
			return
		}
		if o := r.Header.Get("Origin"); o != "" && o != "null" {
			if u, err := url.Parse(o); err != nil || u.Host != r.Host {
				s.uiFail(w, r, http.StatusForbidden, "cross-origin form refused")
				return
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if !s.sessions.CheckCSRF(sess, r.PostFormValue("csrf")) {
			s.uiFail(w, r, http.StatusForbidden, "missing or wrong form token; reload the page")
			return
		}
		next.ServeHTTP(w, r.WithContext(contextWithViewer(r.Context(), s.viewer(r, sess))))
	})
}

func (s *Server) viewer(r *http.Request, sess string) web.Viewer {
	v := web.Viewer{Open: s.sessions.Open(), Here: r.URL.RequestURI()}
	if sess != "" {
		v.LoggedIn, v.CSRF = true, s.sessions.CSRF(sess)
	}
	return v
}

// uiFail answers a page that cannot be shown with an error page of code.
func (s *Server) uiFail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	s.uiError(s.pages.Error(w, code, &web.ErrorPage{Viewer: viewerOf(r), Message: msg}))
}

// uiError logs a page that could not be rendered (the answer is already
// under way, so there is nothing else to tell the browser).
func (s *Server) uiError(err error) {
	if err != nil {
		s.log.Error("web page", "err", err)
	}
}

func (s *Server) listPage(r *http.Request) (*web.ListPage, int, string) {
	f, bad := jobFilter(r.URL.Query())
	if bad != "" {
		return nil, http.StatusBadRequest, bad
	}
	if f.Group != "" {
		var err error
		f.Group, err = s.groupOf(r.Context(), f.Group)
		switch {
		case errors.Is(err, ci.ErrInvalid):
			return nil, http.StatusBadRequest, userMessage(err)
		case errors.Is(err, ci.ErrNotFound):
			return nil, http.StatusNotFound, "group not found"
		case err != nil:
			return nil, http.StatusServiceUnavailable, "job store unavailable"
		}
	}
	f.Limit = 50
	jobs, next, err := s.opts.Store.List(r.Context(), f)
	if err != nil {
		return nil, http.StatusServiceUnavailable, "job store unavailable"
	}
	filter := url.Values{}
	for k, v := range map[string]string{"status": string(f.Status), "repo": f.Repo, "branch": f.Branch, "group": f.Group, "event": f.Event} {
		if v != "" {
			filter.Set(k, v)
		}
	}
	p := &web.ListPage{Viewer: viewerOf(r), Jobs: jobs, Filter: web.Filter{Status: string(f.Status), Repo: f.Repo, Branch: f.Branch, Event: f.Event},
		Events:   ci.Events(),
		Query:    urlQuery(filter),
		Statuses: []ci.Status{ci.StatusPending, ci.StatusRunning, ci.StatusSuccess, ci.StatusFailed, ci.StatusCancelled, ci.StatusError}}
	if next != "" {
		nq := url.Values{}
		for k, v := range filter {
			nq[k] = v
		}
		nq.Set("cursor", next)
		p.Next = urlQuery(nq)
	}
	return p, http.StatusOK, ""
}

// listHandler answers the job list, as a page or as its rows fragment.
func (s *Server) listHandler(render func(http.ResponseWriter, *web.ListPage) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, code, msg := s.listPage(r)
		if p == nil {
			s.uiFail(w, r, code, msg)
			return
		}
		s.uiError(render(w, p))
	}
}

// uiJobID resolves the page's {id} (short ids too), answering an error page:
// 404 or, for an ambiguous short id, 400 listing the matches.
func (s *Server) uiJobID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id, err := s.opts.Store.Resolve(r.Context(), r.PathValue("id"))
	if err != nil {
		msg, code := "job not found", http.StatusNotFound
		var amb *store.AmbiguousError
		if errors.As(err, &amb) {
			msg, code = amb.Error(), http.StatusBadRequest
		}
		s.uiFail(w, r, code, msg)
		return "", false
	}
	return id, true
}

func (s *Server) handleUIJob(w http.ResponseWriter, r *http.Request) {
	id, ok := s.uiJobID(w, r)
	if !ok {
		return
	}
	j, err := s.opts.Store.Get(r.Context(), id)
	switch {
	case errors.Is(err, ci.ErrNotFound):
		s.uiFail(w, r, http.StatusNotFound, fmt.Sprintf("job not found (finished jobs are kept %s)", ci.ShortAge(s.opts.Store.JobTTL())))
		return
	case err != nil:
		s.uiFail(w, r, http.StatusServiceUnavailable, "job store unavailable")
		return
	}
	before := r.URL.Query().Get("before")
	if before != "" && !store.ValidLogID(before) {
		s.uiFail(w, r, http.StatusBadRequest, "before is not a log line id")
		return
	}
	lines, err := s.opts.Store.ReadLogsBefore(r.Context(), id, before, logPageLines)
	if err != nil {
		s.uiFail(w, r, http.StatusServiceUnavailable, "log store unavailable")
		return
	}
	total, _ := s.opts.Store.LogLength(r.Context(), id)
	p := &web.JobPage{Viewer: viewerOf(r), Job: j, Lines: lines, Total: total,
		Paged: before != "", Follow: before == "" && (!j.Status.Final() || stepsUnsettled(j))}
	if len(lines) == logPageLines {
		p.Older = lines[0].ID
	}
	if len(lines) > 0 {
		p.After = lines[len(lines)-1].ID
	}
	p.LogExpired = logExpired(j, total, s.opts.Store.LogTTL(), time.Now())
	s.uiError(s.pages.Job(w, p))
}

// logExpired says why a finished job shows no log: it ended longer ago than
// logs are kept. "" when the log is there (or the job just has none yet).
func logExpired(j *ci.Job, lines int64, ttl time.Duration, now time.Time) string {
	if lines > 0 || j.FinishedAt == nil || now.Sub(*j.FinishedAt) < ttl {
		return ""
	}
	return fmt.Sprintf("Log expired: logs are kept %s after a job ends (--log-retention); this job ended %s ago.",
		ci.ShortAge(ttl), ci.ShortAge(now.Sub(*j.FinishedAt)))
}

// stepsUnsettled: the job has ended but a step still shows running — the
// agent has not recorded its last state yet (a cancel reaches it within a
// poll). The page follows until then, so it never keeps a stale "running".
func stepsUnsettled(j *ci.Job) bool {
	for _, st := range j.Steps {
		if st.Status == ci.StatusRunning {
			return true
		}
	}
	return false
}

// uiLine is a log line as the job page's script places it: in its step's
// section, numbered, its text as HTML the server escaped and coloured.
type uiLine struct {
	Step string `json:"step"`
	N    int64  `json:"n"`
	Cont bool   `json:"cont"`
	HTML string `json:"html"`
}

// handleUIJobStream follows the job for its page: lines as HTML the server
// escaped and coloured ("line"), the summary section whenever the job
// changes ("summary"), then "end".
func (s *Server) handleUIJobStream(w http.ResponseWriter, r *http.Request) {
	v := viewerOf(r)
	s.streamLog(w, r, logPresenter{
		line: func(sse *sseWriter, l ci.LogLine) error {
			return sse.event(l.ID, "line", uiLine{Step: l.Step, N: l.N, Cont: l.Cont, HTML: string(web.ANSIToHTML(l.Text))})
		},
		job: func(sse *sseWriter, j *ci.Job) error {
			html, err := s.pages.Summary(&web.JobPage{Viewer: v, Job: j})
			if err != nil {
				return err
			}
			return sse.event("", "summary", html)
		},
	})
}

func (s *Server) handleUICancel(w http.ResponseWriter, r *http.Request) {
	s.uiJobAction(w, r, func(id string) (*ci.Job, error) { return s.cancelJob(r.Context(), id) })
}

func (s *Server) handleUIRetry(w http.ResponseWriter, r *http.Request) {
	s.uiJobAction(w, r, func(id string) (*ci.Job, error) { return s.retry(r.Context(), id) })
}

// uiJobAction runs a form's action and shows the resulting job (post,
// redirect, get: a reload does not repeat it).
func (s *Server) uiJobAction(w http.ResponseWriter, r *http.Request, act func(id string) (*ci.Job, error)) {
	id, ok := s.uiJobID(w, r)
	if !ok {
		return
	}
	j, err := act(id)
	switch {
	case errors.Is(err, ci.ErrNotFound):
		s.uiFail(w, r, http.StatusNotFound, "job not found")
	case errors.Is(err, ci.ErrConflict):
		http.Redirect(w, r, "/ui/jobs/"+id, http.StatusSeeOther) // already ended: the page says how
	case err != nil:
		s.uiFail(w, r, http.StatusServiceUnavailable, "job store unavailable")
	default:
		http.Redirect(w, r, "/ui/jobs/"+j.ID, http.StatusSeeOther)
	}
}

func (s *Server) handleUILoginForm(w http.ResponseWriter, r *http.Request) {
	s.uiError(s.pages.Login(w, &web.LoginPage{Next: safeNext(r.URL.Query().Get("next"))}))
}

func (s *Server) handleUILogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	next := safeNext(r.PostFormValue("next"))
	if s.sessions.Open() {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	if !s.sessions.CheckToken(r.PostFormValue("token")) {
		// A wrong guess costs the guesser a second.
		time.Sleep(time.Second)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		s.uiError(s.pages.Login(w, &web.LoginPage{Next: next, Error: "That is not the API token."}))
		return
	}
	http.SetCookie(w, web.Cookie(s.sessions.Issue(time.Now()), web.Secure(r, s.opts.PublicURL), web.SessionTTL))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// handleUILogout revokes the session in Redis until it would have expired
// (a copied cookie stops working too, on every server) and clears it.
func (s *Server) handleUILogout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(web.CookieName); err == nil {
		if id, exp, ok := s.sessions.ID(c.Value); ok {
			if err := s.opts.Store.RevokeSession(r.Context(), id, time.Until(exp)); err != nil {
				s.log.Error("logout: revoke session", "err", err)
				s.uiFail(w, r, http.StatusServiceUnavailable, "could not log out, try again")
				return
			}
		}
	}
	http.SetCookie(w, web.Cookie("", web.Secure(r, s.opts.PublicURL), -time.Second))
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

// safeNext keeps a login redirect on this site's pages.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/ui/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/ui/"
	}
	return next
}

func contextWithViewer(ctx context.Context, v web.Viewer) context.Context {
	return context.WithValue(ctx, viewerKey{}, v)
}

// viewerOf is the viewer uiView or uiAct found for the request.
func viewerOf(r *http.Request) web.Viewer {
	v, _ := r.Context().Value(viewerKey{}).(web.Viewer)
	return v
}

// urlQuery is an encoded query for a template's URL attribute: Encode has
// escaped every value, so the template must not escape it again.
func urlQuery(v url.Values) template.URL {
	return template.URL(v.Encode()) //nolint:gosec // encoded by url.Values
}
