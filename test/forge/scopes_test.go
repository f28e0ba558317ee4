package forge_test

import (
	"slices"
	"testing"

	"github.com/raibid-labs/raibid-ci/test/forge"
)

// The scopes the forge suite gives its token come from install.md's
// paragraph; the ones raibid's features need must be there.
func TestDocumentedScopes(t *testing.T) {
	scopes, err := forge.DocumentedScopes()
	if err != nil {
		t.Fatal(err)
	}
	for _, need := range []string{"write:repository", "read:organization", "read:user", "write:package"} {
		if !slices.Contains(scopes, need) {
			t.Errorf("install.md's token scopes %v lack %s", scopes, need)
		}
	}
}
