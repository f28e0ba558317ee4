//go:build cluster

package cluster_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/raibid-labs/raibid-ci/internal/kube"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// installApp applies flux/infrastructure/configs and flux/apps/raibid for
// real into namespace ns (priority class, quota, service accounts, RBAC,
// ConfigMap, ScaledJob, ...), with the Secrets the tree expects from the
// operator, and edit applied to each object first.
func installApp(t *testing.T, ns, redisPassword string, edit func(*unstructured.Unstructured)) {
	t.Helper()
	createSecrets(t, ns, redisPassword)
	// The PriorityClass the agents use and the namespace's quota and
	// defaults (infrastructure/configs), then the app: the quota is what
	// admits or refuses every pod below.
	applyInto(t, ns, append(render(t, "flux/infrastructure/configs"), render(t, "flux/apps/raibid")...), func(u *unstructured.Unstructured) bool {
		if edit != nil {
			edit(u)
		}
		return true
	})
}

// createSecrets makes the Secrets docs/install.md has the operator create.
func createSecrets(t *testing.T, ns, redisPassword string) {
	t.Helper()
	secrets := map[string]map[string]any{
		"redis-auth":     {"password": redisPassword},
		"raibid-secrets": {"gitea-token": "gitea-token-value", "webhook-secret": "sec", "api-token": "tok"},
	}
	for name, data := range secrets {
		s := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Secret",
			"metadata": map[string]any{"name": name, "namespace": ns}, "stringData": data}}
		if _, err := applyObject(context.Background(), s, false); err != nil {
			t.Fatal(err)
		}
	}
}

// applyInto applies objs into namespace ns (RoleBindings' subjects too),
// each through edit first, which may leave one out by returning false.
func applyInto(t *testing.T, ns string, objs []*unstructured.Unstructured, edit func(*unstructured.Unstructured) bool) {
	t.Helper()
	for _, u := range objs {
		if u.GetNamespace() != "" {
			u.SetNamespace(ns)
		}
		if u.GetKind() == "RoleBinding" {
			subjects, _, _ := unstructured.NestedSlice(u.Object, "subjects")
			for _, s := range subjects {
				s.(map[string]any)["namespace"] = ns
			}
			_ = unstructured.SetNestedSlice(u.Object, subjects, "subjects")
		}
		if !edit(u) {
			continue
		}
		if _, err := applyObject(context.Background(), u, false); err != nil {
			t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
}

// listJobs is the executor's Jobs in ns whose names start with prefix.
func listJobs(t *testing.T, ns, selector, prefix string) []unstructured.Unstructured {
	t.Helper()
	l, err := dyn.Resource(kube.JobsResource).Namespace(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	var out []unstructured.Unstructured
	for _, j := range l.Items {
		if strings.HasPrefix(j.GetName(), prefix) {
			out = append(out, j)
		}
	}
	return out
}

func podsOf(t *testing.T, ns, jobName string) []corev1.Pod {
	t.Helper()
	l, err := dyn.Resource(kube.PodsResource).Namespace(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "job-name=" + jobName})
	if err != nil {
		t.Fatal(err)
	}
	pods := make([]corev1.Pod, len(l.Items))
	for i := range l.Items {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(l.Items[i].Object, &pods[i]); err != nil {
			t.Fatal(err)
		}
	}
	return pods
}

// setPodStatus writes a pod's status through the API, as its kubelet would.
func setPodStatus(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(pod)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dyn.Resource(kube.PodsResource).Namespace(pod.Namespace).UpdateStatus(context.Background(),
		&unstructured.Unstructured{Object: obj}, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("pod %s status: %v", pod.Name, err)
	}
}

// `raibid server --executor kubernetes`, acting as the deploy tree's
// raibid-server service account: a queued job becomes a batch/v1 Job the API
// server accepts, the controller manager makes its pod, a pod that fails
// outside raibid (OOMKilled, written as a kubelet would) lands in the job's
// log, an entry no Job was launched for gets a spare Job, and a job queued
// by another process its own — one each, no more.
func TestKubernetesExecutorAgainstAPIServer(t *testing.T) {
	const ns = "ci-executor"
	r := testutil.StartRedis(t)
	installApp(t, ns, "", nil)
	addr := freeAddr(t)
	base := "http://" + addr
	srv := startRaibid(t, []string{"KUBECONFIG=" + kubeconfigAs(t, ns, "raibid-server"), "RAIBID_API_TOKEN=tok", "RAIBID_WEBHOOK_SECRET=sec"},
		"server", "--addr", addr, "--redis-url", r.URL(), "--executor", "kubernetes", "--namespace", ns,
		"--agent-image", "registry.test/raibid-agent:0.1.0", "--max-agents", "6", "--log-level", "info")
	srv.waitFor(t, "listening", 20*time.Second)

	dir, sha := testutil.GitRepo(t, map[string]string{".raibid.yml": "steps:\n  - {name: build, run: 'true'}\n"})
	id := push(t, base, "sec", "acme/app", dir, sha)
	name := kube.JobName(id)
	eventually(t, 30*time.Second, "the executor's Job "+name, func() bool { return len(listJobs(t, ns, kube.AgentSelector, name)) == 1 })

	var pod corev1.Pod
	eventually(t, 30*time.Second, "the controller manager's pod for "+name, func() bool {
		pods := podsOf(t, ns, name)
		if len(pods) == 1 {
			pod = pods[0]
		}
		return len(pods) == 1
	})
	if len(pod.OwnerReferences) != 1 || pod.OwnerReferences[0].Kind != "Job" || pod.OwnerReferences[0].Name != name {
		t.Errorf("pod owners %+v, want the Job %s", pod.OwnerReferences, name)
	}
	// The same service account, priority (and so quota) as the tree's
	// ScaledJob agents.
	if pod.Labels[kube.LabelJobID] != id || pod.Spec.ServiceAccountName != "raibid-agent" || pod.Spec.PriorityClassName != "raibid-agent" {
		t.Errorf("pod labels %v, service account %q, priority class %q", pod.Labels, pod.Spec.ServiceAccountName, pod.Spec.PriorityClassName)
	}
	for _, e := range pod.Spec.Containers[0].Env {
		if strings.Contains(e.Value, "gitea-token-value") {
			t.Errorf("a Secret's value is in the pod spec: %s", e.Name)
		}
	}

	// The kubelet: the agent container was OOM-killed.
	now := metav1.Now()
	pod.Status = corev1.PodStatus{Phase: corev1.PodFailed, StartTime: &now,
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: now}},
		ContainerStatuses: []corev1.ContainerStatus{{Name: "agent", Image: pod.Spec.Containers[0].Image,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled", StartedAt: now, FinishedAt: now}}}}}
	setPodStatus(t, &pod)
	eventually(t, 60*time.Second, "the pod's failure in the job's log", func() bool {
		code, body := call(t, "GET", base+"/jobs/"+id+"/logs", "tok", nil)
		return code == 200 && strings.Contains(body, "OOMKilled") && strings.Contains(body, name)
	})

	// The entry is still undelivered and no Job waits for it: one spare.
	spares := func() int { return len(listJobs(t, ns, kube.AgentSelector, "raibid-agent-spare-")) }
	eventually(t, 30*time.Second, "a spare Job for the failed job's entry", func() bool { return spares() == 1 })
	// A job queued by another process (the other combinations of a matrix
	// an agent planned, a job an agent handed over): the server launches
	// its own Job from the job's pending event, no spare.
	other := testutil.NewJobs(r.Client(), 30*time.Second).MustSubmit(t, testutil.Push("acme/other", "main"))
	eventually(t, 30*time.Second, "the Job of the job queued elsewhere", func() bool {
		return len(listJobs(t, ns, kube.AgentSelector, kube.JobName(other))) == 1
	})
	// Both pods are waiting: two more reconciles launch nothing.
	own := func() int { return len(listJobs(t, ns, kube.AgentSelector, kube.JobName(other))) }
	if !testutil.Consistently(t, 11*time.Second, func() bool { return spares() == 1 && own() == 1 }) {
		t.Fatalf("%d spare Jobs and %d of the job's own for 2 entries", spares(), own())
	}
	for _, j := range listJobs(t, ns, kube.AgentSelector, "raibid-agent-spare-") {
		if len(podsOf(t, ns, j.GetName())) != 1 {
			t.Errorf("spare Job %s has no pod: %s", j.GetName(), events(t, ns, j.GetName()))
		}
	}
}

// events is what the cluster said about an object, for a failure's message.
func events(t *testing.T, ns, name string) string {
	t.Helper()
	l, err := dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "events"}).Namespace(ns).List(context.Background(),
		metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, e := range l.Items {
		reason, _, _ := unstructured.NestedString(e.Object, "reason")
		msg, _, _ := unstructured.NestedString(e.Object, "message")
		out = append(out, reason+": "+msg)
	}
	return strings.Join(out, "; ")
}
