package gitea_test

import (
	"errors"
	"os"
	"path/filepath"
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
			Branch: "main", Commit: "bffeb74224043ba2feb48d137756c8a9331c449a", Author: "ann", Message: "Fix the frobnicator\n"}, ""},
		{"push-no-head-commit.json", &gitea.Push{Repo: "acme/widget", CloneURL: "http://gitea.local:3000/acme/widget.git",
			Branch: "feature/x", Commit: "bffeb74224043ba2feb48d137756c8a9331c449a", Author: "ann", Message: "Fix the frobnicator\n"}, ""},
		{"push-tag.json", nil, "tag push v1.0.0"},
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
			if (d.Push == nil) != (c.push == nil) || (c.push != nil && *d.Push != *c.push) {
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
			if d.Push.Repo == "" || d.Push.CloneURL == "" || d.Push.Branch == "" || len(d.Push.Commit) < 40 {
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
