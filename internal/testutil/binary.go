package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// BuildRaibid builds the raibid binary into dir, for suites that drive the
// binary (e2e, test/cluster, test/forge), and returns its path.
func BuildRaibid(dir string) (string, error) {
	bin := filepath.Join(dir, "raibid")
	build := exec.Command("go", "build", "-o", bin, "github.com/raibid-labs/raibid-ci/cmd/raibid")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("build raibid: %w", err)
	}
	return bin, nil
}
