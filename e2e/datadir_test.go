package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A --data-dir that already exists with a mode others can enter is made
// the owner's alone: it holds the webhook secret and the API token.
func TestUpMakesAnExistingDataDirPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	p := startProc(t, nil, "up", "--data-dir", dir, "--addr", freeAddr(t), "--agents", "0")
	p.waitFor("Agents", 20*time.Second)
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if mode := st.Mode().Perm(); mode != 0o700 {
		t.Fatalf("data dir mode %o, want 700", mode)
	}
}
