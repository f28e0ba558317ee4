//go:build cluster && node

package cluster_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/kube"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
	"github.com/raibid-labs/raibid-ci/test/cluster"
)

// agentImageRef is the agent image the node imports: the tree's image
// reference is the one thing of the pod spec replaced, with addresses.
const agentImageRef = "docker.io/raibid/raibid-agent:node"

// agentRootfs is Debian (the release the agent image's rust:slim base is)
// with what an agent needs besides raibid: git, bubblewrap and setpriv
// (util-linux, in minbase), CA certificates. Made by debootstrap once per
// machine, from Debian's mirror.
const agentRootfsSuite = "bookworm"

var podsGVR = schema.GroupVersionResource{Version: "v1", Resource: "pods"}

// The node test (make test-node): the deploy tree's ScaledJob on a real
// node. KEDA creates a Job from the queue's lag, kube-scheduler binds its
// pod, the kubelet runs it in containerd with runc and the CNI bridge; the
// agent in the pod claims the job from Redis, clones from a git server the
// pod reaches, runs the step in its bubblewrap sandbox as nobody, reports
// and exits; KEDA starts nothing more. Prints push → pod running → job
// running.
func TestAgentPodsOnARealNode(t *testing.T) {
	bins, err := cluster.FindNodeBins()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	work := t.TempDir()
	pause, agent := buildNodeImages(t, work)
	began := time.Now()
	node, err := cl.StartNode(ctx, bins, []string{pause, agent})
	if err != nil {
		t.Fatalf("node: %v\nkubelet:\n%s\ncontainerd:\n%s", err, cl.Log("kubelet", 40), cl.Log("containerd", 20))
	}
	defer node.Stop()
	t.Logf("node %s ready in %.1f s (containerd %s, kubelet %s, runc and CNI from Debian)", node.Name, time.Since(began).Seconds(), cluster.ContainerdVersion, cluster.KubernetesVersion)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kubelet:\n%s\ncontainerd:\n%s\nkube-scheduler:\n%s\nkeda-operator:\n%s", cl.Log("kubelet", 60), cl.Log("containerd", 30), cl.Log("kube-scheduler", 20), cl.Log("keda-operator", 20))
		}
	})

	// What the pods reach on this machine, at the bridge's address.
	// No password (the tree's redis-auth is empty here): protected mode
	// would refuse the pods, which do not come from loopback.
	r := testutil.StartRedis(t, "--bind", "127.0.0.1 "+node.BridgeIP, "--protected-mode", "no")
	redisOnBridge := node.BridgeIP + ":" + strings.Split(r.Addr, ":")[1]
	repoDir, sha := testutil.GitRepo(t, map[string]string{".raibid.yml": "steps:\n  - name: hello\n    run: echo \"hello from a pod as $(id -u)\"; test \"$(id -u)\" = 65534\n"})
	bare := filepath.Join(work, "app.git")
	if out, err := exec.Command("git", "clone", "-q", "--bare", repoDir, bare).CombinedOutput(); err != nil {
		t.Fatalf("bare clone: %v %s", err, out)
	}
	gitURL := serveGitOn(t, node.BridgeIP, bare)

	const ns = "ci-node"
	installOnNode(t, ns, node, redisOnBridge, gitURL)
	if !cl.Running("keda-operator") {
		if err := cl.StartKEDA(ctx); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 90*time.Second, "KEDA marks the ScaledJob ready", func() bool {
		u, err := dyn.Resource(kube.ScaledJobResource).Namespace(ns).Get(ctx, "raibid-agent", metav1.GetOptions{})
		return err == nil && condition(u, "Ready") == "True"
	})

	// raibid's server in KEDA mode, as the tree's raibid-server account:
	// it sets the agent limit the tree leaves out, and watches agent pods.
	addr := freeAddr(t)
	srv := startRaibid(t, []string{"KUBECONFIG=" + kubeconfigAs(t, ns, "raibid-server"), "RAIBID_API_TOKEN=tok", "RAIBID_WEBHOOK_SECRET=sec"},
		"server", "--addr", addr, "--redis-url", r.URL(), "--executor", "keda", "--namespace", ns, "--scaled-job", "raibid-agent", "--log-level", "info")
	srv.waitFor(t, "listening", 20*time.Second)
	eventually(t, 30*time.Second, "the server sets maxReplicaCount (left out of the tree)", func() bool {
		u, err := dyn.Resource(kube.ScaledJobResource).Namespace(ns).Get(ctx, "raibid-agent", metav1.GetOptions{})
		n, found, _ := unstructured.NestedInt64(u.Object, "spec", "maxReplicaCount")
		return err == nil && found && n == 6
	})

	jb := testutil.NewJobs(r.Client(), 30*time.Second)
	pushed := time.Now()
	id, _, err := jb.Submit(ctx, &ci.Job{Repo: "acme/app", CloneURL: gitURL + "/acme/app.git", Branch: "main", Commit: sha, Trigger: ci.TriggerManual, Event: ci.EventManual}, "")
	if err != nil {
		t.Fatal(err)
	}
	var podRunning time.Duration
	var podName string
	eventually(t, 3*time.Minute, "the agent pod runs", func() bool {
		l, err := dyn.Resource(podsGVR).Namespace(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=raibid-agent"})
		if err != nil {
			return false
		}
		for _, u := range l.Items {
			p := &corev1.Pod{}
			if runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, p) == nil && (p.Status.Phase == corev1.PodRunning || p.Status.Phase == corev1.PodSucceeded) {
				podRunning, podName = time.Since(pushed), p.Name
				return true
			}
		}
		return false
	})
	var job *ci.Job
	eventually(t, 3*time.Minute, "the job ends", func() bool {
		job, err = jb.Store.Get(ctx, id)
		return err == nil && job.Status.Final()
	})
	lines, _ := jb.Store.ReadLogs(ctx, id, "", 1000, 0)
	var log strings.Builder
	for _, l := range lines {
		log.WriteString(l.Text + "\n")
	}
	if job.Status != ci.StatusSuccess || !strings.Contains(log.String(), "hello from a pod as 65534") || !strings.Contains(log.String(), "sandbox: bwrap") {
		t.Fatalf("job %s %q on %s:\n%s", job.Status, job.Error, job.Agent, log.String())
	}
	if job.Agent != podName {
		t.Fatalf("the job ran on %q, not in the pod %s", job.Agent, podName)
	}
	jobCreated := "?"
	if u, err := dyn.Resource(podsGVR).Namespace(ns).Get(ctx, podName, metav1.GetOptions{}); err == nil {
		jobCreated = fmt.Sprintf("%+.1f s", u.GetCreationTimestamp().Sub(pushed.Truncate(time.Second)).Seconds())
	}
	t.Logf("push → agent pod created %s (whole seconds), running %.1f s (goal < 60 s); push → job running %.1f s (goal < 10 s); job %s in %s",
		jobCreated, podRunning.Seconds(), job.StartedAt.Sub(pushed).Seconds(), job.Status, job.FinishedAt.Sub(*job.StartedAt).Round(time.Millisecond))

	// The agent exits; with the queue empty KEDA starts nothing more.
	eventually(t, 2*time.Minute, "the agent pod ends", func() bool {
		u, err := dyn.Resource(podsGVR).Namespace(ns).Get(ctx, podName, metav1.GetOptions{})
		if err != nil {
			return false
		}
		phase, _, _ := unstructured.NestedString(u.Object, "status", "phase")
		return phase == string(corev1.PodSucceeded)
	})

	// Bursts from an empty queue, 0 → N → 0: KEDA makes one Job per job
	// (two fit the node's two cores at once), and none once it is empty.
	const bursts, perBurst = 10, 2
	// KEDA keeps only the last few finished Jobs (successfulJobsHistoryLimit):
	// every Job is seen here as it appears, by name.
	seen := map[string]bool{}
	var seenMu sync.Mutex
	for _, j := range listJobs(t, ns, "", "raibid-agent") {
		seen[j.GetName()] = true
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for watchCtx.Err() == nil {
			if l, err := dyn.Resource(kube.JobsResource).Namespace(ns).List(watchCtx, metav1.ListOptions{}); err == nil {
				seenMu.Lock()
				for _, j := range l.Items {
					seen[j.GetName()] = true
				}
				seenMu.Unlock()
			}
			select {
			case <-watchCtx.Done():
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	seenCount := func() int { seenMu.Lock(); defer seenMu.Unlock(); return len(seen) }
	jobsBefore := seenCount()
	var perBurstJobs []int
	var toRunning []time.Duration
	for b := range bursts {
		at := time.Now()
		var ids []string
		for range perBurst {
			id, _, err := jb.Submit(ctx, &ci.Job{Repo: "acme/app", CloneURL: gitURL + "/acme/app.git", Branch: "main", Commit: sha, Trigger: ci.TriggerManual, Event: ci.EventManual}, "")
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		eventually(t, 3*time.Minute, fmt.Sprintf("burst %d ends", b), func() bool {
			for _, id := range ids {
				if j, err := jb.Store.Get(ctx, id); err != nil || !j.Status.Final() {
					return false
				}
			}
			return true
		})
		for _, id := range ids {
			j, _ := jb.Store.Get(ctx, id)
			if j.Status != ci.StatusSuccess {
				t.Fatalf("burst %d: job %s %s %q", b, id, j.Status, j.Error)
			}
			toRunning = append(toRunning, j.StartedAt.Sub(at))
		}
		// Quiet: every agent pod has ended, and KEDA has polled the empty
		// queue since (it marks the ScaledJob inactive then); then one more
		// look at the Jobs, so none it made is missed.
		eventually(t, 2*time.Minute, fmt.Sprintf("burst %d's pods end", b), func() bool { return activeAgentPods(t, ns) == 0 })
		eventually(t, time.Minute, fmt.Sprintf("KEDA sees burst %d's queue empty", b), func() bool {
			u, err := dyn.Resource(kube.ScaledJobResource).Namespace(ns).Get(ctx, "raibid-agent", metav1.GetOptions{})
			return err == nil && condition(u, "Active") == "False"
		})
		for _, j := range listJobs(t, ns, "", "raibid-agent") {
			seenMu.Lock()
			seen[j.GetName()] = true
			seenMu.Unlock()
		}
		n := seenCount()
		perBurstJobs = append(perBurstJobs, n-jobsBefore)
		jobsBefore = n
	}
	stopWatch()
	<-watched
	total := 0
	for _, n := range perBurstJobs {
		total += n
	}
	slices.Sort(toRunning)
	off := 100 * float64(total-bursts*perBurst) / float64(bursts*perBurst)
	t.Logf("%d bursts of %d jobs: Jobs per burst %v (%d for %d jobs, %+.1f%%); push → job running p50 %.1f s, max %.1f s",
		bursts, perBurst, perBurstJobs, total, bursts*perBurst, off, toRunning[len(toRunning)/2].Seconds(), toRunning[len(toRunning)-1].Seconds())
	if off > 5 || off < -5 {
		t.Errorf("KEDA made %d Jobs for %d jobs (%+.1f%%, goal within 5%%)", total, bursts*perBurst, off)
	}

	// An agent image that cannot be pulled (a registry on a loopback port
	// nothing listens on): the job ends in error with Kubernetes' reason,
	// the failing Job is deleted, and KEDA makes no other for it.
	u, err := dyn.Resource(kube.ScaledJobResource).Namespace(ns).Get(ctx, "raibid-agent", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	containers, _, _ := unstructured.NestedSlice(u.Object, "spec", "jobTargetRef", "template", "spec", "containers")
	containers[0].(map[string]any)["image"] = "127.0.0.1:1/raibid/raibid-agent:missing"
	_ = unstructured.SetNestedSlice(u.Object, containers, "spec", "jobTargetRef", "template", "spec", "containers")
	if _, err := dyn.Resource(kube.ScaledJobResource).Namespace(ns).Update(ctx, u, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	broken := time.Now()
	bid, _, err := jb.Submit(ctx, &ci.Job{Repo: "acme/app", CloneURL: gitURL + "/acme/app.git", Branch: "main", Commit: sha, Trigger: ci.TriggerManual, Event: ci.EventManual}, "")
	if err != nil {
		t.Fatal(err)
	}
	var bj *ci.Job
	eventually(t, 90*time.Second, "the job of an agent pod that cannot pull its image ends", func() bool {
		bj, err = jb.Store.Get(ctx, bid)
		return err == nil && bj.Status.Final()
	})
	took := time.Since(broken)
	if bj.Status != ci.StatusError || !strings.Contains(bj.Error, "could not start: ") || !(strings.Contains(bj.Error, "ErrImagePull") || strings.Contains(bj.Error, "ImagePullBackOff")) {
		t.Fatalf("job %s %q, want error with the pull failure", bj.Status, bj.Error)
	}
	t.Logf("image pull failure → job error in %.1f s (goal < 60 s): %q", took.Seconds(), bj.Error)
	if took > 60*time.Second {
		t.Errorf("the pull failure took %.0f s to reach the job", took.Seconds())
	}
	eventually(t, 30*time.Second, "the failing pod goes", func() bool { return activeAgentPods(t, ns) == 0 })
}

// activeAgentPods counts agent pods not yet ended.
func activeAgentPods(t *testing.T, ns string) int {
	l, err := dyn.Resource(podsGVR).Namespace(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=raibid-agent"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, u := range l.Items {
		phase, _, _ := unstructured.NestedString(u.Object, "status", "phase")
		if phase != string(corev1.PodSucceeded) && phase != string(corev1.PodFailed) {
			n++
		}
	}
	return n
}

// buildNodeImages makes the pause and agent images as OCI archives.
func buildNodeImages(t *testing.T, work string) (pause, agent string) {
	t.Helper()
	root, _ := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	top := strings.TrimSpace(string(root))
	pauseBin := filepath.Join(work, "pause-bin")
	cmd := exec.Command("go", "build", "-o", pauseBin, "./test/cluster/pause")
	cmd.Dir, cmd.Env = top, append(os.Environ(), "CGO_ENABLED=0", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build pause: %v %s", err, out)
	}
	pauseLayer := filepath.Join(work, "pause-layer")
	if err := cluster.SingleFileLayer(pauseLayer, pauseBin, "pause"); err != nil {
		t.Fatal(err)
	}
	pause = filepath.Join(work, "pause.tar")
	if err := (cluster.Image{Ref: cluster.PauseImage, Layers: []string{pauseLayer}, Entrypoint: []string{"/pause"}}).WriteOCIArchive(filepath.Join(work, "pause-oci"), pause); err != nil {
		t.Fatal(err)
	}

	rootfs := filepath.Join(cluster.NodeBinDir(), "agent-rootfs-"+agentRootfsSuite+".tar")
	if _, err := os.Stat(rootfs); err != nil {
		dir := filepath.Join(work, "rootfs")
		began := time.Now()
		out, err := exec.Command("debootstrap", "--variant=minbase", "--include=git,bubblewrap,ca-certificates", agentRootfsSuite, dir, "http://deb.debian.org/debian").CombinedOutput()
		if err != nil {
			t.Fatalf("debootstrap: %v\n%s", err, tailLines(string(out), 20))
		}
		tmp := rootfs + ".tmp"
		if out, err := exec.Command("tar", "--numeric-owner", "-C", dir, "-cf", tmp, ".").CombinedOutput(); err != nil {
			t.Fatalf("tar rootfs: %v %s", err, out)
		}
		if err := os.Rename(tmp, rootfs); err != nil {
			t.Fatal(err)
		}
		t.Logf("agent rootfs (debootstrap %s) made in %.0f s, kept at %s", agentRootfsSuite, time.Since(began).Seconds(), rootfs)
	}
	raibidLayer := filepath.Join(work, "raibid-layer")
	if err := cluster.SingleFileLayer(raibidLayer, raibid, "usr/local/bin/raibid"); err != nil {
		t.Fatal(err)
	}
	agent = filepath.Join(work, "agent.tar")
	img := cluster.Image{Ref: agentImageRef, Layers: []string{rootfs, raibidLayer},
		Entrypoint: []string{"/usr/local/bin/raibid"}, Cmd: []string{"agent", "--once"}, WorkingDir: "/work",
		Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}}
	if err := img.WriteOCIArchive(filepath.Join(work, "agent-oci"), agent); err != nil {
		t.Fatal(err)
	}
	return pause, agent
}

func tailLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(len(l)-n, 0):], "\n")
}

// serveGitOn serves the bare repository as acme/app.git over HTTP (git's
// smart protocol) on ip, and returns the server's base URL.
func serveGitOn(t *testing.T, ip, bare string) string {
	t.Helper()
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	git, _ := exec.LookPath("git")
	h := &cgi.Handler{Path: git, Args: []string{"http-backend"}, Root: "/acme/app.git",
		Env: []string{"GIT_PROJECT_ROOT=" + bare, "GIT_HTTP_EXPORT_ALL=1"}, InheritEnv: []string{"PATH"}}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/acme/app.git/") {
			http.NotFound(w, r) // Gitea's API (commit statuses): not served here
			return
		}
		h.ServeHTTP(w, r)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "http://" + l.Addr().String()
}

// installOnNode applies what the agents need of the tree — the agents'
// priority class, quota and defaults, their service account, config,
// secrets, cache volume and the ScaledJob — into ns. The pod spec is the
// tree's but for addresses (Redis, Gitea on the bridge) and the image. The
// server, BuildKit and Redis of the tree are this test's own processes.
func installOnNode(t *testing.T, ns string, node *cluster.Node, redisAddr, gitURL string) {
	t.Helper()
	ctx := context.Background()
	if err := ensureNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	createSecrets(t, ns, "")
	cache := filepath.Join(t.TempDir(), "cache")
	os.MkdirAll(cache, 0o755)
	pv := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "PersistentVolume",
		"metadata": map[string]any{"name": ns + "-cache"},
		"spec": map[string]any{"capacity": map[string]any{"storage": "200Gi"}, "accessModes": []any{"ReadWriteOnce"},
			"storageClassName": "local-path", "hostPath": map[string]any{"path": cache},
			"claimRef": map[string]any{"namespace": ns, "name": "raibid-cache"}}}}
	if _, err := applyObject(ctx, pv, false); err != nil {
		t.Fatal(err)
	}
	applyInto(t, ns, append(render(t, "flux/infrastructure/configs"), render(t, "flux/apps/raibid")...), func(u *unstructured.Unstructured) bool {
		switch u.GetKind() {
		case "Deployment", "StatefulSet", "Service":
			return false // the test's own processes play them
		case "ConfigMap":
			_ = unstructured.SetNestedField(u.Object, gitURL, "data", "RAIBID_GITEA_URL")
			_ = unstructured.SetNestedField(u.Object, ns, "data", "RAIBID_NAMESPACE")
		case "ScaledJob":
			triggers, _, _ := unstructured.NestedSlice(u.Object, "spec", "triggers")
			triggers[0].(map[string]any)["metadata"].(map[string]any)["address"] = redisAddr
			_ = unstructured.SetNestedSlice(u.Object, triggers, "spec", "triggers")
			containers, _, _ := unstructured.NestedSlice(u.Object, "spec", "jobTargetRef", "template", "spec", "containers")
			c := containers[0].(map[string]any)
			c["image"] = agentImageRef
			for _, e := range c["env"].([]any) {
				if env := e.(map[string]any); env["name"] == "RAIBID_REDIS_URL" {
					env["value"] = "redis://:$(REDIS_PASSWORD)@" + redisAddr + "/0"
				}
			}
			_ = unstructured.SetNestedSlice(u.Object, containers, "spec", "jobTargetRef", "template", "spec", "containers")
		}
		return u.GetName() != "raibid-artifacts" // the server's volume
	})
}
