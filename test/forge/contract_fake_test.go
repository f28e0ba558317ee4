package forge_test

import (
	"testing"

	"github.com/raibid-labs/raibid-ci/internal/testutil/fakeforge"
	"github.com/raibid-labs/raibid-ci/test/forge"
)

// The client contract against the project's fake Gitea (every make test);
// make test-forge runs the same contract against the real one.
func TestClientContractWithTheFakeGitea(t *testing.T) {
	fake := fakeforge.NewGitea(t, "contract-token")
	fake.AddUser("ann")
	forge.ClientContract(t, forge.Target{URL: fake.URL, Token: "contract-token", Owner: "ann",
		Seed: func(t *testing.T, name string) string {
			const head = "bffeb74224043ba2feb48d137756c8a9331c449a"
			fake.AddRepo(fakeforge.GiteaRepo{Owner: "ann", Name: name})
			fake.SetBranch("ann/"+name, "main", head)
			return head
		}})
}
