package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// ContentSecurityPolicy allows this server's own script, styles and
// connections only: no inline script or style, no framing, forms to self.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Viewer is who looks at a page and what they may do.
type Viewer struct {
	LoggedIn bool   // a valid session (may cancel and retry), or the API is open
	Open     bool   // no API token: everyone is logged in
	CSRF     string // the form token of the session
	Here     string // the page's path and query, for the login link's next
}

// Filter is the job list's filter form.
type Filter struct{ Status, Repo, Branch, Event string }

// ListPage is the data of /ui/.
type ListPage struct {
	Title    string
	Viewer   Viewer
	Jobs     []*ci.Job
	Filter   Filter
	Statuses []ci.Status
	Events   []string
	Query    template.URL // the filter as a query string, for the rows fragment
	Next     template.URL // the query of the next page, or ""
}

// Filtered reports whether the list is narrowed by the filter form.
func (p *ListPage) Filtered() bool { return p.Filter != (Filter{}) }

// JobPage is the data of /ui/jobs/{id}.
type JobPage struct {
	Title  string
	Viewer Viewer
	Job    *ci.Job
	Lines  []ci.LogLine
	// Sections are Lines grouped by step (set by Job).
	Sections []Section
	Total    int64
	Older    string // id to page back from, or ""
	Paged    bool   // an older page: not the live end of the log
	Follow   bool   // the job is not final and this is the end: follow live
	After    string // the last line's id, where the live stream starts
	// LogExpired says the job ended longer ago than logs are kept: its
	// summary is still here (commit statuses link to it), its log is not.
	LogExpired string
}

// LoginPage is the data of /ui/login.
type LoginPage struct {
	Title, Next, Error string
}

// ErrorPage is the data of a page that could not be shown: its HTTP
// status and why, in one line.
type ErrorPage struct {
	Title   string
	Viewer  Viewer
	Code    int
	Status  string
	Message string
}

// Pages renders the templates.
type Pages struct {
	list, job, login, error *template.Template
	now                     func() time.Time
}

// NewPages parses the embedded templates; now is the clock of relative times.
func NewPages(now func() time.Time) *Pages {
	if now == nil {
		now = time.Now
	}
	p := &Pages{now: now}
	funcs := template.FuncMap{
		// Job ids end in their random part; commits start with theirs.
		"shortID":     func(s string) string { return s[max(len(s)-8, 0):] },
		"shortCommit": func(s string, n int) string { return s[:min(len(s), n)] },
		"firstLine": func(s string) string {
			s, _, _ = strings.Cut(s, "\n")
			if len(s) > 72 {
				s = s[:71] + "…"
			}
			return s
		},
		"ansi":   ANSIToHTML,
		"matrix": ci.MatrixLabel,
		"ago": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return ci.ShortAge(p.now().Sub(t)) + " ago"
		},
		"duration": func(j *ci.Job) string {
			d := j.Duration(p.now())
			if d <= 0 {
				return "—"
			}
			return d.Round(100 * time.Millisecond).String()
		},
		"stepDuration": func(s ci.Step) string {
			if s.DurationMS <= 0 {
				if s.Status == ci.StatusRunning && s.StartedAt != nil {
					return p.now().Sub(*s.StartedAt).Round(time.Second).String() + "…"
				}
				return "—"
			}
			return ci.StepDuration(s.DurationMS)
		},
		"deref": func(i *int) int { return *i },
	}
	parse := func(files ...string) *template.Template {
		return template.Must(template.New("").Funcs(funcs).ParseFS(templateFS, files...))
	}
	p.list = parse("templates/base.html", "templates/list.html", "templates/rows.html")
	p.job = parse("templates/base.html", "templates/job.html", "templates/summary.html")
	p.login = parse("templates/base.html", "templates/login.html")
	p.error = parse("templates/base.html", "templates/error.html")
	return p
}

func render(w http.ResponseWriter, t *template.Template, name string, data any) error {
	// Render to a buffer first: a template error must not leave half a page.
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, name, data); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, err := io.Copy(w, &b)
	return err
}

// List writes the job list page.
func (p *Pages) List(w http.ResponseWriter, d *ListPage) error {
	d.Title = "Jobs"
	return render(w, p.list, "list.html", d)
}

// Rows writes only the job list's table rows (the auto-refresh fragment).
func (p *Pages) Rows(w http.ResponseWriter, d *ListPage) error {
	return render(w, p.list, "rows", d)
}

// Job writes the job page.
func (p *Pages) Job(w http.ResponseWriter, d *JobPage) error {
	d.Title = d.Job.Repo + " " + string(d.Job.Status)
	d.Sections = Sections(d.Job, d.Lines)
	return render(w, p.job, "job.html", d)
}

// Summary renders the job page's summary section (live updates).
func (p *Pages) Summary(d *JobPage) (string, error) {
	var b strings.Builder
	err := p.job.ExecuteTemplate(&b, "summary", d)
	return b.String(), err
}

// Login writes the login form.
func (p *Pages) Login(w http.ResponseWriter, d *LoginPage) error {
	d.Title = "Log in"
	return render(w, p.login, "login.html", d)
}

// Error writes an error page with status code: a page like the others
// (the browser's back and the header's links still work), never bare text.
func (p *Pages) Error(w http.ResponseWriter, code int, d *ErrorPage) error {
	d.Code, d.Status = code, http.StatusText(code)
	d.Title = d.Status
	var b bytes.Buffer
	if err := p.error.ExecuteTemplate(&b, "error.html", d); err != nil {
		http.Error(w, d.Message, code)
		return fmt.Errorf("render error.html: %w", err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, err := io.Copy(w, &b)
	return err
}

// Static serves the embedded CSS and script.
func Static() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		files.ServeHTTP(w, r)
	})
}
