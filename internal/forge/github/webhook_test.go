package github_test

import (
	"errors"
	"os"
	"testing"

	"github.com/raibid-labs/raibid-ci/internal/forge/github"
)

// The test vector from GitHub's "Validating webhook deliveries" docs.
func TestSignatureMatchesGitHubDocsVector(t *testing.T) {
	secret := []byte("It's a Secret to Everybody")
	body := []byte("Hello, World!")
	const want = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	if got := github.Sign(secret, body); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	if !github.ValidSignature(secret, body, want) {
		t.Fatal("the docs' signature does not validate")
	}
	for _, bad := range []string{"", want[7:], "sha1=" + want[7:], want[:len(want)-1] + "0"} {
		if github.ValidSignature(secret, body, bad) {
			t.Errorf("%q validated", bad)
		}
	}
}

func TestParsePushFixture(t *testing.T) {
	body, err := os.ReadFile("testdata/push.json")
	if err != nil {
		t.Fatal(err)
	}
	p, err := github.ParsePush(body)
	if err != nil {
		t.Fatal(err)
	}
	if p.Repo != "Codertocat/Hello-World" || p.Ref != "refs/tags/simple-tag" {
		t.Fatalf("push = %+v", p)
	}
	for _, bad := range []string{`{`, `{"ref":"refs/heads/main"}`, `{"repository":{"full_name":"noslash"}}`} {
		if _, err := github.ParsePush([]byte(bad)); !errors.Is(err, github.ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", bad, err)
		}
	}
}

func FuzzParsePush(f *testing.F) {
	if b, err := os.ReadFile("testdata/push.json"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"repository":{"full_name":"a/b"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := github.ParsePush(b)
		if err == nil && p.Repo == "" {
			t.Fatal("a push without a repository was accepted")
		}
	})
}
