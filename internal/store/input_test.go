package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/raibid-labs/raibid-ci/internal/ci"
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
