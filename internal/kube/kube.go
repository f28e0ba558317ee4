// Package kube is raibid's side of Kubernetes (client-go): the executor that
// creates one batch/v1 Job per queued job (`raibid server --executor
// kubernetes`) and reports its pods' failures, the scaler that patches the
// agent ScaledJob's maxReplicaCount (PUT /scale), and the listing of agent
// pods for GET /agents. It knows nothing of HTTP; the server calls it.
package kube

import (
	"fmt"
	"os"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
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

// Clients are the typed and dynamic clients of one cluster.
type Clients struct {
	Typed   kubernetes.Interface
	Dynamic dynamic.Interface
}

// Connect uses the pod's service account inside a cluster, else $KUBECONFIG
// or ~/.kube/config.
func Connect() (*Clients, error) {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("kubernetes: no in-cluster config and no kubeconfig (%s): %w", os.Getenv("KUBECONFIG"), err)
		}
	}
	typed, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes dynamic client: %w", err)
	}
	return &Clients{Typed: typed, Dynamic: dyn}, nil
}
