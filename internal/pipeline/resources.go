package pipeline

import (
	"strconv"

	"gopkg.in/yaml.v3"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/raibid-labs/raibid-ci/internal/yamlfile"
)

// Resources is what a pipeline (or a step) needs of the agent: GPUs above
// all (a job needing one waits for an agent with a free GPU slot), and the
// CPUs and memory the Kubernetes executor asks for.
type Resources struct {
	GPU    int
	CPU    int
	Memory string // a Kubernetes quantity: 8Gi
}

// GPUs is the GPUs a job of the pipeline needs: the most any part asks for.
func (p *Pipeline) GPUs() int {
	n := p.Resources.GPU
	for _, s := range p.Steps {
		n = max(n, s.Resources.GPU)
	}
	return n
}

// parseResources reads `resources: {gpu: N, cpu: N, memory: 8Gi}`.
func parseResources(f *yamlfile.File, n *yaml.Node, field string) (Resources, error) {
	var r Resources
	if n.Kind != yaml.MappingNode {
		return r, f.At(n, field, "must be a mapping of gpu, cpu, memory")
	}
	err := f.Fields(n, field+".", func(k, v *yaml.Node, name string) error {
		switch k.Value {
		case "gpu", "cpu":
			i, err := strconv.Atoi(v.Value)
			if err != nil || v.Kind != yaml.ScalarNode || i < 0 || i > 64 {
				return f.At(v, name, "must be a whole number from 0 to 64")
			}
			if k.Value == "gpu" {
				r.GPU = i
			} else {
				r.CPU = i
			}
		case "memory":
			q, err := resource.ParseQuantity(v.Value)
			if err != nil || q.Sign() <= 0 {
				return f.At(v, name, "must be a quantity such as 8Gi")
			}
			r.Memory = v.Value
		default:
			return f.At(k, name, "unknown field (allowed: gpu, cpu, memory)")
		}
		return nil
	})
	return r, err
}
