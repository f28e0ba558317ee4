package server_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	dynfake "k8s.io/client-go/dynamic/fake"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/kube"
	"github.com/raibid-labs/raibid-ci/internal/server"
	"github.com/raibid-labs/raibid-ci/internal/store"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// --executor kubernetes against client-go's fake dynamic client (no API
// server can run here): a queued push becomes a Job, /agents shows the pods.
func TestKubernetesExecutorWithFakeDynamicClient(t *testing.T) {
	pod, _ := runtime.DefaultUnstructuredConverter.ToUnstructured(&corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "raibid-agent-x1", Namespace: "ci", Labels: map[string]string{kube.LabelName: kube.AgentName},
			CreationTimestamp: metav1.Now()},
		Spec:   corev1.PodSpec{NodeName: "spark"},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	})
	c := dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), kube.ListKinds, &unstructured.Unstructured{Object: pod})
	ex, err := kube.NewExecutor(c, kube.ExecutorOptions{Namespace: "ci", Image: "gitea.dgx.local:3000/raibid/raibid-agent:0.1.0",
		RedisURL: "redis://redis.infrastructure.svc.cluster.local:6379/0", RedisSecret: "redis-auth"})
	if err != nil {
		t.Fatal(err)
	}
	e := startWith(t, func(o *server.Options) {
		o.Executor = ex
		o.Pods = &kube.PodLister{Client: c, Namespace: "ci"}
	})
	code, out := e.webhook(hook{body: fixture(t, "push.json")})
	if code != 202 {
		t.Fatalf("webhook %d", code)
	}
	id := out["job_id"].(string)
	var u *unstructured.Unstructured
	if !testutil.Eventually(t, 5*time.Second, func() bool {
		var err error
		u, err = c.Resource(kube.JobsResource).Namespace("ci").Get(context.Background(), kube.JobName(id), metav1.GetOptions{})
		return err == nil
	}) {
		t.Fatalf("no Kubernetes Job for job %s", id)
	}
	j := &batchv1.Job{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, j); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, v := range j.Spec.Template.Spec.Containers[0].Env {
		env[v.Name] = v.Value
	}
	if env["JOB_ID"] != id || env["REPO"] == "" || env["COMMIT"] == "" {
		t.Fatalf("Job env %v", env)
	}

	e.store.AgentHeartbeat(context.Background(), store.Agent{Name: "raibid-agent-x1", Status: "busy", CurrentJob: id, StartedAt: time.Now()}, time.Minute)
	_, body := e.do("GET", "/agents", "", token)
	var agents struct {
		Agents []struct {
			Name, Status, Phase, Host string
			CurrentJob                string `json:"current_job"`
		}
	}
	json.Unmarshal(body, &agents)
	if len(agents.Agents) != 1 {
		t.Fatalf("agents %s", body)
	}
	a := agents.Agents[0]
	if a.Name != "raibid-agent-x1" || a.Phase != "running" || a.Status != "busy" || a.CurrentJob != id || a.Host != "spark" {
		t.Fatalf("agent %+v", a)
	}
	if strings.Contains(string(body), "redis-auth") {
		t.Fatal("agents leak configuration")
	}
}

// Jobs queued outside the server — a matrix's other combinations planned by
// an agent, a job an agent handed over for a GPU — get their Kubernetes Job
// from their pending event, named by their pod's shape.
func TestExecutorLaunchesJobsAgentsQueued(t *testing.T) {
	c := dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), kube.ListKinds)
	ex, err := kube.NewExecutor(c, kube.ExecutorOptions{Namespace: "ci", Image: "a/agent:1", RedisURL: "redis://r:6379/0"})
	if err != nil {
		t.Fatal(err)
	}
	e := startWith(t, func(o *server.Options) { o.Executor = ex })
	agentSide := testutil.NewJobs(e.redis.Client(), 30*time.Second) // another process: no server hooks
	// The server's event subscription starts with it, unobserved: queue
	// jobs until one is seen (each is another chance).
	var ids []string
	found := testutil.Eventually(t, 10*time.Second, func() bool {
		j := testutil.Push("acme/train", "main")
		j.GPUs = 1
		ids = append(ids, agentSide.MustSubmit(t, j))
		for _, id := range ids {
			if _, err := c.Resource(kube.JobsResource).Namespace("ci").Get(context.Background(), kube.PodName(&ci.Job{ID: id, GPUs: 1}), metav1.GetOptions{}); err == nil {
				return true
			}
		}
		return false
	})
	if !found {
		t.Fatalf("no Kubernetes Job for the %d jobs an agent queued", len(ids))
	}
}
