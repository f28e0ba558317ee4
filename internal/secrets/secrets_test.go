package secrets_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raibid-labs/raibid-ci/internal/secrets"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

func newStore(t *testing.T) (*secrets.Store, string, *testutil.Redis) {
	t.Helper()
	r := testutil.StartRedis(t)
	path := filepath.Join(t.TempDir(), "secrets-key")
	if _, err := secrets.LoadOrCreateKeyring(path); err != nil {
		t.Fatal(err)
	}
	return secrets.NewStore(r.Client(), "", secrets.FileKeys(path)), path, r
}

func TestSecretsEncryptedAtRestAndScoped(t *testing.T) {
	st, path, r := newStore(t)
	ctx := context.Background()
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", fi.Mode().Perm())
	}
	repo, _ := secrets.RepoScope("acme/widget")
	org, _ := secrets.OrgScope("acme")
	st.Set(ctx, org, "DEPLOY_TOKEN", "org-wide-value-1")
	st.Set(ctx, org, "SHARED", "org-shared-value-2")
	st.Set(ctx, repo, "DEPLOY_TOKEN", "repo-value-3")
	// Nothing in Redis holds a value in the clear.
	keys, _ := r.Client().Keys(ctx, "*").Result()
	for _, k := range keys {
		dump, _ := r.Client().Dump(ctx, k).Result()
		for _, v := range []string{"org-wide-value-1", "org-shared-value-2", "repo-value-3"} {
			if strings.Contains(dump, v) {
				t.Fatalf("key %s holds %q in the clear", k, v)
			}
		}
	}
	got, err := st.ForRepo(ctx, "acme/widget", []string{"DEPLOY_TOKEN", "SHARED"})
	if err != nil || got["DEPLOY_TOKEN"] != "repo-value-3" || got["SHARED"] != "org-shared-value-2" {
		t.Fatalf("for repo: %v %v", got, err)
	}
	if got, err := st.ForRepo(ctx, "acme/other", []string{"DEPLOY_TOKEN"}); err != nil || got["DEPLOY_TOKEN"] != "org-wide-value-1" {
		t.Fatalf("org secret for another repo: %v %v", got, err)
	}
	if _, err := st.ForRepo(ctx, "evil/widget", []string{"DEPLOY_TOKEN"}); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("another owner's repo got acme's secret: %v", err)
	}
	list, _ := st.List(ctx, org)
	if len(list) != 2 || list[0].Name != "DEPLOY_TOKEN" || list[0].Scope != "org:acme" || list[0].UpdatedAt.IsZero() {
		t.Fatalf("list %+v", list)
	}
	if err := st.Delete(ctx, repo, "DEPLOY_TOKEN"); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, repo, "DEPLOY_TOKEN"); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	for _, bad := range []string{"1ABC", "A-B", "", "X Y", strings.Repeat("A", 200)} {
		if _, err := st.Set(ctx, repo, bad, "v"); !errors.Is(err, secrets.ErrInvalid) {
			t.Errorf("name %q accepted: %v", bad, err)
		}
	}
}

// A sealed value is bound to its scope and name: copied under another name
// (by someone who can write Redis) it does not decrypt.
func TestMovedCiphertextDoesNotDecrypt(t *testing.T) {
	st, _, r := newStore(t)
	ctx := context.Background()
	a, _ := secrets.RepoScope("acme/a")
	b, _ := secrets.RepoScope("evil/b")
	st.Set(ctx, a, "TOKEN", "value-of-acme")
	raw, _ := r.Client().HGet(ctx, "secrets:repo:acme/a", "TOKEN").Result()
	r.Client().HSet(ctx, "secrets:repo:evil/b", "TOKEN", raw)
	_ = b
	if v, err := st.ForRepo(ctx, "evil/b", []string{"TOKEN"}); err == nil {
		t.Fatalf("moved ciphertext decrypted to %q", v["TOKEN"])
	}
}

func TestRotateReencryptsEverySecret(t *testing.T) {
	st, path, r := newStore(t)
	ctx := context.Background()
	repo, _ := secrets.RepoScope("acme/widget")
	org, _ := secrets.OrgScope("acme")
	st.Set(ctx, repo, "A", "value-a")
	st.Set(ctx, org, "B", "value-b")
	before, _ := os.ReadFile(path)
	changed, newKey, err := secrets.Rotate(ctx, path, st)
	if err != nil || changed != 2 || !newKey {
		t.Fatalf("rotate: %d %v %v", changed, newKey, err)
	}
	after, _ := os.ReadFile(path)
	if string(after) == string(before) || strings.Count(strings.TrimSpace(string(after)), "\n") != 0 {
		t.Fatalf("key file after rotation: %q", after)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", fi.Mode().Perm())
	}
	got, err := st.ForRepo(ctx, "acme/widget", []string{"A", "B"})
	if err != nil || got["A"] != "value-a" || got["B"] != "value-b" {
		t.Fatalf("after rotation: %v %v", got, err)
	}
	// The old key is gone: a value sealed with it no longer opens.
	old, _ := secrets.ParseKeyring(string(before))
	oldStore := secrets.NewStore(r.Client(), "", func() (*secrets.Keyring, error) { return old, nil })
	if _, err := oldStore.ForRepo(ctx, "acme/widget", []string{"A"}); !errors.Is(err, secrets.ErrNoKey) {
		t.Fatalf("old key still opens the rotated value: %v", err)
	}
}
