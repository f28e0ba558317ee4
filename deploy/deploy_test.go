// Package deploy_test checks the deploy tree without a cluster: every
// kustomization builds in-process with kustomize's own library, every object
// decodes strictly into its real Go type (Kubernetes, Flux, KEDA), and the
// invariants that make the agent ScaledJob scale from zero hold.
package deploy_test

import (
	stdjson "encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	kustomizev1 "github.com/fluxcd/kustomize-controller/api/v1"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	nodev1 "k8s.io/api/node/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/raibid-labs/raibid-ci/deploy"
	"github.com/raibid-labs/raibid-ci/internal/agent"
	"github.com/raibid-labs/raibid-ci/internal/kube"
	"github.com/raibid-labs/raibid-ci/internal/queue"
	"github.com/raibid-labs/raibid-ci/internal/runner"
)

func scheme(t *testing.T) *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, helmv2.AddToScheme,
		kustomizev1.AddToScheme, sourcev1.AddToScheme, kedav1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// build renders dir (deploy.Render) and decodes every object strictly: an
// unknown kind, an unknown field or a wrong type fails.
func build(t *testing.T, dir string) []runtime.Object {
	t.Helper()
	ys, err := deploy.Render(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := scheme(t)
	dec := json.NewSerializerWithOptions(json.DefaultMetaFactory, s, s, json.SerializerOptions{Yaml: true, Strict: true})
	var out []runtime.Object
	for _, y := range ys {
		obj, _, err := dec.Decode(y, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v\n%s", dir, err, y)
		}
		out = append(out, obj)
	}
	return out
}

func TestEveryKustomizationBuildsAndDecodesStrictly(t *testing.T) {
	for _, dir := range deploy.Kustomizations {
		t.Run(dir, func(t *testing.T) {
			objs := build(t, dir)
			for _, o := range objs {
				for _, c := range containers(o) {
					checkImage(t, c.Image)
					checkNoSecretInArgs(t, c)
					if c.Resources.Limits.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
						t.Errorf("container %s (%s) has no resources", c.Name, c.Image)
					}
				}
			}
		})
	}
}

func TestStrictDecodingRejectsUnknownFields(t *testing.T) {
	// The check above would pass a typo otherwise: prove the decoder catches one.
	s := scheme(t)
	dec := json.NewSerializerWithOptions(json.DefaultMetaFactory, s, s, json.SerializerOptions{Yaml: true, Strict: true})
	_, _, err := dec.Decode([]byte("apiVersion: keda.sh/v1alpha1\nkind: ScaledJob\nmetadata: {name: x}\nspec:\n  pollingIntervl: 5\n  triggers: []\n"), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "unknown field") {
		t.Fatalf("err = %v, want a strict decoding error", err)
	}
}

func containers(o runtime.Object) []corev1.Container {
	switch v := o.(type) {
	case *appsv1.Deployment:
		return v.Spec.Template.Spec.Containers
	case *appsv1.StatefulSet:
		return v.Spec.Template.Spec.Containers
	case *kedav1alpha1.ScaledJob:
		return v.Spec.JobTargetRef.Template.Spec.Containers
	}
	return nil
}

// checkNoSecretInArgs: a value from a Secret must not be expanded into a
// process's arguments (Kubernetes expands $(VAR) in command and args; a
// shell expands $VAR), where ps on the node shows it. Passing it through the
// environment to a shell builtin or a file is fine: the builtin is no process.
func checkNoSecretInArgs(t *testing.T, c corev1.Container) {
	t.Helper()
	for _, e := range c.Env {
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			continue
		}
		lines := append(append([]string{}, c.Command...), c.Args...)
		for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
			if p != nil && p.Exec != nil {
				lines = append(lines, p.Exec.Command...)
			}
		}
		for _, a := range lines {
			if strings.Contains(a, "$("+e.Name+")") {
				t.Errorf("container %s puts the secret %s into its arguments: %q", c.Name, e.Name, a)
			}
			if i := strings.Index(a, "$"+e.Name); i >= 0 && !secretUseAllowed(a, e.Name) {
				t.Errorf("container %s passes the secret %s to a command's arguments: %q", c.Name, e.Name, a)
			}
		}
	}
}

// secretUseAllowed: every shell use of $NAME is either printf's argument
// (a builtin, no process) or an environment assignment before a command
// (REDISCLI_AUTH="$NAME" redis-cli ...).
func secretUseAllowed(script, name string) bool {
	ref := "$" + name
	for rest := script; ; {
		i := strings.Index(rest, ref)
		if i < 0 {
			return true
		}
		segment := rest[:i]
		if k := strings.LastIndexAny(segment, "&;|"); k >= 0 {
			segment = segment[k+1:]
		}
		segment = strings.TrimLeft(segment, " ")
		words := strings.Fields(segment)
		switch {
		case strings.HasPrefix(segment, "printf "):
		case len(words) == 1 && strings.HasSuffix(strings.Trim(words[0], `"'`), "="):
		default:
			return false
		}
		rest = rest[i+len(ref):]
	}
}

// checkImage: a tag, never latest (kustomize has already set our own tags).
func checkImage(t *testing.T, image string) {
	t.Helper()
	name := image[strings.LastIndex(image, "/")+1:]
	_, tag, ok := strings.Cut(name, ":")
	if strings.Contains(image, "@sha256:") {
		return
	}
	if !ok || tag == "" || tag == "latest" {
		t.Errorf("image %q is not pinned to a tag", image)
	}
}

func TestFluxAPIVersionsAndOrder(t *testing.T) {
	objs := build(t, "flux/clusters/dgx-spark")
	deps := map[string][]string{}
	paths := map[string]string{}
	for _, o := range objs {
		k, ok := o.(*kustomizev1.Kustomization)
		if !ok {
			t.Fatalf("the cluster directory holds a %T", o)
		}
		for _, d := range k.Spec.DependsOn {
			deps[k.Name] = append(deps[k.Name], d.Name)
		}
		paths[k.Name] = k.Spec.Path
		if _, err := os.Stat(filepath.Join("..", k.Spec.Path)); err != nil {
			t.Errorf("Kustomization %s points at %s: %v", k.Name, k.Spec.Path, err)
		}
		if !k.Spec.Prune || !k.Spec.Wait {
			t.Errorf("Kustomization %s: prune and wait must be on", k.Name)
		}
	}
	if !slices.Equal(deps["apps"], []string{"infra-configs"}) || !slices.Equal(deps["infra-configs"], []string{"infra-controllers"}) ||
		!slices.Equal(deps["apps-gpu"], []string{"apps"}) {
		t.Fatalf("dependsOn = %v, want apps-gpu → apps → infra-configs → infra-controllers", deps)
	}
	// KEDA's CRDs come with its HelmRelease in infra-controllers; the objects
	// that need them live only in apps, which waits for it.
	for _, o := range build(t, "flux/infrastructure/controllers") {
		switch o.(type) {
		case *kedav1alpha1.ScaledJob, *kedav1alpha1.TriggerAuthentication:
			t.Errorf("a KEDA object in the same Kustomization as KEDA's CRDs")
		}
	}
	var keda *helmv2.HelmRelease
	for _, o := range build(t, "flux/infrastructure/controllers") {
		if hr, ok := o.(*helmv2.HelmRelease); ok && hr.Name == "keda" {
			keda = hr
		}
	}
	if keda == nil || keda.Spec.Install == nil || keda.Spec.Install.CRDs != helmv2.CreateReplace {
		t.Fatal("the keda HelmRelease must install its CRDs (CreateReplace)")
	}
	var major, minor int
	fmt.Sscanf(keda.Spec.Chart.Spec.Version, "%d.%d", &major, &minor)
	if major < 2 || (major == 2 && minor < 17) {
		t.Fatalf("KEDA chart %s: lag mode needs ≥ 2.17", keda.Spec.Chart.Spec.Version)
	}
	for _, f := range []string{"flux/clusters/dgx-spark/infrastructure.yaml", "flux/clusters/dgx-spark/apps.yaml"} {
		b, _ := os.ReadFile(f)
		if !strings.Contains(string(b), "apiVersion: kustomize.toolkit.fluxcd.io/v1\n") {
			t.Errorf("%s does not use kustomize.toolkit.fluxcd.io/v1", f)
		}
	}
}

func TestAgentScaledJobScalesFromZero(t *testing.T) {
	var sj *kedav1alpha1.ScaledJob
	var ta *kedav1alpha1.TriggerAuthentication
	pvcs := map[string]bool{}
	for _, o := range build(t, "flux/apps/raibid") {
		switch v := o.(type) {
		case *kedav1alpha1.ScaledJob:
			sj = v
		case *kedav1alpha1.TriggerAuthentication:
			ta = v
		case *corev1.PersistentVolumeClaim:
			pvcs[v.Name] = true
		}
	}
	if sj == nil || ta == nil {
		t.Fatal("no ScaledJob or TriggerAuthentication")
	}
	s := sj.Spec
	if len(s.Triggers) != 1 {
		t.Fatalf("%d triggers", len(s.Triggers))
	}
	tr := s.Triggers[0]
	md := tr.Metadata
	switch {
	case tr.Type != "redis-streams":
		t.Errorf("trigger %s", tr.Type)
	case md["stream"] != queue.DefaultStream || md["consumerGroup"] != queue.DefaultGroup:
		t.Errorf("stream %q group %q, want the server's %q %q", md["stream"], md["consumerGroup"], queue.DefaultStream, queue.DefaultGroup)
	case md["lagCount"] != "1" || md["activationLagCount"] != "0":
		t.Errorf("lagCount %q activationLagCount %q: lag mode, one pod per entry, active from the first", md["lagCount"], md["activationLagCount"])
	case md["pendingEntriesCount"] != "" || md["streamLength"] != "":
		t.Error("pendingEntriesCount/streamLength set: they never see undelivered entries")
	case tr.AuthenticationRef == nil || tr.AuthenticationRef.Name != ta.Name:
		t.Error("the trigger does not use the TriggerAuthentication")
	}
	if s.PollingInterval == nil || *s.PollingInterval > 5 {
		t.Errorf("pollingInterval must be set and ≤ 5 s (KEDA's default 30 s alone breaks the 10 s queue-to-execution target)")
	}
	if s.ScalingStrategy.Strategy != "accurate" || !slices.Equal(s.ScalingStrategy.PendingPodConditions, []string{"Ready"}) {
		t.Errorf("scalingStrategy %+v", s.ScalingStrategy)
	}
	if s.MaxReplicaCount != nil {
		t.Errorf("maxReplicaCount %v in the file: Flux would own it and undo every PUT /scale; the server sets it (--max-agents)", *s.MaxReplicaCount)
	}
	job := s.JobTargetRef
	if job.BackoffLimit == nil || *job.BackoffLimit != 0 || job.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Error("a failed agent pod must not be retried by Kubernetes (backoffLimit 0, restartPolicy Never): the queue retries")
	}
	c := job.Template.Spec.Containers[0]
	if !c.Resources.Requests.Cpu().Equal(resource.MustParse("1")) || !c.Resources.Limits.Memory().Equal(resource.MustParse("4Gi")) {
		t.Errorf("agent resources %v", c.Resources)
	}
	args := strings.Join(c.Args, " ")
	if !strings.Contains(args, "agent --once") || !strings.Contains(args, "--ready-file /tmp/claimed") {
		t.Errorf("agent args %q", args)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.Exec == nil || !slices.Contains(c.ReadinessProbe.Exec.Command, "/tmp/claimed") {
		t.Error("readiness is not the agent's ready file")
	}
	mounted := false
	for _, v := range job.Template.Spec.Volumes {
		if v.PersistentVolumeClaim != nil && pvcs[v.PersistentVolumeClaim.ClaimName] {
			mounted = true
		}
	}
	if !mounted {
		t.Error("the cache PVC is not mounted")
	}
}

func TestDockerfilesParseAndPinBaseImages(t *testing.T) {
	files, _ := filepath.Glob("images/*.Dockerfile")
	if len(files) != 2 {
		t.Fatalf("Dockerfiles: %v", files)
	}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		res, err := parser.Parse(fh)
		fh.Close()
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		stages := map[string]bool{}
		for _, n := range res.AST.Children {
			if !strings.EqualFold(n.Value, "from") {
				continue
			}
			var words []string
			for w := n.Next; w != nil; w = w.Next {
				words = append(words, w.Value)
			}
			image := words[0]
			if len(words) >= 3 && strings.EqualFold(words[1], "as") {
				stages[strings.ToLower(words[2])] = true
			}
			if stages[strings.ToLower(image)] {
				continue // an earlier stage
			}
			checkImage(t, image)
		}
	}
}

func TestInstallScriptDryRun(t *testing.T) {
	out, err := exec.Command("bash", "k3s/install.sh", "--dry-run").CombinedOutput()
	if err != nil {
		t.Fatalf("install.sh --dry-run: %v\n%s", err, out)
	}
	for _, want := range []string{"--disable traefik", "system-reserved=cpu=4", "kube-reserved=cpu=4",
		"/etc/rancher/k3s/registries.yaml", "gitea.dgx.local", "redis.dgx.local", "namespace ci", "namespace infrastructure", "namespace monitoring",
		`- "http://10.43.0.30:3000"`, "/etc/hosts: 10.43.0.30 gitea.dgx.local"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("dry run does not show %q", want)
		}
	}
	if strings.Contains(string(out), "+ curl") {
		t.Error("a dry run ran a command")
	}
}

// TestAgentPodsKeepCredentialsFromBuilds: the rendered agent ScaledJob runs
// steps sandboxed as the build user, mounts no service account token, gives
// steps no Secret-sourced variable and keeps Secret files root's — the same
// rules the server's Kubernetes executor follows (internal/kube).
func TestAgentPodsKeepCredentialsFromBuilds(t *testing.T) {
	var sj *kedav1alpha1.ScaledJob
	config := map[string]string{}
	for _, o := range build(t, "flux/apps/raibid") {
		switch v := o.(type) {
		case *kedav1alpha1.ScaledJob:
			sj = v
		case *corev1.ConfigMap:
			if v.Name == "raibid-config" {
				config = v.Data
			}
		}
	}
	if sj == nil || len(config) == 0 {
		t.Fatal("no agent ScaledJob or raibid-config")
	}
	spec := sj.Spec.JobTargetRef.Template.Spec
	if p := kube.CheckBuildIsolation(spec, config, runner.PassedEnv); len(p) > 0 {
		t.Fatalf("the agent ScaledJob lets builds reach credentials:\n  %s", strings.Join(p, "\n  "))
	}
	if got, want := spec.Containers[0].SecurityContext, kube.AgentSecurityContext(); !equality.Semantic.DeepEqual(got, want) {
		t.Fatalf("agent securityContext %+v differs from the executor's %+v", got, want)
	}
}

// One truth for forge hosts: the clone URLs Gitea's webhooks carry are
// built from its ROOT_URL; agents, configured with the in-cluster Gitea
// URL, must accept them (RAIBID_CLONE_HOSTS) and fetch from the in-cluster
// Service — which is where the server posts commit statuses too.
func TestCloneURLsFromGiteaRootURLPassTheAgentsCheck(t *testing.T) {
	var rootURL, giteaNS string
	var httpPort float64
	for _, o := range build(t, "flux/infrastructure/controllers") {
		hr, ok := o.(*helmv2.HelmRelease)
		if !ok || hr.Name != "gitea" {
			continue
		}
		var v struct {
			Gitea struct {
				Config struct {
					Server struct {
						RootURL string `json:"ROOT_URL"`
					} `json:"server"`
				} `json:"config"`
			} `json:"gitea"`
			Service struct {
				HTTP struct {
					Port float64 `json:"port"`
				} `json:"http"`
			} `json:"service"`
		}
		if err := stdjson.Unmarshal(hr.Spec.Values.Raw, &v); err != nil {
			t.Fatal(err)
		}
		rootURL, httpPort = v.Gitea.Config.Server.RootURL, v.Service.HTTP.Port
		giteaNS = hr.Spec.TargetNamespace
		if giteaNS == "" {
			giteaNS = hr.Namespace
		}
	}
	if rootURL == "" || giteaNS == "" {
		t.Fatalf("no Gitea ROOT_URL (%q) or namespace (%q) in the tree", rootURL, giteaNS)
	}
	var cfg map[string]string
	for _, o := range build(t, "flux/apps/raibid") {
		if cm, ok := o.(*corev1.ConfigMap); ok && cm.Name == "raibid-config" {
			cfg = cm.Data
		}
	}
	repos := agent.Repos{ForgeURL: cfg["RAIBID_GITEA_URL"], Hosts: strings.Split(cfg["RAIBID_CLONE_HOSTS"], ",")}
	clone := strings.TrimRight(rootURL, "/") + "/acme/widget.git"
	if err := repos.CheckCloneURL(clone); err != nil {
		t.Fatalf("a webhook's clone URL %s is refused by the agents: %v", clone, err)
	}
	if err := repos.CheckCloneURL("http://evil.example/acme/widget.git"); err == nil {
		t.Fatal("the agents accept any host")
	}
	u, err := url.Parse(cfg["RAIBID_GITEA_URL"])
	want := fmt.Sprintf("gitea-http.%s.svc.cluster.local:%.0f", giteaNS, httpPort)
	if err != nil || u.Host != want {
		t.Fatalf("RAIBID_GITEA_URL %q: the server's status calls and the agents' fetches need the in-cluster Service %s", cfg["RAIBID_GITEA_URL"], want)
	}
}

// What a 202 promises — the job is on disk — holds only when Redis syncs
// its AOF before it answers: the tree's Redis must say appendfsync always.
func TestRedisSyncsBeforeItAnswers(t *testing.T) {
	var conf string
	for _, o := range build(t, "flux/infrastructure/controllers") {
		if cm, ok := o.(*corev1.ConfigMap); ok && cm.Name == "redis-config" {
			conf = cm.Data["redis.conf"]
		}
	}
	for _, want := range []string{"appendonly yes", "appendfsync always", "maxmemory-policy noeviction"} {
		if !strings.Contains(conf, "\n"+want+"\n") && !strings.HasPrefix(conf, want+"\n") {
			t.Errorf("redis.conf lacks %q:\n%s", want, conf)
		}
	}
}

// Images without Docker: a rootless buildkitd with its cache on a PVC, its
// Service, and the agents pointed at it.
func TestBuildkitForTheImageStep(t *testing.T) {
	var dep *appsv1.Deployment
	var svc *corev1.Service
	var cfg map[string]string
	pvcs := map[string]bool{}
	for _, o := range build(t, "flux/apps/raibid") {
		switch v := o.(type) {
		case *appsv1.Deployment:
			if v.Name == "buildkitd" {
				dep = v
			}
		case *corev1.Service:
			if v.Name == "buildkitd" {
				svc = v
			}
		case *corev1.ConfigMap:
			if v.Name == "raibid-config" {
				cfg = v.Data
			}
		case *corev1.PersistentVolumeClaim:
			pvcs[v.Name] = true
		}
	}
	if dep == nil || svc == nil || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 1234 {
		t.Fatal("no buildkitd Deployment and Service on 1234")
	}
	c := dep.Spec.Template.Spec.Containers[0]
	if sc := c.SecurityContext; sc == nil || sc.RunAsUser == nil || *sc.RunAsUser == 0 || (sc.Privileged != nil && *sc.Privileged) {
		t.Error("buildkitd must run rootless, unprivileged")
	}
	if !strings.HasSuffix(strings.Split(c.Image, ":")[len(strings.Split(c.Image, ":"))-1], "-rootless") {
		t.Errorf("buildkitd image %s is not the rootless one", c.Image)
	}
	if claim := dep.Spec.Template.Spec.Volumes[0].PersistentVolumeClaim; claim == nil || !pvcs[claim.ClaimName] {
		t.Error("buildkitd's cache is not on a PVC of the tree")
	}
	if want := "tcp://buildkitd.ci.svc.cluster.local:1234"; cfg["RAIBID_BUILDKIT_ADDR"] != want {
		t.Errorf("RAIBID_BUILDKIT_ADDR %q, want %q", cfg["RAIBID_BUILDKIT_ADDR"], want)
	}
	// Only the agents' pods reach it: a NetworkPolicy selecting buildkitd
	// admits ingress from pods labelled as agents, on its port, and nothing else.
	var policy *networkingv1.NetworkPolicy
	agentLabels := map[string]string{}
	for _, o := range build(t, "flux/apps/raibid") {
		switch v := o.(type) {
		case *networkingv1.NetworkPolicy:
			if v.Spec.PodSelector.MatchLabels["app.kubernetes.io/name"] == dep.Spec.Template.Labels["app.kubernetes.io/name"] {
				policy = v
			}
		case *kedav1alpha1.ScaledJob:
			agentLabels = v.Spec.JobTargetRef.Template.Labels
		}
	}
	if policy == nil || len(policy.Spec.Ingress) != 1 || len(policy.Spec.Ingress[0].From) != 1 {
		t.Fatal("no NetworkPolicy limiting buildkitd's ingress to one source")
	}
	from := policy.Spec.Ingress[0].From[0]
	if from.PodSelector == nil || from.NamespaceSelector != nil || from.IPBlock != nil ||
		from.PodSelector.MatchLabels["app.kubernetes.io/name"] != agentLabels["app.kubernetes.io/name"] || agentLabels["app.kubernetes.io/name"] == "" {
		t.Errorf("buildkitd admits %+v, want the agent pods (%v) only", from, agentLabels)
	}
}

// GPU jobs are off by default behind one switch (the suspended apps-gpu
// Kustomization); once on, a second ScaledJob scales on the GPU stream and
// asks the device plugin (time-sliced) for a GPU slot per pod.
func TestGPUAgentsBehindOneSwitch(t *testing.T) {
	for _, o := range build(t, "flux/clusters/dgx-spark") {
		if k := o.(*kustomizev1.Kustomization); k.Name == "apps-gpu" && !k.Spec.Suspend {
			t.Error("apps-gpu must be suspended by default")
		}
	}
	var sj *kedav1alpha1.ScaledJob
	var plugin *helmv2.HelmRelease
	var runtimeClass *nodev1.RuntimeClass
	for _, o := range build(t, "flux/apps/raibid-gpu") {
		switch v := o.(type) {
		case *kedav1alpha1.ScaledJob:
			sj = v
		case *helmv2.HelmRelease:
			plugin = v
		case *nodev1.RuntimeClass:
			runtimeClass = v
		}
	}
	if sj == nil || plugin == nil || runtimeClass == nil {
		t.Fatal("no GPU ScaledJob, device plugin HelmRelease or RuntimeClass")
	}
	// k3s registers the NVIDIA runtime but keeps runc the default.
	if rc := sj.Spec.JobTargetRef.Template.Spec.RuntimeClassName; rc == nil || *rc != runtimeClass.Name || runtimeClass.Handler != "nvidia" {
		t.Errorf("GPU agents' runtimeClassName %v, RuntimeClass %s → %s: want the nvidia handler", rc, runtimeClass.Name, runtimeClass.Handler)
	}
	if !strings.Contains(string(plugin.Spec.Values.Raw), `"runtimeClassName":"nvidia"`) {
		t.Errorf("the device plugin does not run with the nvidia runtime: %s", plugin.Spec.Values.Raw)
	}
	if md := sj.Spec.Triggers[0].Metadata; md["stream"] != queue.GPUStream || md["consumerGroup"] != queue.DefaultGroup || md["lagCount"] != "1" {
		t.Errorf("GPU trigger %v: want the server's GPU stream %s in lag mode", md, queue.GPUStream)
	}
	c := sj.Spec.JobTargetRef.Template.Spec.Containers[0]
	gpu := c.Resources.Limits["nvidia.com/gpu"]
	if gpu.String() != "1" || !strings.Contains(strings.Join(c.Args, " "), "--gpus 1") {
		t.Errorf("GPU agent: limits %v args %v", c.Resources.Limits, c.Args)
	}
	if !strings.Contains(string(plugin.Spec.Values.Raw), "nvidia-time-slicing") {
		t.Error("the device plugin does not use the time-slicing config")
	}
}

// The node fits the whole tree at its largest: every agent both ScaledJobs
// may start, beside the server, BuildKit, Redis and the charts, within the
// cores k3s leaves allocatable (20 on the DGX Spark, less install.sh's
// reservations) — an agent that cannot be scheduled stalls the queue with
// no error. The agents' quota admits them all too.
func TestAgentsAtMaxScaleFitTheNode(t *testing.T) {
	install, err := os.ReadFile("k3s/install.sh")
	if err != nil {
		t.Fatal(err)
	}
	allocatable := resource.MustParse("20")
	for _, m := range regexp.MustCompile(`-reserved=cpu=([0-9.]+m?)`).FindAllStringSubmatch(string(install), -1) {
		allocatable.Sub(resource.MustParse(m[1]))
	}
	// Charts whose requests the tree does not set (Gitea, the device
	// plugin, Flux's controllers, CoreDNS, k3s's own): 250m each is more
	// than their defaults ask.
	chartAllowance := resource.MustParse("1500m")
	requests := chartAllowance.DeepCopy()
	agentRequests, agentLimits := resource.Quantity{}, resource.Quantity{}
	podCPU := func(spec corev1.PodSpec) (req, lim resource.Quantity) {
		for _, c := range spec.Containers {
			req.Add(*c.Resources.Requests.Cpu())
			lim.Add(*c.Resources.Limits.Cpu())
		}
		return req, lim
	}
	times := func(q resource.Quantity, n int32) resource.Quantity {
		return *resource.NewMilliQuantity(q.MilliValue()*int64(n), resource.DecimalSI)
	}
	var quota *corev1.ResourceQuota
	for _, dir := range []string{"flux/apps/raibid", "flux/apps/raibid-gpu", "flux/infrastructure/controllers", "flux/infrastructure/configs"} {
		for _, o := range build(t, dir) {
			switch v := o.(type) {
			case *appsv1.Deployment:
				req, _ := podCPU(v.Spec.Template.Spec)
				requests.Add(times(req, ptrOr(v.Spec.Replicas, 1)))
			case *appsv1.StatefulSet:
				req, _ := podCPU(v.Spec.Template.Spec)
				requests.Add(times(req, ptrOr(v.Spec.Replicas, 1)))
			case *kedav1alpha1.ScaledJob:
				req, lim := podCPU(v.Spec.JobTargetRef.Template.Spec)
				n := ptrOr(v.Spec.MaxReplicaCount, serverMaxAgents)
				requests.Add(times(req, n))
				agentRequests.Add(times(req, n))
				agentLimits.Add(times(lim, n))
			case *helmv2.HelmRelease:
				for _, m := range regexp.MustCompile(`"requests":\{"cpu":"([0-9.]+m?)"`).FindAllStringSubmatch(string(v.Spec.Values.Raw), -1) {
					requests.Add(resource.MustParse(m[1]))
				}
			case *corev1.ResourceQuota:
				quota = v
			}
		}
	}
	t.Logf("CPU requests at max scale: %s of %s allocatable (agents %s, charts allowed %s)", requests.String(), allocatable.String(), agentRequests.String(), chartAllowance.String())
	if requests.Cmp(allocatable) > 0 {
		t.Errorf("at max scale the tree requests %s CPU, the node has %s allocatable: the last agents would never be scheduled", requests.String(), allocatable.String())
	}
	if quota == nil {
		t.Fatal("no ResourceQuota for the agents")
	}
	if q := quota.Spec.Hard[corev1.ResourceRequestsCPU]; agentRequests.Cmp(q) > 0 {
		t.Errorf("the agents' quota admits %s CPU of requests, they ask %s at max scale", q.String(), agentRequests.String())
	}
	if q := quota.Spec.Hard[corev1.ResourceLimitsCPU]; agentLimits.Cmp(q) > 0 {
		t.Errorf("the agents' quota admits %s CPU of limits, they ask %s at max scale", q.String(), agentLimits.String())
	}
}

// serverMaxAgents is the server's --max-agents default: the limit it sets
// on a ScaledJob whose file leaves maxReplicaCount out.
const serverMaxAgents = 6

func ptrOr(p *int32, dflt int32) int32 {
	if p == nil {
		return dflt
	}
	return *p
}

// Gitea's chart must not start a database whose images cannot be pulled:
// the Bitnami PostgreSQL subcharts are off and Gitea keeps SQLite.
func TestGiteaNeedsNoWithdrawnImages(t *testing.T) {
	var gitea *helmv2.HelmRelease
	for _, o := range build(t, "flux/infrastructure/controllers") {
		if h, ok := o.(*helmv2.HelmRelease); ok && h.Name == "gitea" {
			gitea = h
		}
	}
	if gitea == nil {
		t.Fatal("no gitea HelmRelease")
	}
	var values struct {
		PostgreSQL   struct{ Enabled bool } `json:"postgresql"`
		PostgreSQLHA struct{ Enabled bool } `json:"postgresql-ha"`
		Gitea        struct {
			Config struct {
				Database map[string]string `json:"database"`
			} `json:"config"`
		} `json:"gitea"`
	}
	if err := stdjson.Unmarshal(gitea.Spec.Values.Raw, &values); err != nil {
		t.Fatal(err)
	}
	if values.PostgreSQL.Enabled || values.PostgreSQLHA.Enabled || values.Gitea.Config.Database["DB_TYPE"] != "sqlite3" {
		t.Errorf("gitea values: postgresql %v, postgresql-ha %v, database %v: want SQLite and no Bitnami subchart",
			values.PostgreSQL.Enabled, values.PostgreSQLHA.Enabled, values.Gitea.Config.Database)
	}
}

// The node pulls the tree's images from Gitea's registry: the image names'
// registry is the one install.sh mirrors, its endpoint is Gitea's fixed
// ClusterIP (a node has no cluster DNS), and that is the address the Gitea
// HelmRelease pins, inside k3s's service range.
func TestRegistryPathForTheNode(t *testing.T) {
	script, err := os.ReadFile("k3s/install.sh")
	if err != nil {
		t.Fatal(err)
	}
	ip := regexp.MustCompile(`GITEA_IP=\$\{GITEA_IP:-([0-9.]+)\}`).FindSubmatch(script)
	registry := regexp.MustCompile(`GITEA_REGISTRY=\$\{GITEA_REGISTRY:-([^}]+)\}`).FindSubmatch(script)
	if ip == nil || registry == nil || !strings.Contains(string(script), `- "http://$GITEA_IP:3000"`) {
		t.Fatal("install.sh does not mirror Gitea's registry to its ClusterIP")
	}
	_, serviceCIDR, _ := net.ParseCIDR("10.43.0.0/16") // k3s's default
	if !serviceCIDR.Contains(net.ParseIP(string(ip[1]))) {
		t.Errorf("Gitea's address %s is outside k3s's service range %s", ip[1], serviceCIDR)
	}
	var gitea *helmv2.HelmRelease
	for _, o := range build(t, "flux/infrastructure/controllers") {
		if h, ok := o.(*helmv2.HelmRelease); ok && h.Name == "gitea" {
			gitea = h
		}
	}
	var values struct {
		Service struct {
			HTTP struct {
				ClusterIP string `json:"clusterIP"`
				Port      int    `json:"port"`
			} `json:"http"`
		} `json:"service"`
	}
	if gitea == nil || stdjson.Unmarshal(gitea.Spec.Values.Raw, &values) != nil {
		t.Fatal("no gitea HelmRelease values")
	}
	if values.Service.HTTP.ClusterIP != string(ip[1]) || values.Service.HTTP.Port != 3000 {
		t.Errorf("Gitea's service %s:%d, install.sh mirrors to %s:3000", values.Service.HTTP.ClusterIP, values.Service.HTTP.Port, ip[1])
	}
	for _, dir := range []string{"flux/apps/raibid", "flux/apps/raibid-gpu"} {
		for _, o := range build(t, dir) {
			var spec *corev1.PodSpec
			switch v := o.(type) {
			case *appsv1.Deployment:
				spec = &v.Spec.Template.Spec
			case *kedav1alpha1.ScaledJob:
				spec = &v.Spec.JobTargetRef.Template.Spec
			}
			if spec == nil {
				continue
			}
			for _, c := range spec.Containers {
				if strings.Contains(c.Image, "raibid") && !strings.HasPrefix(c.Image, string(registry[1])+"/") {
					t.Errorf("%s: image %s is not in the mirrored registry %s", dir, c.Image, registry[1])
				}
			}
		}
	}
}
