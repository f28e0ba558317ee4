package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

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
//
// The deploy tree leaves spec.maxReplicaCount out of its file: Flux's
// server-side apply then never owns the field, so a PUT /scale lasts
// across reconciles. The server sets it to Default while it is unset
// (EnsureMax), since KEDA's own default is 100 agents.
type ScaledJobScaler struct {
	Client    dynamic.Interface
	Namespace string
	Name      string
	// Default is the limit while the ScaledJob sets none (--max-agents).
	Default int
}

// ScaledJobName is the ScaledJob whose pods run ci-jobs' entries.
func (s *ScaledJobScaler) ScaledJobName() string { return s.Name }

// kedaDefaultMax is KEDA's maxReplicaCount when the field is unset.
const kedaDefaultMax = 100

// MaxAgents is spec.maxReplicaCount (Default, or KEDA's 100, when unset).
func (s *ScaledJobScaler) MaxAgents(ctx context.Context) (int, error) {
	n, found, err := s.current(ctx)
	switch {
	case err != nil:
		return 0, err
	case !found && s.Default > 0:
		return s.Default, nil
	case !found:
		return kedaDefaultMax, nil
	}
	return n, nil
}

func (s *ScaledJobScaler) current(ctx context.Context) (n int, found bool, err error) {
	obj, err := s.Client.Resource(ScaledJobResource).Namespace(s.Namespace).Get(ctx, s.Name, metav1.GetOptions{})
	if err != nil {
		return 0, false, fmt.Errorf("scaledjob %s/%s: %w", s.Namespace, s.Name, err)
	}
	v, found, err := unstructured.NestedInt64(obj.Object, "spec", "maxReplicaCount")
	if err != nil {
		return 0, false, fmt.Errorf("scaledjob %s/%s: spec.maxReplicaCount: %w", s.Namespace, s.Name, err)
	}
	return int(v), found, nil
}

// EnsureMax sets spec.maxReplicaCount to Default when the ScaledJob has
// none (a first install; a limit set before, by PUT /scale, stays). It
// reports whether the field is set now.
func (s *ScaledJobScaler) EnsureMax(ctx context.Context) (bool, error) {
	_, found, err := s.current(ctx)
	if err != nil || found || s.Default <= 0 {
		return found, err
	}
	return true, s.SetMaxAgents(ctx, s.Default)
}

// RunEnsureMax calls EnsureMax until the field is set (the ScaledJob may
// not exist yet when the server starts: Flux applies them side by side) or
// ctx ends.
func (s *ScaledJobScaler) RunEnsureMax(ctx context.Context, every time.Duration, warn func(error)) {
	for {
		set, err := s.EnsureMax(ctx)
		if set {
			return
		}
		if err != nil && ctx.Err() == nil {
			warn(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// SetMaxAgents merge-patches spec.maxReplicaCount, as raibid's own field
// manager: Flux, whose file does not name the field, leaves it alone.
func (s *ScaledJobScaler) SetMaxAgents(ctx context.Context, n int) error {
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"maxReplicaCount": n}})
	_, err := s.Client.Resource(ScaledJobResource).Namespace(s.Namespace).Patch(ctx, s.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "raibid"})
	if err != nil {
		return fmt.Errorf("scaledjob %s/%s: %w", s.Namespace, s.Name, err)
	}
	return nil
}
