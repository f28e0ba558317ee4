package gitea_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/raibid-labs/raibid-ci/internal/forge"
	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParsePushFixtures(t *testing.T) {
	cases := []struct {
		file    string
		push    *gitea.Push
		ignored string
	}{
		{"push.json", &gitea.Push{Repo: "acme/widget", CloneURL: "http://gitea.local:3000/acme/widget.git",
			Branch: "main", Commit: "bffeb74224043ba2feb48d137756c8a9331c449a", Author: "ann", Message: "Fix the frobnicator\n",
			Before: "28e1879d029cb852e4844d9c718537df08844e03", Changed: []string{"src/lib.rs"}}, ""},
		{"push-no-head-commit.json", &gitea.Push{Repo: "acme/widget", CloneURL: "http://gitea.local:3000/acme/widget.git",
			Branch: "feature/x", Commit: "bffeb74224043ba2feb48d137756c8a9331c449a", Author: "ann", Message: "Fix the frobnicator\n",
			Before: "28e1879d029cb852e4844d9c718537df08844e03", Changed: []string{"src/lib.rs"}}, ""},
		{"push-tag.json", &gitea.Push{Repo: "acme/widget", CloneURL: "http://gitea.local:3000/acme/widget.git",
			Tag: "v1.0.0", Commit: "bffeb74224043ba2feb48d137756c8a9331c449a", Author: "ann", Message: "Fix the frobnicator\n"}, ""},
		{"push-delete.json", nil, "branch feature/old deleted"},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			d, err := gitea.ParsePush(fixture(t, c.file))
			if err != nil {
				t.Fatal(err)
			}
			if d.Ignored != c.ignored {
				t.Fatalf("ignored = %q, want %q", d.Ignored, c.ignored)
			}
			if !reflect.DeepEqual(d.Push, c.push) {
				t.Fatalf("push = %+v, want %+v", d.Push, c.push)
			}
		})
	}
}

func TestParsePushMalformed(t *testing.T) {
	for name, body := range map[string]string{
		"not json":      `{"ref": `,
		"no repository": `{"ref":"refs/heads/main","after":"bffeb74224043ba2feb48d137756c8a9331c449a"}`,
		"no ref":        `{"after":"bffeb74224043ba2feb48d137756c8a9331c449a","repository":{"full_name":"a/b","clone_url":"http://x/a/b.git"}}`,
		"bad after":     `{"ref":"refs/heads/main","after":"HEAD; rm -rf /","repository":{"full_name":"a/b","clone_url":"http://x/a/b.git"}}`,
		"no clone url":  `{"ref":"refs/heads/main","after":"bffeb74224043ba2feb48d137756c8a9331c449a","repository":{"full_name":"a/b"}}`,
		"wrong type":    `{"ref":5}`,
		"array":         `[]`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := gitea.ParsePush([]byte(body))
			if !errors.Is(err, gitea.ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
}

// Pull requests: opened, reopened and synchronized build the head commit
// from the head repository (a fork's marked); closed cancels; others are
// ignored.
func TestParsePullRequestFixtures(t *testing.T) {
	opened, err := gitea.ParsePullRequest(fixture(t, "pull_request-opened.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := &gitea.PullRequest{Repo: "acme/widget", CloneURL: "http://gitea.local:3000/acme/widget.git", Number: 12,
		BaseBranch: "main", HeadBranch: "faster", Commit: "c0ffee0000000000000000000000000000000001",
		BaseCommit: "28e1879d029cb852e4844d9c718537df08844e03", Author: "bob", Title: "Faster frobnication"}
	if !reflect.DeepEqual(opened.PullRequest, want) {
		t.Fatalf("opened = %+v\nwant %+v", opened.PullRequest, want)
	}
	fork, err := gitea.ParsePullRequest(fixture(t, "pull_request-synchronized-fork.json"))
	if err != nil || fork.PullRequest == nil || !fork.PullRequest.FromFork || fork.PullRequest.Repo != "acme/widget" ||
		fork.PullRequest.CloneURL != "http://gitea.local:3000/bob/widget.git" || fork.PullRequest.HeadBranch != "fork-fix" {
		t.Fatalf("fork = %+v, %v", fork.PullRequest, err)
	}
	closed, err := gitea.ParsePullRequest(fixture(t, "pull_request-closed.json"))
	if err != nil || closed.Closed == nil || closed.Closed.Number != 12 || closed.PullRequest != nil {
		t.Fatalf("closed = %+v, %v", closed, err)
	}
	edited, err := gitea.ParsePullRequest(fixture(t, "pull_request-edited.json"))
	if err != nil || edited.Ignored != "pull request #12 edited" {
		t.Fatalf("edited = %+v, %v", edited, err)
	}
	for name, body := range map[string]string{
		"no head": `{"action":"opened","pull_request":{"number":1,"base":{"ref":"main","repo":{"full_name":"a/b"}}}}`,
		"bad sha": `{"action":"opened","pull_request":{"number":1,"base":{"ref":"main","repo":{"full_name":"a/b"}},"head":{"ref":"x","sha":"--upload-pack=x","repo":{"full_name":"a/b","clone_url":"http://x/a/b.git"}}}}`,
		"no json": `{`,
	} {
		if _, err := gitea.ParsePullRequest([]byte(body)); !errors.Is(err, gitea.ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

// A tag's create event builds the same commit as its tag push; a branch's
// is ignored.
func TestParseCreate(t *testing.T) {
	d, err := gitea.ParseCreate(fixture(t, "create-tag.json"))
	want := &gitea.Push{Repo: "acme/widget", CloneURL: "http://gitea.local:3000/acme/widget.git", Tag: "v1.0.0", Commit: "bffeb74224043ba2feb48d137756c8a9331c449a"}
	if err != nil || !reflect.DeepEqual(d.Push, want) {
		t.Fatalf("create tag = %+v, %v", d.Push, err)
	}
	if d, err := gitea.ParseCreate(fixture(t, "create-branch.json")); err != nil || d.Push != nil || d.Ignored == "" {
		t.Fatalf("create branch = %+v, %v", d, err)
	}
}

// FuzzParsePush: any input either parses to a usable push, is ignored with a
// reason, or is ErrMalformed; it never panics.
func FuzzParsePush(f *testing.F) {
	for _, name := range []string{"push.json", "push-tag.json", "push-delete.json", "push-no-head-commit.json"} {
		f.Add(fixture(f, name))
	}
	f.Add([]byte(`{"ref":"refs/heads/x","after":"` + strings.Repeat("0", 64) + `","repository":{"full_name":"a/b"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := gitea.ParsePush(body)
		switch {
		case err != nil:
			if !errors.Is(err, gitea.ErrMalformed) {
				t.Fatalf("unexpected error kind: %v", err)
			}
		case d.Push != nil:
			if d.Push.Repo == "" || d.Push.CloneURL == "" || (d.Push.Branch == "") == (d.Push.Tag == "") || len(d.Push.Commit) < 40 {
				t.Fatalf("incomplete push %+v", d.Push)
			}
		case d.Ignored == "":
			t.Fatal("neither push nor reason")
		}
	})
}

// FuzzSignature: only the exact HMAC of the body under the secret passes.
func FuzzSignature(f *testing.F) {
	body := fixture(f, "push.json")
	f.Add([]byte("s3cret"), body, forge.SignHex([]byte("s3cret"), body))
	f.Add([]byte("s3cret"), body, "")
	f.Add([]byte(""), body, forge.SignHex(nil, body))
	f.Fuzz(func(t *testing.T, secret, body []byte, sig string) {
		want := len(secret) > 0 && sig == forge.SignHex(secret, body)
		upper := len(secret) > 0 && strings.EqualFold(sig, forge.SignHex(secret, body))
		got := forge.ValidHMACSHA256(secret, body, sig)
		if got && !upper || !got && want {
			t.Fatalf("ValidHMACSHA256(%q, body, %q) = %v", secret, sig, got)
		}
	})
}
