package jobs_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/store"
)

// TestSubmitRefusesInputGitCouldMisread: every way into the queue (webhook,
// POST /jobs, retry) passes through Submit, which refuses what git could read
// as an option or a command-running transport, and writes nothing.
func TestSubmitRefusesInputGitCouldMisread(t *testing.T) {
	s, q, _ := newStore(t)
	ctx := context.Background()
	cases := []struct {
		name string
		mod  func(*ci.Job)
	}{
		{"file url option", func(j *ci.Job) { j.CloneURL = "file://--upload-pack=id>/tmp/pwned;" }},
		{"bare option", func(j *ci.Job) { j.CloneURL = "-oProxyCommand=touch /tmp/x" }},
		{"ext transport", func(j *ci.Job) { j.CloneURL = "ext::sh -c touch% /tmp/x" }},
		{"ssh", func(j *ci.Job) { j.CloneURL = "ssh://git@gitea.local/acme/x.git" }},
		{"relative path", func(j *ci.Job) { j.CloneURL = "acme/x" }},
		{"newline", func(j *ci.Job) { j.CloneURL = "http://gitea.local/a\n/b.git" }},
		{"branch option", func(j *ci.Job) { j.Branch = "--foo" }},
		{"branch dotdot", func(j *ci.Job) { j.Branch = "main..evil" }},
		{"branch empty", func(j *ci.Job) { j.Branch = "" }},
		{"commit option", func(j *ci.Job) { j.Commit = "--upload-pack=x" }},
		{"commit short", func(j *ci.Job) { j.Commit = "0123456" }},
		{"commit upper case", func(j *ci.Job) { j.Commit = strings.ToUpper("0123456789abcdef0123456789abcdef01234567") }},
	}
	for _, c := range cases {
		j := push("acme/widget", "main")
		c.mod(j)
		if _, _, err := s.Submit(ctx, j, ""); !errors.Is(err, ci.ErrInvalid) {
			t.Errorf("%s: Submit = %v, want ci.ErrInvalid", c.name, err)
		}
	}
	st, err := q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Lag != 0 {
		t.Fatalf("refused jobs reached the queue: lag %d", st.Lag)
	}
}

// TestSubmitDropsCredentialsFromCloneURL: a job holds no secret.
func TestSubmitDropsCredentialsFromCloneURL(t *testing.T) {
	s, _, r := newStore(t)
	ctx := context.Background()
	j := push("acme/widget", "main")
	j.CloneURL = "https://bot:s3cret-tok@gitea.local/acme/widget.git"
	id, _, err := s.Submit(ctx, j, "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.CloneURL != "https://gitea.local/acme/widget.git" {
		t.Fatalf("clone url %q", got.CloneURL)
	}
	raw, _ := r.Client().HGetAll(ctx, "job:"+id).Result()
	for k, v := range raw {
		if strings.Contains(v, "s3cret-tok") {
			t.Fatalf("credential stored in job hash field %s", k)
		}
	}
}

// Short ids: the tail people copy from the dashboard (or a prefix of the
// id) finds the job through an index; an ambiguous one names the matches.
func TestResolveShortIDs(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	var ids []string
	for range 3 {
		id, _, err := s.Submit(ctx, push("acme/widget", "main"), "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		for _, short := range []string{id, id[len(id)-8:], id[len(id)-8 : len(id)-2]} {
			if got, err := s.Resolve(ctx, short); err != nil || got != id {
				t.Errorf("Resolve(%s) = %s, %v; want %s", short, got, err, id)
			}
		}
	}
	// The three ids share their time prefix: a prefix of it is ambiguous.
	_, err := s.Resolve(ctx, ids[0][:6])
	var amb *store.AmbiguousError
	if !errors.As(err, &amb) || len(amb.IDs) != 3 || !errors.Is(err, ci.ErrInvalid) {
		t.Fatalf("ambiguous prefix: %v", err)
	}
	if _, err := s.Resolve(ctx, "ffffffff"); !errors.Is(err, ci.ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	if _, err := s.Resolve(ctx, "xyz"); !errors.Is(err, ci.ErrInvalid) {
		t.Fatalf("not hex: %v", err)
	}
}
