//go:build cluster

package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/raibid-labs/raibid-ci/internal/api"
	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/kube"
	"github.com/raibid-labs/raibid-ci/internal/queue"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// kubelet plays the kubelet for the KEDA-created Jobs' pods: for each pod
// it starts a real `raibid agent --once` against the test's Redis, marks
// the pod Ready once the agent has claimed a job (its readiness file, the
// tree's readinessProbe), and Succeeded or Failed when the agent exits.
type kubelet struct {
	t        *testing.T
	ns       string
	redisURL string
	work     string

	mu      sync.Mutex
	paused  bool
	pods    map[string]*podRun // by pod name
	created map[string]time.Time
}

type podRun struct {
	pod    corev1.Pod
	agent  *proc
	ready  string
	marked string // "", "ready", "done"
}

func (k *kubelet) pause(p bool) { k.mu.Lock(); k.paused = p; k.mu.Unlock() }

// jobs is every Job the ScaledJob created so far, with its creation time.
func (k *kubelet) jobs() map[string]time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	return maps.Clone(k.created)
}

// running counts agents not exited.
func (k *kubelet) running() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for _, r := range k.pods {
		if r.marked != "done" {
			n++
		}
	}
	return n
}

func (k *kubelet) run(ctx context.Context) {
	for ctx.Err() == nil {
		k.step()
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (k *kubelet) step() {
	t := k.t
	for _, j := range listJobs(t, k.ns, "scaledjob.keda.sh/name=raibid-agent", "") {
		k.mu.Lock()
		if _, ok := k.created[j.GetName()]; !ok {
			k.created[j.GetName()] = time.Now()
		}
		paused := k.paused
		k.mu.Unlock()
		if paused {
			continue
		}
		for _, pod := range podsOf(t, k.ns, j.GetName()) {
			k.mu.Lock()
			_, known := k.pods[pod.Name]
			k.mu.Unlock()
			if known || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
				continue
			}
			r := &podRun{pod: pod, ready: filepath.Join(k.work, pod.Name+".ready")}
			r.agent = startRaibid(t, nil, "agent", "--once", "--wait", "3s", "--ready-file", r.ready, "--name", pod.Name,
				"--redis-url", k.redisURL, "--allow-local-clone", "--cache-dir", "off",
				"--workdir", filepath.Join(k.work, pod.Name), "--log-level", "warn")
			now := metav1.Now()
			r.pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, StartTime: &now,
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: now}},
				ContainerStatuses: []corev1.ContainerStatus{{Name: "agent", Image: pod.Spec.Containers[0].Image,
					State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}}}}
			setPodStatus(t, &r.pod)
			k.mu.Lock()
			k.pods[pod.Name] = r
			k.mu.Unlock()
		}
	}
	k.mu.Lock()
	runs := make([]*podRun, 0, len(k.pods))
	for _, r := range k.pods {
		runs = append(runs, r)
	}
	k.mu.Unlock()
	for _, r := range runs {
		if r.marked == "done" {
			continue
		}
		select {
		case <-r.agent.exited:
			now := metav1.Now()
			phase, reason := corev1.PodSucceeded, "Completed"
			if r.agent.code != 0 {
				phase, reason = corev1.PodFailed, "Error"
			}
			k.refresh(r)
			r.pod.Status.Phase = phase
			r.pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: now}}
			r.pod.Status.ContainerStatuses[0].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: int32(r.agent.code), Reason: reason, StartedAt: now, FinishedAt: now}}
			setPodStatus(t, &r.pod)
			k.mu.Lock()
			r.marked = "done"
			k.mu.Unlock()
			continue
		default:
		}
		if _, err := os.Stat(r.ready); err == nil && r.marked == "" {
			k.refresh(r)
			r.pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
			r.pod.Status.ContainerStatuses[0].Ready = true
			setPodStatus(t, &r.pod)
			r.marked = "ready"
		}
	}
}

// refresh reads the pod again (the job controller adds finalizers).
func (k *kubelet) refresh(r *podRun) {
	for _, p := range podsOf(k.t, k.ns, r.pod.Labels["job-name"]) {
		if p.Name == r.pod.Name {
			status := r.pod.Status
			r.pod = p
			r.pod.Status = status
		}
	}
}

// The real KEDA operator scales the deploy tree's ScaledJob (its stream,
// group, lagCount, activationLagCount, pollingInterval and accurate
// strategy; only the Redis address is this test's) from the queue's lag:
// from zero, a burst of N jobs gets min(N, maxReplicaCount) Jobs, real
// agents drain the queue, no Job appears once it is empty, and PUT /scale's
// new maxReplicaCount is what KEDA honours.
func TestKEDAScalesTheTreesScaledJob(t *testing.T) {
	const ns = "ci-keda"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := testutil.StartRedis(t)
	var polling int64
	installApp(t, ns, "", func(u *unstructured.Unstructured) {
		if u.GetKind() != "ScaledJob" {
			return
		}
		triggers, _, _ := unstructured.NestedSlice(u.Object, "spec", "triggers")
		md := triggers[0].(map[string]any)["metadata"].(map[string]any)
		if md["stream"] != queue.DefaultStream || md["consumerGroup"] != queue.DefaultGroup {
			t.Fatalf("the tree's trigger reads %v/%v, raibid writes %s/%s", md["stream"], md["consumerGroup"], queue.DefaultStream, queue.DefaultGroup)
		}
		md["address"] = r.Addr
		_ = unstructured.SetNestedSlice(u.Object, triggers, "spec", "triggers")
		polling, _, _ = unstructured.NestedInt64(u.Object, "spec", "pollingInterval")
	})
	if !cl.Running("keda-operator") {
		if err := cl.StartKEDA(ctx); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("keda-operator:\n%s", cl.Log("keda-operator", 60))
		}
	})
	eventually(t, 90*time.Second, "KEDA marks the ScaledJob ready", func() bool {
		u, err := dyn.Resource(kube.ScaledJobResource).Namespace(ns).Get(ctx, "raibid-agent", metav1.GetOptions{})
		return err == nil && condition(u, "Ready") == "True"
	})

	addr := freeAddr(t)
	base := "http://" + addr
	srv := startRaibid(t, []string{"KUBECONFIG=" + kubeconfigAs(t, ns, "raibid-server"), "RAIBID_API_TOKEN=tok", "RAIBID_WEBHOOK_SECRET=sec"},
		"server", "--addr", addr, "--redis-url", r.URL(), "--executor", "keda", "--namespace", ns, "--scaled-job", "raibid-agent",
		"--lease", "10s", "--log-level", "info")
	srv.waitFor(t, "listening", 20*time.Second)

	k := &kubelet{t: t, ns: ns, redisURL: r.URL(), work: t.TempDir(), pods: map[string]*podRun{}, created: map[string]time.Time{}}
	kctx, kstop := context.WithCancel(ctx)
	kdone := make(chan struct{})
	go func() { k.run(kctx); close(kdone) }()
	defer func() { kstop(); <-kdone }()

	dir, _ := testutil.GitRepo(t, map[string]string{"README": "0"})
	commits := 0
	pushN := func(n int) []string {
		var ids []string
		for range n {
			commits++
			sha := testutil.Commit(t, dir, map[string]string{"README": fmt.Sprint(commits), ".raibid.yml": "steps:\n  - {name: build, run: 'true'}\n"}, fmt.Sprint("change ", commits))
			ids = append(ids, push(t, base, "sec", "acme/burst", dir, sha))
		}
		return ids
	}
	drained := func(ids []string) func() bool {
		return func() bool {
			for _, id := range ids {
				code, body := call(t, "GET", base+"/jobs/"+id, "tok", nil)
				if code != 200 || !(strings.Contains(body, `"status":"success"`) || strings.Contains(body, `"status":"failure"`) || strings.Contains(body, `"status":"error"`)) {
					return false
				}
			}
			return k.running() == 0
		}
	}
	maxReplicas := func() int64 {
		u, err := dyn.Resource(kube.ScaledJobResource).Namespace(ns).Get(ctx, "raibid-agent", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n, _, _ := unstructured.NestedInt64(u.Object, "spec", "maxReplicaCount")
		return n
	}
	limit := maxReplicas()

	// Bursts from an empty queue: time from push to KEDA's first Job, and
	// how many Jobs each burst got.
	const bursts, perBurst = 10, 3
	var firstJob, firstRunning []time.Duration
	var created []int
	for b := range bursts {
		before := k.jobs()
		t0 := time.Now()
		ids := pushN(perBurst)
		eventually(t, 30*time.Second, fmt.Sprintf("burst %d: KEDA's first Job", b), func() bool { return len(k.jobs()) > len(before) })
		var first time.Time
		for name, at := range k.jobs() {
			if _, old := before[name]; !old && (first.IsZero() || at.Before(first)) {
				first = at
			}
		}
		firstJob = append(firstJob, first.Sub(t0))
		eventually(t, 90*time.Second, fmt.Sprintf("burst %d drained", b), drained(ids))
		created = append(created, len(k.jobs())-len(before))
		var started time.Time
		for _, id := range ids {
			var j ci.Job
			if _, body := call(t, "GET", base+"/jobs/"+id, "tok", nil); json.Unmarshal([]byte(body), &j) == nil && j.StartedAt != nil &&
				(started.IsZero() || j.StartedAt.Before(started)) {
				started = *j.StartedAt
			}
		}
		firstRunning = append(firstRunning, started.Sub(t0))
	}
	sorted := slices.Clone(firstJob)
	slices.Sort(sorted)
	running := slices.Clone(firstRunning)
	slices.Sort(running)
	total, over := 0, 0
	for _, c := range created {
		total += c
		over += max(c-perBurst, 0)
	}
	t.Logf("KEDA (pollingInterval %ds, maxReplicaCount %d): push → first Job p50 %.2f s, p90 %.2f s, max %.2f s over %d bursts; Jobs per burst of %d: %v (%d for %d jobs, overshoot %.1f%%)",
		polling, limit, sorted[len(sorted)/2].Seconds(), sorted[len(sorted)*9/10].Seconds(), sorted[len(sorted)-1].Seconds(), bursts,
		perBurst, created, total, bursts*perBurst, 100*float64(total-bursts*perBurst)/float64(bursts*perBurst))
	fmt.Printf("figure: keda push→first-job p50=%.2fs p90=%.2fs max=%.2fs push→first-running p50=%.2fs max=%.2fs bursts=%d jobs_per_burst=%v expected=%d\n",
		sorted[len(sorted)/2].Seconds(), sorted[len(sorted)*9/10].Seconds(), sorted[len(sorted)-1].Seconds(),
		running[len(running)/2].Seconds(), running[len(running)-1].Seconds(), bursts, created, perBurst)
	for b, c := range created {
		if c != min(perBurst, int(limit)) {
			t.Errorf("burst %d: %d Jobs for %d jobs (maxReplicaCount %d)", b, c, perBurst, limit)
		}
	}

	// Zero again: with the queue empty, two polls create nothing.
	before := len(k.jobs())
	if !testutil.Consistently(t, time.Duration(2*polling+1)*time.Second, func() bool { return len(k.jobs()) == before }) {
		t.Errorf("%d Jobs appeared with an empty queue", len(k.jobs())-before)
	}

	// PUT /scale: KEDA honours the new maxReplicaCount. With the kubelet
	// paused the Jobs' pods stay pending, so what KEDA creates is what the
	// cap allows, and no more over two polls.
	if code, body := call(t, "PUT", base+"/scale", "tok", map[string]int{"max_agents": 2}); code != 200 {
		t.Fatalf("PUT /scale: %d %s", code, body)
	}
	if n := maxReplicas(); n != 2 {
		t.Fatalf("maxReplicaCount %d after PUT /scale 2", n)
	}
	k.pause(true)
	before = len(k.jobs())
	ids := pushN(5)
	eventually(t, 30*time.Second, "KEDA's Jobs under the new cap", func() bool { return len(k.jobs())-before >= 2 })
	if !testutil.Consistently(t, time.Duration(2*polling+1)*time.Second, func() bool { return len(k.jobs())-before == 2 }) {
		t.Errorf("%d Jobs for 5 jobs with maxReplicaCount 2", len(k.jobs())-before)
	}
	// GET /agents lists the two pending pods, read with the server's
	// service account (the tree's Role allows pods get/list/watch).
	code, body := call(t, "GET", base+"/agents", "tok", nil)
	var agents api.AgentList
	if err := json.Unmarshal([]byte(body), &agents); code != 200 || err != nil {
		t.Fatalf("GET /agents: %d %s", code, body)
	}
	pending := 0
	for _, a := range agents.Agents {
		if a.Phase == "pending" {
			pending++
		}
	}
	if pending != 2 {
		t.Errorf("GET /agents: %d pending agent pods, want 2: %s", pending, body)
	}
	k.pause(false)
	peak, done := 0, drained(ids)
	// Sampled every 100 ms while the jobs drain: the peak of running pods.
	if !testutil.EventuallyEvery(t, 120*time.Second, 100*time.Millisecond, func() bool {
		peak = max(peak, k.running())
		return done()
	}) {
		t.Fatal("5 jobs not drained with maxReplicaCount 2")
	}
	n := len(k.jobs()) - before
	t.Logf("maxReplicaCount 2: 5 jobs ran on %d Jobs, at most %d at once", n, peak)
	if peak > 2 || n < 5 {
		t.Errorf("5 jobs: %d Jobs, %d at once with maxReplicaCount 2", n, peak)
	}
	if code, body := call(t, "PUT", base+"/scale", "tok", map[string]int64{"max_agents": limit}); code != 200 {
		t.Fatalf("PUT /scale: %d %s", code, body)
	}
}
