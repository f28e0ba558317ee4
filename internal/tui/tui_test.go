package tui

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/raibid-labs/raibid-ci/internal/api"
	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/client"
	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
	"github.com/raibid-labs/raibid-ci/internal/jobs"
	"github.com/raibid-labs/raibid-ci/internal/mirror"
	"github.com/raibid-labs/raibid-ci/internal/server"
	"github.com/raibid-labs/raibid-ci/internal/store"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
	"github.com/raibid-labs/raibid-ci/internal/testutil/fakeforge"
)

// updating reports teatest's -update flag (its golden package defines it).
func updating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// base is the fixed clock of every frame.
var base = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

type rig struct {
	store  *store.Store
	jobs   *jobs.Lifecycle
	client *client.Client
	scaler *testutil.Scaler
	gitea  *fakeforge.Gitea
}

// newRig serves the real API on a real redis-server, with fixed host figures
// so frames are stable, and seeds jobs and agents with fixed times and ids.
func newRig(t *testing.T) *rig {
	t.Helper()
	r := testutil.StartRedis(t)
	rdb := r.Client()
	jb := testutil.NewJobs(rdb, 0)
	st := jb.Store
	sc := &testutil.Scaler{N: 2}
	// Mirrors come from a fake Gitea (none can run here); the service's
	// rescan loop is not started, so only what the dashboard asks happens.
	gt := fakeforge.NewGitea(t, "")
	gt.AddOrg("acme")
	gt.AddRepo(fakeforge.GiteaRepo{Owner: "acme", Name: "widget", Mirror: true, OriginalURL: "https://github.com/acme/widget.git", MirrorInterval: "8h0m0s", MirrorUpdated: time.Now().Add(-time.Hour)})
	gt.AddRepo(fakeforge.GiteaRepo{Owner: "acme", Name: "gadget", Mirror: true, OriginalURL: "https://github.com/acme/gadget.git", MirrorInterval: "8h0m0s", MirrorUpdated: time.Now().Add(-50 * time.Hour)})
	cfg, err := mirror.Parse("mirrors.yaml", []byte("mirrors:\n  - {type: org, source: acme}\n"))
	if err != nil {
		t.Fatal(err)
	}
	mirrors := mirror.NewService(mirror.ServiceOptions{Config: cfg, Gitea: gitea.NewClient(gt.URL, "", nil)})
	srv := server.New(server.Options{Store: st, Queue: jb.Queue, Jobs: jb.Lifecycle, ReaperInterval: -1,
		Version: "test", Scaler: sc, GiteaURL: "http://gitea.local:3000", Features: []server.Feature{server.Mirrors(mirrors, "")},
		HostStats: func() api.Host {
			return api.Host{CPUPercent: 37, CPUs: 20, MemTotal: 128 << 30, MemUsed: 42 << 30, Load1: 3.5}
		}})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { ts.CloseClientConnections(); ts.Close() })
	rg := &rig{store: st, jobs: jb.Lifecycle, client: client.New(ts.URL, ""), scaler: sc, gitea: gt}
	rg.seed(t)
	return rg
}

func at(sec int) time.Time { return base.Add(time.Duration(sec) * time.Second) }

func (r *rig) seed(t *testing.T) {
	ctx := context.Background()
	add := func(id, repo, branch string, created int) {
		j := &ci.Job{ID: id, Repo: repo, CloneURL: "http://gitea.local:3000/" + repo + ".git", Branch: branch,
			Commit: "bffeb74224043ba2feb48d137756c8a9331c449a", Author: "ann", Message: "fix", CreatedAt: at(created)}
		if _, _, err := r.jobs.Submit(ctx, j, ""); err != nil {
			t.Fatal(err)
		}
	}
	move := func(id string, to ci.Status, sec int, agent, errMsg string, steps []ci.Step) {
		from := []ci.Status{ci.StatusPending, ci.StatusRunning}
		if _, err := r.jobs.Transition(ctx, id, jobs.Change{From: from, To: to, At: at(sec), Agent: agent, Error: errMsg, Steps: steps}); err != nil {
			t.Fatal(err)
		}
	}
	step := func(name string, st ci.Status, from, to int) ci.Step {
		s, e := at(from), at(to)
		code := 0
		if st == ci.StatusFailed {
			code = 101
		}
		return ci.Step{Name: name, Status: st, StartedAt: &s, FinishedAt: &e, DurationMS: int64((to - from) * 1000), ExitCode: &code}
	}
	add("019aa0000001aaaa0001", "acme/widget", "main", 0)
	move("019aa0000001aaaa0001", ci.StatusRunning, 1, "local-1", "", nil)
	move("019aa0000001aaaa0001", ci.StatusSuccess, 42, "", "", []ci.Step{step("check", ci.StatusSuccess, 2, 10), step("test", ci.StatusSuccess, 10, 42)})
	add("019aa0000002bbbb0002", "acme/gadget", "feature/fast-path", 10)
	move("019aa0000002bbbb0002", ci.StatusRunning, 11, "local-2", "", nil)
	move("019aa0000002bbbb0002", ci.StatusFailed, 30, "", "step test failed with exit code 101", []ci.Step{step("check", ci.StatusSuccess, 11, 15), step("test", ci.StatusFailed, 15, 30)})
	add("019aa0000003cccc0003", "acme/widget", "dev", 60)
	move("019aa0000003cccc0003", ci.StatusRunning, 61, "local-1", "", []ci.Step{{Name: "check", Status: ci.StatusRunning}})
	r.store.AppendLog(ctx, "019aa0000003cccc0003", ci.LogLine{Step: "check", Stream: "stdout", Text: "   Compiling widget v0.1.0", Time: at(62)})
	add("019aa0000004dddd0004", "acme/tools", "main", 80)
	r.store.AgentHeartbeat(ctx, store.Agent{Name: "local-1", Status: "busy", CurrentJob: "019aa0000003cccc0003", StartedAt: at(-600), Host: "spark"}, time.Hour)
	r.store.AgentHeartbeat(ctx, store.Agent{Name: "local-2", Status: "idle", StartedAt: at(-600), Host: "spark"}, time.Hour)
}

// model's background work (event stream, log follower) ends with the test,
// before the test server closes.
func (r *rig) model(t *testing.T) *Model {
	return New(t.Context(), r.client, Options{Server: "http://spark:8080", Now: func() time.Time { return at(90) }})
}

// start runs the model under teatest at w×h and waits for the first full
// frame (the jobs and the host figures have arrived).
func start(t *testing.T, m *Model, w, h int) *teatest.TestModel {
	t.Helper()
	tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(w, h))
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool {
		return bytes.Contains(b, []byte("aaaa0001")) && bytes.Contains(b, []byte("cpu 37%")) && bytes.Contains(b, []byte("max 2"))
	}, teatest.WithDuration(10*time.Second))
	return tm
}

func key(s string) tea.KeyPressMsg {
	switch s {
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "esc":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	case "tab":
		return tea.KeyPressMsg{Code: tea.KeyTab}
	case "down":
		return tea.KeyPressMsg{Code: tea.KeyDown}
	case "backspace":
		return tea.KeyPressMsg{Code: tea.KeyBackspace}
	}
	r := []rune(s)[0]
	return tea.KeyPressMsg{Code: r, Text: s}
}

func finalModel(t *testing.T, tm *teatest.TestModel) *Model {
	t.Helper()
	if err := tm.Quit(); err != nil {
		t.Fatal(err)
	}
	return tm.FinalModel(t, teatest.WithFinalTimeout(10*time.Second)).(*Model)
}

// golden compares a frame (colours stripped, so the file reads as the
// screen does) with testdata/<name>.golden; -update rewrites it.
func golden(t *testing.T, name, frame string) {
	t.Helper()
	plain := ansi.Strip(frame) + "\n"
	path := filepath.Join("testdata", name+".golden")
	if updating() {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(path, []byte(plain), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if plain != string(want) {
		t.Errorf("frame %s differs from %s:\n--- got\n%s--- want\n%s", name, path, plain, want)
	}
}

// Every view's first frame at 80×24 and 120×40.
func TestFirstFramesGolden(t *testing.T) {
	r := newRig(t)
	for _, size := range [][2]int{{80, 24}, {120, 40}} {
		for _, view := range []struct {
			name string
			keys []string
			wait string
		}{
			{"jobs", nil, ""},
			{"agents", []string{"tab"}, "host spark"},
			{"mirrors", []string{"tab", "tab"}, "1 stale"},
			{"system", []string{"tab", "tab", "tab"}, "20 CPUs"},
			{"job", []string{"down", "enter"}, "Compiling widget"},
			{"help", []string{"?"}, "this help"},
		} {
			name := fmt.Sprintf("%s-%dx%d", view.name, size[0], size[1])
			t.Run(name, func(t *testing.T) {
				tm := start(t, r.model(t), size[0], size[1])
				for _, k := range view.keys {
					tm.Send(key(k))
				}
				if view.wait != "" {
					teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte(view.wait)) },
						teatest.WithDuration(10*time.Second))
				}
				m := finalModel(t, tm)
				m.depth = []int64{0, 1, 3, 2, 5, 4, 1, 0} // the sparkline's samples depend on wall time
				m.connected, m.connErr = true, ""
				if m.system != nil {
					m.system.StartedAt = base // the server's own start time is wall time
				}
				ages := []time.Duration{50 * time.Hour, time.Hour} // as seeded; the fake's times are wall time
				for i := range m.mirrorsTab.mirrors {
					m.mirrorsTab.mirrors[i].LastSync = at(90).Add(-ages[i])
				}
				frame := m.render()
				lines := strings.Split(frame, "\n")
				if len(lines) != size[1] {
					t.Fatalf("%d lines, want %d", len(lines), size[1])
				}
				for i, l := range lines {
					if w := ansi.StringWidth(l); w > size[0] {
						t.Fatalf("line %d is %d cells wide, more than %d: %q", i, w, size[0], ansi.Strip(l))
					}
				}
				golden(t, name, frame)
			})
		}
	}
}

func TestStatusColours(t *testing.T) {
	r := newRig(t)
	tm := start(t, r.model(t), 120, 40)
	frame := finalModel(t, tm).render()
	for _, c := range []struct{ text, sgr string }{{"success", "\x1b[32m"}, {"failed", "\x1b[31m"}, {"running", "\x1b[33m"}} {
		if !strings.Contains(frame, c.sgr+c.text) {
			t.Errorf("%s is not coloured %q", c.text, c.sgr)
		}
	}
}

func TestFilterByStatusAndRepo(t *testing.T) {
	r := newRig(t)
	tm := start(t, r.model(t), 80, 24)
	for _, k := range []string{"/", "f", "a", "i", "l", "e", "d", "enter"} {
		tm.Send(key(k))
	}
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte("filter: failed")) })
	m := finalModel(t, tm)
	jobs := m.jobsTab.visibleJobs()
	if m.jobsTab.filter != "failed" || len(jobs) != 1 || jobs[0].Repo != "acme/gadget" {
		t.Fatalf("filter %q jobs %v", m.jobsTab.filter, jobs)
	}

	tm = start(t, r.model(t), 80, 24)
	for _, k := range []string{"/", "w", "i", "d", "g", "e", "t", "enter"} {
		tm.Send(key(k))
	}
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte("filter: widget")) })
	if m := finalModel(t, tm); len(m.jobsTab.visibleJobs()) != 2 {
		t.Fatalf("repo filter: %d jobs", len(m.jobsTab.visibleJobs()))
	}
}

// c asks first; n aborts; y cancels on the server.
// The question is asserted on the rendered screen (the model's view), not on
// the renderer's byte stream, which may draw the same text with repeat-
// character escapes and so never contain it literally.
func TestCancelAsksForConfirmation(t *testing.T) {
	r := newRig(t)
	m := r.model(t)
	m.width, m.height = 80, 24
	page, err := r.client.ListJobs(context.Background(), api.JobFilter{Limit: jobsFetchLimit})
	if err != nil {
		t.Fatal(err)
	}
	m.update(jobsMsg{jobs: page.Jobs})
	screen := func() string { return ansi.Strip(m.View().Content) }
	running := "019aa0000003cccc0003" // third newest: rows are pending, running, ...
	m.update(key("down"))
	m.update(key("c"))
	if !strings.Contains(screen(), "cancel job "+running+"? y/n") {
		t.Fatalf("no question on the screen:\n%s", screen())
	}
	m.update(key("n"))
	if !strings.Contains(screen(), "not cancelled") {
		t.Fatalf("n:\n%s", screen())
	}
	if j, _ := r.store.Get(context.Background(), running); j.Status != ci.StatusRunning {
		t.Fatalf("n cancelled the job: %s", j.Status)
	}
	m.update(key("c"))
	cmd := m.update(key("y"))
	if cmd == nil {
		t.Fatal("y did nothing")
	}
	m.update(cmd()) // the cancel request, run here rather than by the runtime
	if j, _ := r.store.Get(context.Background(), running); j.Status != ci.StatusCancelled {
		t.Fatalf("job %s", j.Status)
	}
	if !strings.Contains(screen(), "job "+running+" cancelled") {
		t.Fatalf("after y:\n%s", screen())
	}
}

func TestNewJobPrompt(t *testing.T) {
	r := newRig(t)
	tm := start(t, r.model(t), 80, 24)
	tm.Send(key("n"))
	tm.Type("acme/new")
	tm.Send(key("tab"))
	for range 4 {
		tm.Send(key("backspace"))
	}
	tm.Type("release")
	tm.Send(key("enter"))
	var page *api.JobPage
	testutil.Eventually(t, 5*time.Second, func() bool {
		page, _ = r.client.ListJobs(context.Background(), api.JobFilter{Repo: "acme/new"})
		return page != nil && len(page.Jobs) > 0
	})
	m := finalModel(t, tm)
	if m.jobsTab.mode != modeNormal {
		t.Fatalf("mode %d", m.jobsTab.mode)
	}
	if len(page.Jobs) != 1 || page.Jobs[0].Branch != "release" || page.Jobs[0].Trigger != ci.TriggerManual {
		t.Fatalf("created %+v", page.Jobs)
	}
}

func TestScaleKeys(t *testing.T) {
	r := newRig(t)
	tm := start(t, r.model(t), 80, 24)
	tm.Send(key("+"))
	tm.Send(key("+"))
	tm.Send(key("-"))
	// The renderer repaints only the changed digit, so watch the server.
	testutil.Eventually(t, 5*time.Second, func() bool { n, _ := r.scaler.MaxAgents(context.Background()); return n == 3 })
	// No further PUT may follow.
	testutil.Consistently(t, 100*time.Millisecond, func() bool { n, _ := r.scaler.MaxAgents(context.Background()); return n == 3 })
	m := finalModel(t, tm)
	if n, _ := r.scaler.MaxAgents(context.Background()); n != 3 || m.scale.max != 3 {
		t.Fatalf("scaler %d model %d, want 3", n, m.scale.max)
	}
}

// The Mirrors tab lists Gitea's mirrors through GET /mirrors, marks the stale
// one, and s asks Gitea (through the server) to sync the selected mirror.
func TestMirrorsTabSyncsSelectedMirror(t *testing.T) {
	r := newRig(t)
	tm := start(t, r.model(t), 100, 24)
	tm.Send(key("tab"))
	tm.Send(key("tab"))
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte("2, 1 stale")) },
		teatest.WithDuration(10*time.Second))
	tm.Send(key("down")) // acme/widget: rows are sorted gadget, widget
	tm.Send(key("s"))
	testutil.Eventually(t, 5*time.Second, func() bool { return len(r.gitea.Syncs()) != 0 })
	m := finalModel(t, tm)
	if got := r.gitea.Syncs(); len(got) != 1 || got[0] != "acme/widget" {
		t.Fatalf("gitea syncs = %q, want acme/widget", got)
	}
	if mr := m.mirrorsTab.mirrors; len(mr) != 2 || !mr[0].Stale || mr[1].Stale {
		t.Fatalf("mirrors = %+v", mr)
	}
}

// On Kubernetes the Agents tab says which pod phase an agent is in.
func TestAgentsTabShowsPodPhase(t *testing.T) {
	m := New(t.Context(), nil, Options{Now: func() time.Time { return at(90) }})
	m.agents = []api.Agent{{Name: "raibid-agent-x1", Status: "busy", CurrentJob: "019aa0000003cccc0003", Host: "spark", Phase: "running", StartedAt: at(30)},
		{Name: "local-1", Status: "idle", Host: "box", StartedAt: at(0)}}
	out := ansi.Strip(strings.Join(m.agentLines(120, 5, true), "\n"))
	if !strings.Contains(out, "pod running on spark, up 1m0s") || !strings.Contains(out, "host box, up 1m30s") {
		t.Fatalf("agents tab:\n%s", out)
	}
}

// An agent running with --sandbox=off is marked, in the panel and the tab.
func TestAgentsShowUnsandboxed(t *testing.T) {
	m := New(t.Context(), nil, Options{Now: func() time.Time { return at(90) }})
	m.agents = []api.Agent{{Name: "risky", Status: "idle", Sandbox: "off"}, {Name: "safe", Status: "idle", Sandbox: "bwrap"}}
	for _, full := range []bool{false, true} {
		lines := m.agentLines(120, 5, full)
		if !strings.Contains(ansi.Strip(lines[1]), "unsandboxed") || strings.Contains(ansi.Strip(lines[2]), "unsandboxed") {
			t.Fatalf("full=%v:\n%s", full, ansi.Strip(strings.Join(lines, "\n")))
		}
	}
}

// The agents panel follows the agents' heartbeats by itself: an agent that
// turns busy shows busy without any job event.
func TestAgentsPanelStaysFresh(t *testing.T) {
	r := newRig(t)
	tm := start(t, r.model(t), 120, 40)
	r.store.AgentHeartbeat(context.Background(), store.Agent{Name: "local-2", Status: "busy", CurrentJob: "019aa0000004dddd0004", StartedAt: at(-600), Host: "spark"}, time.Hour)
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte("busy dddd0004")) },
		teatest.WithDuration(6*time.Second))
	tm.Send(key("q"))
	tm.WaitFinished(t, teatest.WithFinalTimeout(5*time.Second))
}

// The new-job prompt: typing into the suggested branch replaces it, a local
// path becomes a local job cloned from it, a known repository is cloned from
// where its earlier jobs were.
func TestNewJobPromptLocalPathsAndKnownRepos(t *testing.T) {
	m := New(t.Context(), nil, Options{})
	m.jobsTab.jobs = []ci.Job{{ID: "019aa0000001aaaa0001", Repo: "me/sleepy", CloneURL: "/srv/repos/sleepy"}}
	typeIn := func(s string) {
		for _, r := range s {
			m.update(tea.KeyPressMsg{Code: r, Text: string(r)})
		}
	}
	cases := []struct{ repo, wantRepo, wantURL string }{
		{"/home/me/my project", "local/my-project", "/home/me/my project"},
		{"me/sleepy", "me/sleepy", "/srv/repos/sleepy"},
		{"acme/other", "acme/other", ""},
	}
	for _, c := range cases {
		m.update(key("n"))
		typeIn(c.repo)
		m.update(key("tab"))
		typeIn("dev")
		n, err := m.jobsTab.newJobRequest()
		if err != nil || n.Repo != c.wantRepo || n.CloneURL != c.wantURL || n.Branch != "dev" {
			t.Errorf("%q: %+v %v", c.repo, n, err)
		}
		m.update(key("esc"))
	}
}

// "failed" shows the error jobs too; PgDn moves a page in the list.
func TestFailedFilterAndPaging(t *testing.T) {
	m := New(t.Context(), nil, Options{})
	m.height = 24
	for i := range 40 {
		st := ci.StatusSuccess
		switch i {
		case 3:
			st = ci.StatusFailed
		case 7:
			st = ci.StatusError
		}
		m.jobsTab.jobs = append(m.jobsTab.jobs, ci.Job{ID: fmt.Sprintf("019aa00000%02d00000000", i), Status: st})
	}
	m.jobsTab.filter = "failed"
	if got := m.jobsTab.visibleJobs(); len(got) != 2 {
		t.Fatalf("failed filter: %d jobs", len(got))
	}
	m.jobsTab.filter = ""
	m.update(key("pgdown"))
	if m.jobsTab.cursor != 12 {
		t.Fatalf("PgDn moved to %d", m.jobsTab.cursor)
	}
}

// A server that does not manage agents (501 on /scale) is a state of its
// own: +/- says so and sends nothing, and the panel shows no limit.
func TestScaleKeysOnAServerThatCannotScale(t *testing.T) {
	m := New(t.Context(), nil, Options{})
	m.update(scaleMsg{err: errors.New("GET /scale: 501 Not Implemented: this server does not manage agents")})
	if cmd := m.update(key("+")); cmd != nil || m.status != "this server does not manage agents" {
		t.Fatalf("+ on a fixed server: cmd %v, status %q", cmd, m.status)
	}
	if label := m.scale.label(); label != "" {
		t.Fatalf("panel label %q", label)
	}
	m.update(scaleMsg{max: 4})
	if m.scale.fixed || m.scale.label() != " · max 4 (+/-)" {
		t.Fatalf("after the server answered 4: %+v %q", m.scale, m.scale.label())
	}
}

// In a matrix job's view, C cancels the whole matrix through the API; a
// job outside a matrix says it is not part of one.
func TestMatrixKeysInTheJobView(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	group := "019aa00000ffffff0000"
	var ids []string
	for _, v := range []string{"1", "2"} {
		id, _, err := r.jobs.Submit(ctx, &ci.Job{Repo: "acme/m", CloneURL: "/srv/m", Branch: "main", Group: group, Matrix: map[string]string{"v": v}}, "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	m := r.model(t)
	j, _ := r.client.GetJob(ctx, ids[0])
	m.jobsTab.openDetailForTest(j)
	cmd := m.update(key("C"))
	if cmd == nil {
		t.Fatal("C did nothing")
	}
	m.update(cmd())
	for _, id := range ids {
		if got, _ := r.store.Get(ctx, id); got.Status != ci.StatusCancelled {
			t.Fatalf("job %s is %s after C", id, got.Status)
		}
	}
	if !strings.Contains(m.status, "cancelled 2 jobs of the matrix") {
		t.Fatalf("status %q", m.status)
	}
	plain, _ := r.client.GetJob(ctx, "019aa0000001aaaa0001")
	m.jobsTab.openDetailForTest(plain)
	m.update(key("C"))
	if !strings.Contains(m.status, "is not part of a matrix") {
		t.Fatalf("status %q", m.status)
	}
}

func (t *jobsTab) openDetailForTest(j *ci.Job) { t.detail, t.log = j, newLogView() }

// A job's own event moves its agent's row at once — busy with the job when
// it starts, idle when it ends — and an agent record fetched from before
// the event does not move it back.
func TestAgentsPanelFollowsJobEvents(t *testing.T) {
	m := New(t.Context(), nil, Options{})
	seen := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	stale := []api.Agent{{Name: "local-1", Status: "idle", LastSeen: seen}}
	m.update(agentsMsg{agents: stale})
	row := func() string { return m.agents[0].Status + " " + m.agents[0].CurrentJob }
	m.update(jobEventMsg{Type: "job", JobID: "019aa0000004dddd0004", Status: ci.StatusRunning, Agent: "local-1", Time: seen.Add(time.Second)})
	if got := row(); got != "busy 019aa0000004dddd0004" {
		t.Fatalf("after the job's start event: %q", got)
	}
	m.update(agentsMsg{agents: []api.Agent{{Name: "local-1", Status: "idle", LastSeen: seen}}})
	if got := row(); got != "busy 019aa0000004dddd0004" {
		t.Fatalf("a record older than the event undid it: %q", got)
	}
	m.update(jobEventMsg{Type: "job", JobID: "019aa0000004dddd0004", Status: ci.StatusSuccess, Agent: "local-1", Time: seen.Add(2 * time.Second)})
	if got := row(); got != "idle " {
		t.Fatalf("after the job's end event: %q", got)
	}
	m.update(jobEventMsg{Type: "job", JobID: "019aa0000005eeee0005", Status: ci.StatusRunning, Agent: "local-2", Time: seen.Add(3 * time.Second)})
	if len(m.agents) != 2 || m.agents[1].Name != "local-2" || m.agents[1].Status != "busy" {
		t.Fatalf("an agent first seen in an event: %+v", m.agents)
	}
}

// The new-job prompt suggests the branch checked out where the dashboard
// runs; the jobs footer names q.
func TestNewJobPromptSuggestsTheCheckoutsBranch(t *testing.T) {
	for _, c := range []struct{ checkout, want string }{{"master", "master"}, {"", "main"}} {
		m := New(t.Context(), nil, Options{Branch: c.checkout})
		m.update(key("n"))
		if m.jobsTab.newBranch != c.want {
			t.Errorf("checkout on %q: prompt suggests %q, want %q", c.checkout, m.jobsTab.newBranch, c.want)
		}
	}
	m := New(t.Context(), nil, Options{})
	if f := ansi.Strip(m.footer()); !strings.Contains(f, "q quit") {
		t.Errorf("jobs footer %q lacks q quit", f)
	}
}
