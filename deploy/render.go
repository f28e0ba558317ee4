// Package deploy holds raibid's Kubernetes tree (flux/, k3s/, images/,
// systemd/). Its Go side only renders the tree, for the tests that check it:
// deploy_test decodes every object strictly, test/cluster applies them to a
// real API server. No product package imports it.
package deploy

import (
	"fmt"
	"path/filepath"
	"runtime"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Kustomizations are the directories Flux applies (see
// flux/clusters/dgx-spark), relative to this directory.
var Kustomizations = []string{
	"flux/clusters/dgx-spark",
	"flux/infrastructure/controllers",
	"flux/infrastructure/configs",
	"flux/apps/raibid",
	"flux/apps/raibid-gpu",
}

// Dir is this directory, wherever the checkout is.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// Render runs kustomize, in-process with its own library, on dir (relative
// to Dir) and returns each object's YAML, in kustomize's order.
func Render(dir string) ([][]byte, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(Dir(), dir))
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	var out [][]byte
	for _, r := range m.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			return nil, fmt.Errorf("%s: %s %s: %w", dir, r.GetKind(), r.GetName(), err)
		}
		out = append(out, y)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s builds nothing", dir)
	}
	return out, nil
}
