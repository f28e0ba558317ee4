package artifacts_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/artifacts"
)

const job = "019aa0000001aaaa0001"

// An artifact streams in through its sha256; past the job's cap nothing is
// kept; retention prunes whole job directories by their newest file.
func TestPutCapAndPrune(t *testing.T) {
	st := &artifacts.Store{Dir: t.TempDir(), MaxJobBytes: 1000, Retention: time.Hour}
	body := bytes.Repeat([]byte("x"), 600)
	meta, err := st.Put(job, "app.bin", bytes.NewReader(body))
	sum := sha256.Sum256(body)
	if err != nil || meta.Size != 600 || meta.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("put = %+v, %v", meta, err)
	}
	f, err := st.Open(job, "app.bin")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(got, body) {
		t.Fatal("stored bytes differ")
	}
	if _, err := st.Put(job, "more.bin", bytes.NewReader(body)); !errors.Is(err, artifacts.ErrTooLarge) || !strings.Contains(err.Error(), "may total 1000 bytes") {
		t.Fatalf("past the cap: %v", err)
	}
	if _, err := st.Open(job, "more.bin"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a refused upload left a file: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(st.Dir, job)); len(entries) != 1 {
		t.Fatalf("job dir holds %d entries (temp files left?)", len(entries))
	}
	// Replacing a name counts the new size, not both.
	if _, err := st.Put(job, "app.bin", bytes.NewReader(bytes.Repeat([]byte("y"), 900))); err != nil {
		t.Fatalf("replace: %v", err)
	}
	for _, bad := range []string{"../escape", "a/b", ".hidden", ""} {
		if _, err := st.Put(job, bad, strings.NewReader("x")); err == nil {
			t.Errorf("name %q accepted", bad)
		}
	}
	if freed, err := st.Prune(time.Now()); err != nil || freed != 0 {
		t.Fatalf("prune of fresh artifacts = %d, %v", freed, err)
	}
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(filepath.Join(st.Dir, job, "app.bin"), old, old)
	if freed, err := st.Prune(time.Now()); err != nil || freed != 900 || st.Usage() != 0 {
		t.Fatalf("prune = %d, %v; usage %d", freed, err, st.Usage())
	}
}
