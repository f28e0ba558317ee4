package kube

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	dynfake "k8s.io/client-go/dynamic/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/runner"
)

// fakeCluster is client-go's fake dynamic client (no API server runs here),
// holding objs.
func fakeCluster(t *testing.T, objs ...runtime.Object) *dynfake.FakeDynamicClient {
	t.Helper()
	var us []runtime.Object
	for _, o := range objs {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
		if err != nil {
			t.Fatal(err)
		}
		us = append(us, &unstructured.Unstructured{Object: m})
	}
	return dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), ListKinds, us...)
}

// watchOpened is closed once a watch of resource on c is open: the fake's
// own watch, opened here, then signalled (the fake has no other sign that
// a watcher is registered).
func watchOpened(c *dynfake.FakeDynamicClient, resource string) <-chan struct{} {
	opened := make(chan struct{})
	var once sync.Once
	c.PrependWatchReactor(resource, func(action clienttesting.Action) (bool, watch.Interface, error) {
		var opts metav1.ListOptions
		if w, ok := action.(clienttesting.WatchActionImpl); ok {
			opts = w.ListOptions
		}
		w, err := c.Tracker().Watch(action.GetResource(), action.GetNamespace(), opts)
		if err == nil {
			once.Do(func() { close(opened) })
		}
		return true, w, err
	})
	return opened
}

func jobsIn(t *testing.T, c *dynfake.FakeDynamicClient) []batchv1.Job {
	t.Helper()
	jobs, err := list[batchv1.Job](context.Background(), c, JobsResource, "ci", "")
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

// minimalExecutor is an executor on c with only the options it needs.
func minimalExecutor(t *testing.T, c *dynfake.FakeDynamicClient) *Executor {
	t.Helper()
	e, err := NewExecutor(c, ExecutorOptions{Namespace: "ci", Image: "gitea.dgx.local:3000/raibid/raibid-agent:0.1.0",
		RedisURL: "redis://redis.infrastructure.svc.cluster.local:6379/0"})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func testJob() *ci.Job {
	return &ci.Job{ID: "01a219e99258f7b4b47e", Repo: "acme/widget", Commit: "bffeb74224043ba2feb48d137756c8a9331c449a"}
}

func TestExecutorCreatesOneJobPerQueuedJobWithFakeDynamicClient(t *testing.T) {
	c := fakeCluster(t)
	e, err := NewExecutor(c, ExecutorOptions{Namespace: "ci", Image: "gitea.dgx.local:3000/raibid/raibid-agent:0.1.0",
		RedisURL: "redis://redis.infrastructure.svc.cluster.local:6379/0", RedisSecret: "redis-auth", ForgeSecret: "raibid-secrets",
		ConfigMap: "raibid-config", CachePVC: "raibid-cache", ServiceAccount: "raibid-agent"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 2 { // a second launch of the same job creates nothing
		if err := e.Launch(ctx, testJob()); err != nil {
			t.Fatal(err)
		}
	}
	jobs := jobsIn(t, c)
	if len(jobs) != 1 {
		t.Fatalf("%d Jobs, want 1", len(jobs))
	}
	j := jobs[0]
	if j.Name != "raibid-agent-01a219e99258f7b4b47e" || j.Labels[LabelJobID] != testJob().ID || j.Labels[LabelName] != AgentName {
		t.Fatalf("job %s labels %v", j.Name, j.Labels)
	}
	if *j.Spec.BackoffLimit != 0 || *j.Spec.TTLSecondsAfterFinished != 600 || j.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Fatal("backoffLimit 0, a TTL and restartPolicy Never are needed")
	}
	pod := j.Spec.Template.Spec
	ctr := pod.Containers[0]
	env := map[string]string{}
	for _, v := range ctr.Env {
		env[v.Name] = v.Value
	}
	if env["JOB_ID"] != testJob().ID || env["REPO"] != "acme/widget" || env["COMMIT"] != testJob().Commit {
		t.Errorf("env %v", env)
	}
	if env["REDIS_URL"] != "redis://:$(REDIS_PASSWORD)@redis.infrastructure.svc.cluster.local:6379/0" || env["REDIS_PASSWORD"] != "" {
		t.Errorf("the Redis password must come from the Secret: REDIS_URL %q", env["REDIS_URL"])
	}
	token := false
	for _, v := range ctr.Env {
		if v.Name == "RAIBID_GITEA_TOKEN" {
			ref := v.ValueFrom
			token = v.Value == "" && ref != nil && ref.SecretKeyRef != nil && ref.SecretKeyRef.Name == "raibid-secrets" && ref.SecretKeyRef.Key == "gitea-token"
		}
	}
	if !token {
		t.Error("executor Jobs need the Gitea token, from the Secret (private clones, the final commit status)")
	}
	if ctr.Resources.Limits.Cpu().String() != "2" || ctr.Resources.Requests.Memory().String() != "4Gi" {
		t.Errorf("resources %v", ctr.Resources)
	}
	if !strings.Contains(strings.Join(ctr.Args, " "), "agent --once") || ctr.ReadinessProbe == nil {
		t.Errorf("args %v", ctr.Args)
	}
	cache := false
	for _, v := range pod.Volumes {
		cache = cache || (v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == "raibid-cache")
	}
	if !cache {
		t.Error("cache PVC not mounted")
	}

	if _, err := NewExecutor(c, ExecutorOptions{Namespace: "ci", Image: "raibid-agent:latest", RedisURL: "redis://r:6379"}); err == nil {
		t.Error(":latest accepted")
	}
	if _, err := NewExecutor(c, ExecutorOptions{Namespace: "ci", Image: "registry:5000/raibid-agent", RedisURL: "redis://r:6379"}); err == nil {
		t.Error("an untagged image accepted")
	}
}

func TestExecutorReportsPodFailuresWithFakeDynamicClient(t *testing.T) {
	c := fakeCluster(t)
	e, _ := NewExecutor(c, ExecutorOptions{Namespace: "ci", Image: "a/agent:1", RedisURL: "redis://r:6379/0"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan Failure, 4)
	opened := watchOpened(c, "jobs")
	go e.Watch(ctx, func(f Failure) { got <- f })
	select {
	case <-opened:
	case <-time.After(10 * time.Second):
		t.Fatal("the executor opened no watch of Jobs")
	}

	if err := e.Launch(ctx, testJob()); err != nil {
		t.Fatal(err)
	}
	name := JobName(testJob().ID)
	pod, _ := runtime.DefaultUnstructuredConverter.ToUnstructured(&corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: name + "-x7k2p", Namespace: "ci", Labels: map[string]string{"job-name": name, LabelName: AgentName}},
		Status: corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{{Name: "agent",
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "OOMKilled", ExitCode: 137}}}}},
	})
	if _, err := c.Resource(PodsResource).Namespace("ci").Create(ctx, &unstructured.Unstructured{Object: pod}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	j := jobsIn(t, c)[0]
	j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit"}}
	failedJob, _ := runtime.DefaultUnstructuredConverter.ToUnstructured(&j)
	for range 2 { // a second update of a failed Job is not a second failure
		if _, err := c.Resource(JobsResource).Namespace("ci").UpdateStatus(ctx, &unstructured.Unstructured{Object: failedJob}, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case f := <-got:
		if f.JobID != testJob().ID || !strings.Contains(f.Reason, "BackoffLimitExceeded") || !strings.Contains(f.Reason, "OOMKilled (exit 137)") {
			t.Fatalf("failure %+v", f)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no failure reported")
	}
	select {
	case f := <-got:
		t.Fatalf("reported twice: %+v", f)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestScaledJobScalerPatchesMaxReplicaCountWithFakeDynamicClient(t *testing.T) {
	sj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob",
		"metadata": map[string]any{"name": "raibid-agent", "namespace": "ci"},
		"spec":     map[string]any{"maxReplicaCount": int64(6), "pollingInterval": int64(5)},
	}}
	dc := dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), ListKinds, sj)
	s := &ScaledJobScaler{Client: dc, Namespace: "ci", Name: "raibid-agent"}
	ctx := context.Background()
	if n, err := s.MaxAgents(ctx); err != nil || n != 6 {
		t.Fatalf("MaxAgents = %d, %v", n, err)
	}
	if err := s.SetMaxAgents(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.MaxAgents(ctx); n != 3 {
		t.Fatalf("after SetMaxAgents(3): %d", n)
	}
	obj, _ := dc.Resource(ScaledJobResource).Namespace("ci").Get(ctx, "raibid-agent", metav1.GetOptions{})
	if p, _, _ := unstructured.NestedInt64(obj.Object, "spec", "pollingInterval"); p != 5 {
		t.Fatal("the patch touched other fields")
	}
	// A ScaledJob whose file leaves the limit out gets the server's default
	// once; a limit already set stays.
	unset := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob",
		"metadata": map[string]any{"name": "fresh", "namespace": "ci"}, "spec": map[string]any{"pollingInterval": int64(5)},
	}}
	dc2 := dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), ListKinds, unset)
	fresh := &ScaledJobScaler{Client: dc2, Namespace: "ci", Name: "fresh", Default: 6}
	if set, err := fresh.EnsureMax(ctx); !set || err != nil {
		t.Fatalf("EnsureMax = %v, %v", set, err)
	}
	if n, _, _ := fresh.current(ctx); n != 6 {
		t.Fatalf("after EnsureMax: maxReplicaCount %d, want the default 6", n)
	}
	fresh.SetMaxAgents(ctx, 2)
	if _, err := fresh.EnsureMax(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := fresh.MaxAgents(ctx); n != 2 {
		t.Fatalf("EnsureMax replaced a set limit: %d", n)
	}
	missing := &ScaledJobScaler{Client: dc, Namespace: "ci", Name: "nope"}
	if _, err := missing.MaxAgents(ctx); err == nil || !strings.Contains(err.Error(), "ci/nope") {
		t.Fatalf("missing ScaledJob: %v", err)
	}
}

func TestAgentPodsWithFakeDynamicClient(t *testing.T) {
	now := time.Now()
	pod := func(name string, phase corev1.PodPhase, ready bool, age time.Duration, labels map[string]string) *corev1.Pod {
		p := &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ci", Labels: labels, CreationTimestamp: metav1.NewTime(now.Add(-age))},
			Spec: corev1.PodSpec{NodeName: "spark"}, Status: corev1.PodStatus{Phase: phase}}
		if ready {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		}
		return p
	}
	agent := map[string]string{LabelName: AgentName}
	c := fakeCluster(t,
		pod("raibid-agent-abc-1", corev1.PodRunning, true, time.Minute, agent),
		pod("raibid-agent-abc-2", corev1.PodPending, false, time.Second, map[string]string{LabelName: AgentName, LabelJobID: "j2"}),
		pod("gitea-0", corev1.PodRunning, true, time.Hour, map[string]string{LabelName: "gitea"}),
	)
	pods, err := AgentPods(context.Background(), c, "ci")
	if err != nil {
		t.Fatal(err)
	}
	if len(pods) != 2 || pods[0].Name != "raibid-agent-abc-1" || pods[0].Phase != "running" || !pods[0].Ready ||
		pods[1].Phase != "pending" || pods[1].JobID != "j2" || pods[1].Node != "spark" {
		t.Fatalf("pods %+v", pods)
	}
}

func TestReconcileLaunchesSparesForUncoveredLagWithFakeDynamicClient(t *testing.T) {
	c := fakeCluster(t)
	e, _ := NewExecutor(c, ExecutorOptions{Namespace: "ci", Image: "a/agent:1", RedisURL: "redis://r:6379/0"})
	ctx := context.Background()
	e.Launch(ctx, testJob()) // its pod has not claimed anything yet
	count := func() int { return len(jobsIn(t, c)) }
	if err := e.Reconcile(ctx, 1, 6); err != nil || count() != 1 {
		t.Fatalf("lag 1 with one waiting Job: %d Jobs, %v", count(), err)
	}
	if err := e.Reconcile(ctx, 3, 6); err != nil || count() != 3 {
		t.Fatalf("lag 3 with one waiting Job: %d Jobs, want 3", count())
	}
	if err := e.Reconcile(ctx, 20, 6); err != nil || count() != 6 {
		t.Fatalf("lag 20: %d Jobs, want the cap of 6", count())
	}
	for _, j := range jobsIn(t, c) {
		if strings.Contains(j.Name, "spare") {
			for _, v := range j.Spec.Template.Spec.Containers[0].Env {
				if v.Name == "JOB_ID" && v.Value != "" {
					t.Fatalf("a spare claims job %s", v.Value)
				}
			}
		}
	}
}

// The Jobs the executor creates keep every credential out of the build's
// reach, by the same rules as the deploy tree's ScaledJob.
func TestExecutorJobsIsolateBuilds(t *testing.T) {
	e, err := NewExecutor(fakeCluster(t), ExecutorOptions{Namespace: "ci", Image: "agent:1", RedisURL: "redis://r:6379/0",
		RedisSecret: "redis-auth", CachePVC: "raibid-cache"})
	if err != nil {
		t.Fatal(err)
	}
	job := e.jobSpec("raibid-agent-x", testJob())
	if p := CheckBuildIsolation(job.Spec.Template.Spec, nil, runner.PassedEnv); len(p) > 0 {
		t.Fatalf("executor Job: %v", p)
	}
	// The checker itself sees each way out.
	spec := *job.Spec.Template.Spec.DeepCopy()
	yes := true
	spec.AutomountServiceAccountToken = &yes
	spec.Containers[0].Args = append(spec.Containers[0].Args, "--sandbox=off")
	spec.Containers[0].SecurityContext = nil
	spec.Containers[0].Env = append(spec.Containers[0].Env, corev1.EnvVar{Name: "HTTPS_PROXY",
		ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{Key: "proxy"}}})
	loose := int32(0o644)
	spec.Volumes[len(spec.Volumes)-1].Secret.DefaultMode = &loose
	if p := CheckBuildIsolation(spec, map[string]string{"RAIBID_SANDBOX": "off", "RAIBID_BUILD_USER": "root"}, runner.PassedEnv); len(p) != 7 {
		t.Fatalf("checker found %d of 7 problems: %v", len(p), p)
	}
}

// A job that needs GPUs gets a pod with the NVIDIA device plugin's
// resource, and an agent that knows it has them; others get none.
func TestExecutorGivesGPUJobsTheirGPUs(t *testing.T) {
	c := fakeCluster(t)
	e := minimalExecutor(t, c)
	j := testJob()
	j.GPUs = 2
	if err := e.Launch(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	ctr := jobsIn(t, c)[0].Spec.Template.Spec.Containers[0]
	gpu := ctr.Resources.Limits["nvidia.com/gpu"]
	if gpu.String() != "2" || !strings.Contains(strings.Join(ctr.Args, " "), "--gpus 2") {
		t.Fatalf("limits %v args %v", ctr.Resources.Limits, ctr.Args)
	}
	cpuOnly := e.jobSpec("x", testJob()).Spec.Template.Spec.Containers[0]
	if _, ok := cpuOnly.Resources.Limits["nvidia.com/gpu"]; ok || !strings.Contains(strings.Join(cpuOnly.Args, " "), "--gpus 0") {
		t.Fatalf("a CPU job's pod: %v %v", cpuOnly.Resources.Limits, cpuOnly.Args)
	}
}

// A pipeline's image services run as native sidecars of the job's pod, and
// its agent knows not to start them.
func TestExecutorRunsImageServicesAsSidecars(t *testing.T) {
	c := fakeCluster(t)
	e := minimalExecutor(t, c)
	j := testJob()
	j.Sidecars = []ci.Sidecar{{Name: "Postgres DB", Image: "postgres:17.2", Port: 5432}}
	pod := e.jobSpec("x", j).Spec.Template.Spec
	if len(pod.InitContainers) != 1 {
		t.Fatalf("init containers %+v", pod.InitContainers)
	}
	sc := pod.InitContainers[0]
	if sc.Name != "service-postgres-db" || sc.Image != "postgres:17.2" || sc.RestartPolicy == nil || *sc.RestartPolicy != corev1.ContainerRestartPolicyAlways || sc.Ports[0].ContainerPort != 5432 {
		t.Fatalf("sidecar %+v", sc)
	}
	found := false
	for _, v := range pod.Containers[0].Env {
		found = found || (v.Name == "RAIBID_SERVICE_SIDECARS" && v.Value == "1")
	}
	if !found {
		t.Fatal("the agent is not told the pod runs the services")
	}
	if plain := e.jobSpec("y", testJob()).Spec.Template.Spec; len(plain.InitContainers) != 0 {
		t.Fatal("a job without image services got sidecars")
	}
}

// A job handed back for another pod shape (its pipeline needs a GPU or
// sidecars) gets a Job of its own: the first one's name is taken. The same
// shape always gets the same name, so launching it twice creates one.
func TestPodNamesFollowTheShape(t *testing.T) {
	plain := testJob()
	gpu := testJob()
	gpu.GPUs = 1
	side := testJob()
	side.Sidecars = []ci.Sidecar{{Name: "db", Image: "postgres:17.2", Port: 5432}}
	other := testJob()
	other.Sidecars = []ci.Sidecar{{Name: "db", Image: "postgres:16", Port: 5432}}
	names := map[string]bool{}
	for _, j := range []*ci.Job{plain, gpu, side, other} {
		n := PodName(j)
		if names[n] || len(n) > 63 || !strings.HasPrefix(n, JobName(j.ID)) {
			t.Fatalf("pod name %q (seen %v)", n, names)
		}
		names[n] = true
	}
	if PodName(plain) != JobName(plain.ID) || PodName(side) != PodName(&ci.Job{ID: side.ID, Sidecars: side.Sidecars}) {
		t.Fatal("pod names are not stable")
	}
}

// A pod's start problem is what Kubernetes says stops it: an image pull or
// container error, or no node with room; a pod merely starting has none.
func TestPodStartProblems(t *testing.T) {
	since := metav1.NewTime(time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC))
	cases := []struct {
		status corev1.PodStatus
		want   string
	}{
		{corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "Back-off pulling image"}}}}},
			"ImagePullBackOff: Back-off pulling image"},
		{corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}}}, ""},
		{corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/1 nodes are available: 1 Insufficient cpu.", LastTransitionTime: since}}},
			"Unschedulable: 0/1 nodes are available: 1 Insufficient cpu."},
		{corev1.PodStatus{Phase: corev1.PodRunning}, ""},
	}
	for _, c := range cases {
		p := &corev1.Pod{Status: c.status}
		if got, _, _ := problemOf(p); got != c.want {
			t.Errorf("problemOf(%+v) = %q, want %q", c.status, got, c.want)
		}
	}
}
