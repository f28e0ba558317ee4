package kube

import (
	"context"
	"encoding/json"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
)

// ScaledJobResource is KEDA's ScaledJob.
var ScaledJobResource = schema.GroupVersionResource{Group: "keda.sh", Version: "v1alpha1", Resource: "scaledjobs"}

// ScaledJobScaler reads and sets the agent ScaledJob's maxReplicaCount: the
// cluster's "how many agents at most", which is what the dashboard's +/-
// change. A dynamic client keeps KEDA's Go types out of the binary.
type ScaledJobScaler struct {
	Client    dynamic.Interface
	Namespace string
	Name      string
}

// MaxAgents is spec.maxReplicaCount (KEDA's default 100 when unset).
func (s *ScaledJobScaler) MaxAgents(ctx context.Context) (int, error) {
	obj, err := s.Client.Resource(ScaledJobResource).Namespace(s.Namespace).Get(ctx, s.Name, metav1.GetOptions{})
	if err != nil {
		return 0, fmt.Errorf("scaledjob %s/%s: %w", s.Namespace, s.Name, err)
	}
	n, found, err := unstructured.NestedInt64(obj.Object, "spec", "maxReplicaCount")
	if err != nil {
		return 0, fmt.Errorf("scaledjob %s/%s: spec.maxReplicaCount: %w", s.Namespace, s.Name, err)
	}
	if !found {
		return 100, nil
	}
	return int(n), nil
}

// SetMaxAgents merge-patches spec.maxReplicaCount. Flux would put the file's
// value back on its next reconcile unless the field is left out of the file
// or the Kustomization is suspended; docs/operations.md says so.
func (s *ScaledJobScaler) SetMaxAgents(ctx context.Context, n int) error {
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"maxReplicaCount": n}})
	_, err := s.Client.Resource(ScaledJobResource).Namespace(s.Namespace).Patch(ctx, s.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "raibid"})
	if err != nil {
		return fmt.Errorf("scaledjob %s/%s: %w", s.Namespace, s.Name, err)
	}
	return nil
}
