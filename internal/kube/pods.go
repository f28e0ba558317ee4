package kube

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/dynamic"
)

// Pod is an agent pod as GET /agents shows it in Kubernetes mode.
type Pod struct {
	Name      string
	Phase     string // pending, running, succeeded, failed (lower case)
	Node      string
	JobID     string // from the executor's label; "" for ScaledJob pods
	JobName   string // the Kubernetes Job that owns the pod
	StartedAt time.Time
	Ready     bool // holds a job (the agent's ready file)
}

// AgentPods lists the agent pods in namespace, oldest first.
func AgentPods(ctx context.Context, c dynamic.Interface, namespace string) ([]Pod, error) {
	pods, err := list[corev1.Pod](ctx, c, PodsResource, namespace, AgentSelector)
	if err != nil {
		return nil, fmt.Errorf("agent pods in %s: %w", namespace, err)
	}
	out := make([]Pod, 0, len(pods))
	for _, p := range pods {
		pod := Pod{Name: p.Name, Phase: strings.ToLower(string(p.Status.Phase)), Node: p.Spec.NodeName,
			JobID: p.Labels[LabelJobID], JobName: p.Labels["job-name"], StartedAt: p.CreationTimestamp.Time}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				pod.Ready = true
			}
		}
		out = append(out, pod)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].StartedAt.Before(out[j].StartedAt) })
	return out, nil
}

// PodLister lists the agent pods of one namespace.
type PodLister struct {
	Client    dynamic.Interface
	Namespace string
}

// AgentPods lists the agent pods.
func (l *PodLister) AgentPods(ctx context.Context) ([]Pod, error) {
	return AgentPods(ctx, l.Client, l.Namespace)
}
