//go:build cluster

// The cluster tests (make test-cluster): raibid's deploy tree, its
// Kubernetes executor and the KEDA ScaledJob against a real API server,
// controller manager and KEDA operator. One control plane serves the whole
// package; each test works in namespaces of its own where it can.
package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/raibid-labs/raibid-ci/internal/testutil"
	"github.com/raibid-labs/raibid-ci/test/cluster"
)

var (
	cl     *cluster.Cluster
	dyn    dynamic.Interface
	mapper meta.ResettableRESTMapper
	raibid string // the raibid binary under test
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	work, err := os.MkdirTemp("", "raibid-cluster-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(work)
	if raibid, err = testutil.BuildRaibid(work); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	cpDir := filepath.Join(work, "cp")
	if err := os.Mkdir(cpDir, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cl, err = cluster.Start(ctx, cpDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "control plane:", err)
		return 1
	}
	defer cl.Stop()
	fmt.Printf("control plane (etcd, kube-apiserver, kube-controller-manager) ready in %.1f s\n", cl.StartTime.Seconds())
	dyn = dynamic.NewForConfigOrDie(cl.Config)
	disc := discovery.NewDiscoveryClientForConfigOrDie(cl.Config)
	mapper = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))
	if err := installCRDs(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "CRDs:", err)
		return 1
	}
	return m.Run()
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// installCRDs applies every CRD of cl.CRDDir and waits until each is
// established.
func installCRDs(ctx context.Context) error {
	files, err := filepath.Glob(filepath.Join(cl.CRDDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no CRDs in %s (%v)", cl.CRDDir, err)
	}
	var names []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		for _, doc := range splitYAML(b) {
			u, err := decode(doc)
			if err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			if u == nil {
				continue
			}
			if _, err := applyObject(ctx, u, false); err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			names = append(names, u.GetName())
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, n := range names {
		var err error
		established := func() bool {
			var u *unstructured.Unstructured
			u, err = dyn.Resource(crdGVR).Get(ctx, n, metav1.GetOptions{})
			return err == nil && condition(u, "Established") == "True"
		}
		if !testutil.PollUntil(time.Until(deadline), 100*time.Millisecond, established) {
			return fmt.Errorf("CRD %s not established: %v", n, err)
		}
	}
	mapper.Reset()
	return nil
}

// condition is the status of an object's condition of that type ("" when absent).
func condition(u *unstructured.Unstructured, typ string) string {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == typ {
			s, _ := m["status"].(string)
			return s
		}
	}
	return ""
}

func splitYAML(b []byte) [][]byte {
	var out [][]byte
	for _, doc := range bytes.Split(b, []byte("\n---")) {
		if len(bytes.TrimSpace(doc)) > 0 {
			out = append(out, doc)
		}
	}
	return out
}

// decode reads one YAML object (nil for an empty document).
func decode(doc []byte) (*unstructured.Unstructured, error) {
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, err
	}
	if string(bytes.TrimSpace(j)) == "null" {
		return nil, nil
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(j); err != nil {
		return nil, err
	}
	return u, nil
}

// resourceFor maps an object to its resource client (namespaced or not).
func resourceFor(u *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := u.GroupVersionKind()
	m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", gvk.Kind, u.GetName(), err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		ns := u.GetNamespace()
		if ns == "" {
			ns = "default"
		}
		return dyn.Resource(m.Resource).Namespace(ns), nil
	}
	return dyn.Resource(m.Resource), nil
}

// applyObject server-side applies u, with the API server's strict field
// validation (an unknown or duplicate field is an error, as kubectl
// --validate=strict makes it); dryRun asks the server to check everything
// (admission, schema, defaulting) and store nothing.
func applyObject(ctx context.Context, u *unstructured.Unstructured, dryRun bool) (*unstructured.Unstructured, error) {
	if u.GetNamespace() != "" {
		if err := ensureNamespace(ctx, u.GetNamespace()); err != nil {
			return nil, err
		}
	}
	r, err := resourceFor(u)
	if err != nil {
		return nil, err
	}
	body, err := u.MarshalJSON()
	if err != nil {
		return nil, err
	}
	opts := metav1.PatchOptions{FieldManager: "raibid-cluster-test", FieldValidation: "Strict", Force: new(true)}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	return r.Patch(ctx, u.GetName(), types.ApplyPatchType, body, opts)
}

var namespaces sync.Map

// ensureNamespace creates a namespace for real (a dry-run object needs its
// namespace to exist).
func ensureNamespace(ctx context.Context, ns string) error {
	if _, ok := namespaces.Load(ns); ok {
		return nil
	}
	nsGVR := schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	_, err := dyn.Resource(nsGVR).Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("namespace %s: %w", ns, err)
	}
	namespaces.Store(ns, true)
	return nil
}

// kubeconfigAs writes a kubeconfig that acts as the service account
// (impersonated by the admin): requests are authorized by the RBAC the
// deploy tree gives that account, as in the cluster.
func kubeconfigAs(t *testing.T, namespace, serviceAccount string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(cl.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range cfg.AuthInfos {
		a.Impersonate = "system:serviceaccount:" + namespace + ":" + serviceAccount
	}
	cfg.Contexts[cfg.CurrentContext].Namespace = namespace
	path := filepath.Join(t.TempDir(), serviceAccount+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// proc is a raibid process a test started; it is stopped (SIGTERM, then
// SIGKILL) when the test ends.
type proc struct {
	cmd    *exec.Cmd
	out    testutil.SyncBuffer
	exited chan struct{}
	code   int
}

func (p *proc) output() string { return p.out.String() }

func startRaibid(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{exited: make(chan struct{})}
	p.cmd = exec.Command(raibid, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.exited
		}
		if t.Failed() {
			t.Logf("raibid %s:\n%s", args[0], tail(p.output(), 40))
		}
	})
	return p
}

func (p *proc) waitFor(t *testing.T, substr string, timeout time.Duration) {
	t.Helper()
	if !testutil.Eventually(t, timeout, func() bool { return strings.Contains(p.output(), substr) }) {
		t.Fatalf("no %q after %s:\n%s", substr, timeout, tail(p.output(), 40))
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// push sends a signed Gitea push of commit on main in the repository at
// cloneURL and returns the job's id.
func push(t *testing.T, base, secret, repo, cloneURL, commit string) string {
	t.Helper()
	return testutil.SendPush(t, base, secret, testutil.GiteaPushBody(repo, cloneURL, "main", commit))
}

// call calls raibid's API with the token and returns the status and body.
func call(t *testing.T, method, url, token string, body any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// eventually is testutil.Eventually that fails the test, saying what.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !testutil.Eventually(t, timeout, cond) {
		t.Fatalf("%s: not after %s", what, timeout)
	}
}
