package kube

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"

	"github.com/raibid-labs/raibid-ci/internal/ci"
)

// ExecutorOptions describe the Jobs the executor creates.
type ExecutorOptions struct {
	Namespace string
	Image     string // the agent image, pinned
	// RedisURL is the agents' Redis without a password; the password comes
	// from the Secret RedisSecret (key "password") so it is never in the
	// Job's spec.
	RedisURL    string
	RedisSecret string
	// ForgeSecret, when set, gives agents the Gitea token (its key
	// "gitea-token", as RAIBID_GITEA_TOKEN): private clones and the final
	// commit status need it. Steps never see it (the sandbox's environment
	// is an allowlist).
	ForgeSecret string
	// ConfigMap, when set, is passed to the agent as environment (RAIBID_*).
	ConfigMap      string
	ServiceAccount string
	// PriorityClass is the agents' (the tree's raibid-agent: below the
	// infrastructure, and what the ci namespace's quota counts); "" for none.
	PriorityClass string
	CachePVC      string // mounted at /cache; "" for none
	CPU, Memory   string // per agent, default 2 and 4Gi
	// TTL removes finished Jobs after this many seconds (default 600).
	TTL int32
	Log *slog.Logger
}

// Executor creates one Job per queued job. The Job's pod runs `raibid agent
// --once`, which claims whatever entry is next: the Job is the capacity for
// one job, and JOB_ID/REPO/COMMIT say which job asked for it.
type Executor struct {
	c    dynamic.Interface
	opts ExecutorOptions
}

// NewExecutor checks the options.
func NewExecutor(c dynamic.Interface, opts ExecutorOptions) (*Executor, error) {
	if opts.Namespace == "" || opts.Image == "" || opts.RedisURL == "" {
		return nil, errors.New("kubernetes executor: namespace, agent image and redis URL are needed")
	}
	if i := strings.LastIndex(opts.Image, ":"); i < 0 || strings.HasSuffix(opts.Image, ":latest") || strings.Contains(opts.Image[i:], "/") {
		return nil, fmt.Errorf("kubernetes executor: image %q must be pinned to a tag other than latest", opts.Image)
	}
	if opts.CPU == "" {
		opts.CPU = "2"
	}
	if opts.Memory == "" {
		opts.Memory = "4Gi"
	}
	if _, err := resource.ParseQuantity(opts.CPU); err != nil {
		return nil, fmt.Errorf("kubernetes executor: cpu %q: %w", opts.CPU, err)
	}
	if _, err := resource.ParseQuantity(opts.Memory); err != nil {
		return nil, fmt.Errorf("kubernetes executor: memory %q: %w", opts.Memory, err)
	}
	if opts.TTL == 0 {
		opts.TTL = 600
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Executor{c: c, opts: opts}, nil
}

// JobName is the Kubernetes Job of a raibid job that needs no GPU and no
// sidecars (PodName names any).
func JobName(id string) string { return "raibid-agent-" + strings.ToLower(id) }

// PodName is the Kubernetes Job launched for j: its id, and the shape of
// the pod when it is not the plain one. The agent that reads the pipeline
// hands a job that needs another shape (a GPU, its services) back to the
// queue, and the new shape gets a Job of its own rather than finding the
// first one.
func PodName(j *ci.Job) string {
	name := JobName(j.ID)
	if j.GPUs > 0 {
		name += "-g" + strconv.Itoa(j.GPUs)
	}
	if len(j.Sidecars) > 0 {
		h := fnv.New32a()
		for _, sc := range j.Sidecars {
			fmt.Fprintf(h, "%s\x00%s\x00%d\x00", sc.Name, sc.Image, sc.Port)
		}
		name += fmt.Sprintf("-s%08x", h.Sum32())
	}
	return name
}

// Launch creates the Job for a queued job; a second call for the same job
// and shape finds the first Job and creates nothing.
func (e *Executor) Launch(ctx context.Context, j *ci.Job) error {
	return e.create(ctx, PodName(j), j)
}

func (e *Executor) create(ctx context.Context, name string, j *ci.Job) error {
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(e.jobSpec(name, j))
	if err != nil {
		return fmt.Errorf("job %s: %w", name, err)
	}
	_, err = e.c.Resource(JobsResource).Namespace(e.opts.Namespace).Create(ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{FieldManager: "raibid"})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create job %s: %w", name, err)
	}
	return nil
}

// sidecarName is a service name as a container name (lower-case DNS label).
func sidecarName(s string) string {
	out := strings.Trim(regexp.MustCompile(`[^a-z0-9-]+`).ReplaceAllString(strings.ToLower(s), "-"), "-")
	if len(out) > 50 {
		out = out[:50]
	}
	return out
}

// jobSpec is the Job called name; j says which raibid job asked for it (an
// empty j: a spare for an entry no Job was launched for).
func (e *Executor) jobSpec(name string, j *ci.Job) *batchv1.Job {
	o := e.opts
	zero := int32(0)
	labels := map[string]string{LabelName: AgentName, "app.kubernetes.io/managed-by": "raibid"}
	if j.ID != "" {
		labels[LabelJobID] = j.ID
	}
	res := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(o.CPU), corev1.ResourceMemory: resource.MustParse(o.Memory)}
	env := []corev1.EnvVar{
		{Name: "JOB_ID", Value: j.ID},
		{Name: "REPO", Value: j.Repo},
		{Name: "COMMIT", Value: j.Commit},
		{Name: "RAIBID_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
	}
	redisURL := o.RedisURL
	if o.RedisSecret != "" {
		env = append(env, corev1.EnvVar{Name: "REDIS_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: o.RedisSecret}, Key: "password"}}})
		// Kubernetes expands $(REDIS_PASSWORD) when it starts the container.
		redisURL = strings.Replace(redisURL, "redis://", "redis://:$(REDIS_PASSWORD)@", 1)
	}
	env = append(env, corev1.EnvVar{Name: "REDIS_URL", Value: redisURL}, corev1.EnvVar{Name: "RAIBID_REDIS_URL", Value: redisURL})
	if o.ForgeSecret != "" {
		optional := true
		env = append(env, corev1.EnvVar{Name: "RAIBID_GITEA_TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: o.ForgeSecret}, Key: "gitea-token", Optional: &optional}}})
	}
	args := []string{"agent", "--once", "--wait", "30s", "--ready-file", "/tmp/claimed", "--workdir", "/work", "--shaped-pod", "--gpus", "0"}
	if j.GPUs > 0 {
		// The pod gets the GPUs the job needs (the NVIDIA device plugin's
		// resource; with time-slicing a GPU is several), and its agent
		// knows it has them.
		gpus := resource.MustParse(strconv.Itoa(j.GPUs))
		res = res.DeepCopy()
		res["nvidia.com/gpu"] = gpus
		args[len(args)-1] = strconv.Itoa(j.GPUs)
	}
	c := corev1.Container{
		Name: "agent", Image: o.Image,
		Args:      args,
		Env:       env,
		Resources: corev1.ResourceRequirements{Requests: res, Limits: res},
		ReadinessProbe: &corev1.Probe{PeriodSeconds: 1, ProbeHandler: corev1.ProbeHandler{
			Exec: &corev1.ExecAction{Command: []string{"test", "-f", "/tmp/claimed"}}}},
		VolumeMounts: []corev1.VolumeMount{{Name: "work", MountPath: "/work"}},
	}
	if o.ConfigMap != "" {
		c.EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: o.ConfigMap}}}}
	}
	volumes := []corev1.Volume{{Name: "work", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	if o.CachePVC != "" {
		c.Args = append(c.Args, "--cache-dir", "/cache")
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "cache", MountPath: "/cache"})
		volumes = append(volumes, corev1.Volume{Name: "cache", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: o.CachePVC}}})
	}
	ttl := o.TTL
	pod := corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, ServiceAccountName: o.ServiceAccount, PriorityClassName: o.PriorityClass, Volumes: volumes}
	hardenAgentPod(&pod, &c)
	pod.Containers = []corev1.Container{c}
	if len(j.Sidecars) > 0 {
		// The pipeline's image services run as native sidecars (init
		// containers that keep running): up before the agent, stopped
		// when it exits. The agent waits for their ports and starts none.
		c.Env = append(c.Env, corev1.EnvVar{Name: "RAIBID_SERVICE_SIDECARS", Value: "1"})
		pod.Containers = []corev1.Container{c}
		always := corev1.ContainerRestartPolicyAlways
		for _, sc := range j.Sidecars {
			pod.InitContainers = append(pod.InitContainers, corev1.Container{
				Name: "service-" + sidecarName(sc.Name), Image: sc.Image, RestartPolicy: &always,
				Ports:           []corev1.ContainerPort{{ContainerPort: int32(sc.Port)}},
				Resources:       corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("256Mi")}},
				SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: new(bool)},
			})
		}
	}
	return &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: o.Namespace, Labels: labels},
		Spec: batchv1.JobSpec{
			BackoffLimit:            &zero, // the queue retries, not Kubernetes
			TTLSecondsAfterFinished: &ttl,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       pod,
			},
		},
	}
}

// Failure is a pod failure worth recording on a raibid job.
type Failure struct {
	JobID, Pod, Reason string
}

// Watch follows the executor's Jobs until ctx ends and calls failed once per
// failed Job with the reason Kubernetes gives (pod OOMKilled, image pull,
// deadline). The watch is restarted when the API server closes it.
func (e *Executor) Watch(ctx context.Context, failed func(Failure)) {
	seen := map[string]bool{}
	for ctx.Err() == nil {
		w, err := e.c.Resource(JobsResource).Namespace(e.opts.Namespace).Watch(ctx, metav1.ListOptions{LabelSelector: AgentSelector})
		if err != nil {
			e.opts.Log.Warn("kubernetes: watch jobs", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
			}
			continue
		}
		for ev := range w.ResultChan() {
			u, ok := ev.Object.(*unstructured.Unstructured)
			if !ok || ev.Type == watch.Deleted || seen[u.GetName()] {
				continue
			}
			job := &batchv1.Job{}
			if runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, job) != nil {
				continue
			}
			for _, cond := range job.Status.Conditions {
				if cond.Type == batchv1.JobFailed && cond.Status == corev1.ConditionTrue {
					seen[job.Name] = true
					f := Failure{JobID: job.Labels[LabelJobID], Pod: job.Name, Reason: strings.TrimSpace(cond.Reason + ": " + cond.Message)}
					f.Reason += e.podReason(ctx, job.Name)
					failed(f)
				}
			}
		}
		w.Stop()
	}
}

// podReason adds what the Job's pod says (OOMKilled, ErrImagePull, ...).
func (e *Executor) podReason(ctx context.Context, jobName string) string {
	pods, err := list[corev1.Pod](ctx, e.c, PodsResource, e.opts.Namespace, "job-name="+jobName)
	if err != nil {
		return ""
	}
	var why []string
	for _, p := range pods {
		for _, cs := range p.Status.ContainerStatuses {
			switch {
			case cs.State.Terminated != nil && cs.State.Terminated.Reason != "":
				why = append(why, fmt.Sprintf("pod %s: %s (exit %d)", p.Name, cs.State.Terminated.Reason, cs.State.Terminated.ExitCode))
			case cs.State.Waiting != nil && cs.State.Waiting.Reason != "":
				why = append(why, fmt.Sprintf("pod %s: %s", p.Name, cs.State.Waiting.Reason))
			}
		}
	}
	if len(why) == 0 {
		return ""
	}
	return "; " + strings.Join(why, "; ")
}

// Reconcile covers entries that no Job was launched for (a job an agent
// handed back for a retry, an entry the reaper requeued): when the queue's
// lag is larger than the executor's Jobs whose pods have not claimed an
// entry yet, it launches the difference, at most max at a time in all.
func (e *Executor) Reconcile(ctx context.Context, lag int64, maxAgents int) error {
	jobs, err := list[batchv1.Job](ctx, e.c, JobsResource, e.opts.Namespace, AgentSelector)
	if err != nil {
		return fmt.Errorf("list jobs: %w", err)
	}
	pods, err := AgentPods(ctx, e.c, e.opts.Namespace)
	if err != nil {
		return err
	}
	ready := map[string]bool{}
	for _, p := range pods {
		if p.Ready || p.Phase == "succeeded" || p.Phase == "failed" {
			ready[p.JobName] = true
		}
	}
	var active, waiting int64
	for _, j := range jobs {
		if j.Status.CompletionTime != nil || finished(&j) {
			continue
		}
		active++
		if !ready[j.Name] {
			waiting++
		}
	}
	n := min(lag-waiting, int64(maxAgents)-active)
	for i := int64(0); i < n; i++ {
		if err := e.create(ctx, "raibid-agent-spare-"+ci.NewID(time.Now()), &ci.Job{}); err != nil {
			return err
		}
	}
	return nil
}

func finished(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// WatchFailures is Watch for callers that only record text on a job.
func (e *Executor) WatchFailures(ctx context.Context, fn func(jobID, reason string)) {
	e.Watch(ctx, func(f Failure) { fn(f.JobID, "kubernetes job "+f.Pod+" failed: "+f.Reason) })
}
