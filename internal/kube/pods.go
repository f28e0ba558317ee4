package kube

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	// ScaledJob is the KEDA ScaledJob that made the pod ("" otherwise).
	ScaledJob string
	// Problem is why the pod cannot start, as Kubernetes says it
	// ("ErrImagePull: …", "Unschedulable: …"); "" when nothing is wrong.
	// ProblemSince is when it began (as near as the pod tells).
	Problem      string
	ProblemSince time.Time
	// Unschedulable: the problem is that no node has room (yet), which a
	// running build ending may mend, unlike the others.
	Unschedulable bool
}

// startProblems are the container waiting reasons that no wait cures: the
// image cannot be pulled or the container cannot be made.
var startProblems = map[string]bool{"ErrImagePull": true, "ImagePullBackOff": true, "InvalidImageName": true,
	"ErrImageNeverPull": true, "CreateContainerConfigError": true, "CreateContainerError": true, "RunContainerError": true}

// problemOf is why p cannot start, since when, and whether it is that no
// node has room ("" when nothing is wrong).
func problemOf(p *corev1.Pod) (problem string, since time.Time, unschedulable bool) {
	for _, cs := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		if w := cs.State.Waiting; w != nil && startProblems[w.Reason] {
			return strings.TrimSuffix(w.Reason+": "+w.Message, ": "), p.CreationTimestamp.Time, false
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return strings.TrimSuffix("Unschedulable: "+c.Message, ": "), c.LastTransitionTime.Time, true
		}
	}
	return "", time.Time{}, false
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
			JobID: p.Labels[LabelJobID], JobName: p.Labels["job-name"], StartedAt: p.CreationTimestamp.Time,
			ScaledJob: p.Labels["scaledjob.keda.sh/name"]}
		pod.Problem, pod.ProblemSince, pod.Unschedulable = problemOf(&p)
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

// DeleteJob deletes the Kubernetes Job name with its pods.
func (l *PodLister) DeleteJob(ctx context.Context, name string) error {
	bg := metav1.DeletePropagationBackground
	err := l.Client.Resource(JobsResource).Namespace(l.Namespace).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &bg})
	if err != nil {
		return fmt.Errorf("delete job %s/%s: %w", l.Namespace, name, err)
	}
	return nil
}
