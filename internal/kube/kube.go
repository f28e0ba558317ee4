// Package kube is raibid's side of Kubernetes (client-go): the executor that
// creates one batch/v1 Job per queued job (`raibid server --executor
// kubernetes`) and reports its pods' failures, the scaler that patches the
// agent ScaledJob's maxReplicaCount (PUT /scale), and the listing of agent
// pods for GET /agents. It knows nothing of HTTP; the server calls it.
package kube

import (
	"context"
	"fmt"
	"os"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Labels on everything raibid starts, and what selects agent pods.
const (
	LabelName  = "app.kubernetes.io/name"
	AgentName  = "raibid-agent"
	LabelJobID = "raibid.dev/job-id"
)

// AgentSelector selects agent pods and Jobs, from the ScaledJob or the executor.
const AgentSelector = LabelName + "=" + AgentName

// Resources raibid reads and writes. Everything goes through the dynamic
// client with k8s.io/api's types converted to and from unstructured objects:
// client-go's typed clientset registers every API group at process start
// (7 ms and ~30 MiB in every raibid process, agents included — measured),
// which a one-job agent pod should not pay for.
var (
	JobsResource = schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}
	PodsResource = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
)

// ListKinds maps raibid's resources to their list kinds (for fake clients).
var ListKinds = map[schema.GroupVersionResource]string{
	JobsResource: "JobList", PodsResource: "PodList", ScaledJobResource: "ScaledJobList",
}

// Connect uses the pod's service account inside a cluster, else $KUBECONFIG
// or ~/.kube/config.
func Connect() (dynamic.Interface, error) {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("kubernetes: no in-cluster config and no kubeconfig (%s): %w", os.Getenv("KUBECONFIG"), err)
		}
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return dyn, nil
}

// list reads every object of a resource matching selector into T.
func list[T any](ctx context.Context, c dynamic.Interface, gvr schema.GroupVersionResource, ns, selector string) ([]T, error) {
	l, err := c.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	out := make([]T, len(l.Items))
	for i := range l.Items {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(l.Items[i].Object, &out[i]); err != nil {
			return nil, fmt.Errorf("%s %s: %w", gvr.Resource, l.Items[i].GetName(), err)
		}
	}
	return out, nil
}
