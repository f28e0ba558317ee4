package pipeline

import (
	"regexp"
	"strconv"

	"gopkg.in/yaml.v3"

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

// memoryQuantity is a memory size as Kubernetes writes it (8Gi, 512Mi,
// 1.5G, 1000000): the plain forms of its quantities, so the executor can
// hand it on unchanged. Parsed here rather than with Kubernetes' own
// package, which only internal/kube may import.
var memoryQuantity = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$`)

// zeroQuantity is a quantity of nothing (0, 0.0Gi).
var zeroQuantity = regexp.MustCompile(`^0+(\.0+)?[A-Za-z]*$`)

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
			if v.Kind != yaml.ScalarNode || !memoryQuantity.MatchString(v.Value) || zeroQuantity.MatchString(v.Value) {
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
