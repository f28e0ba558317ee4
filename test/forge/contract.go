package forge

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
)

// Target is a Gitea the client contract runs against: the real one
// (make test-forge) or the project's fake of it (every make test). The
// same assertions hold for both, so the fake other tests lean on cannot
// drift from the Gitea it stands for.
type Target struct {
	URL, Token string
	// Owner is a user the token may write as.
	Owner string
	// Seed makes repository Owner/name with branch main at a commit and
	// returns that commit.
	Seed func(t *testing.T, name string) string
}

// ClientContract checks raibid's Gitea client (internal/forge/gitea)
// against t: what each call returns, and the errors raibid tells apart.
func ClientContract(t *testing.T, tg Target) {
	ctx := context.Background()
	c := gitea.NewClient(tg.URL, tg.Token, nil)
	head := tg.Seed(t, "contract")
	full := tg.Owner + "/contract"

	t.Run("repository", func(t *testing.T) {
		r, err := c.GetRepo(ctx, tg.Owner, "contract")
		if err != nil || r.FullName != full || r.Mirror {
			t.Fatalf("GetRepo = %+v, %v", r, err)
		}
		if _, err := c.GetRepo(ctx, tg.Owner, "no-such-repo"); !errors.Is(err, gitea.ErrNotFound) {
			t.Fatalf("GetRepo of a missing repository = %v, want ErrNotFound", err)
		}
		rs, err := c.ListRepos(ctx, tg.Owner)
		if err != nil || !slices.ContainsFunc(rs, func(r gitea.Repo) bool { return r.FullName == full }) {
			t.Fatalf("ListRepos = %+v, %v", rs, err)
		}
	})
	t.Run("branch head", func(t *testing.T) {
		if sha, err := c.BranchHead(ctx, full, "main"); err != nil || sha != head {
			t.Fatalf("BranchHead main = %q, %v; want %s", sha, err, head)
		}
		if _, err := c.BranchHead(ctx, full, "no-such-branch"); !errors.Is(err, gitea.ErrNotFound) {
			t.Fatalf("BranchHead of a missing branch = %v, want ErrNotFound", err)
		}
	})
	t.Run("owners", func(t *testing.T) {
		if ok, err := c.OwnerExists(ctx, tg.Owner); err != nil || !ok {
			t.Fatalf("OwnerExists(%s) = %v, %v", tg.Owner, ok, err)
		}
		if ok, err := c.OwnerExists(ctx, "no-such-owner-x"); err != nil || ok {
			t.Fatalf("OwnerExists of nobody = %v, %v", ok, err)
		}
	})
	t.Run("generic package", func(t *testing.T) {
		body := []byte("artifact bytes\n")
		put := func() error {
			return c.PutPackage(ctx, tg.Owner, "contract", "1.0.0", "app-linux.tar.gz", bytes.NewReader(body), int64(len(body)))
		}
		if err := put(); err != nil {
			t.Fatalf("PutPackage = %v", err)
		}
		if err := put(); !errors.Is(err, gitea.ErrConflict) {
			t.Fatalf("PutPackage of the same file again = %v, want ErrConflict", err)
		}
	})
	t.Run("delete", func(t *testing.T) {
		tg.Seed(t, "doomed")
		if err := c.DeleteRepo(ctx, tg.Owner, "doomed"); err != nil {
			t.Fatalf("DeleteRepo = %v", err)
		}
		if _, err := c.GetRepo(ctx, tg.Owner, "doomed"); !errors.Is(err, gitea.ErrNotFound) {
			t.Fatalf("GetRepo after DeleteRepo = %v, want ErrNotFound", err)
		}
	})
	t.Run("bad token", func(t *testing.T) {
		bad := gitea.NewClient(tg.URL, "not-the-token", nil)
		err := bad.PostStatus(ctx, full, head, gitea.CommitStatus{State: gitea.StateSuccess, Context: "raibid-ci/push"})
		if !errors.Is(err, gitea.ErrRejected) {
			t.Fatalf("PostStatus with a bad token = %v, want ErrRejected", err)
		}
	})
}
