// Package cluster starts a real Kubernetes control plane for raibid's cluster
// tests: etcd, kube-apiserver and kube-controller-manager built from
// Kubernetes' own Go module (test/cluster/controlplane), and the KEDA
// operator built from KEDA's (test/cluster/keda), each a process of its own
// on random loopback ports, with generated certificates and kubeconfig.
//
// There is no scheduler and no kubelet: pods stay unscheduled, and a test
// that needs one to run plays the kubelet — it starts the process itself and
// writes the pod's status through the API, as a kubelet would.
//
// The binaries and the CRDs come from `make cluster-bins` (test/cluster/build),
// which puts them under one directory, $RAIBID_CLUSTER_DIR (default
// .cluster at the repository's root). Nothing here is in raibid's product.
package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Dir is where `make cluster-bins` put the binaries (bin/) and CRDs (crds/).
func Dir() (string, error) {
	dir := os.Getenv("RAIBID_CLUSTER_DIR")
	if dir == "" {
		out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
		if err != nil {
			return "", fmt.Errorf("RAIBID_CLUSTER_DIR unset and not in a git checkout: %w", err)
		}
		dir = filepath.Join(strings.TrimSpace(string(out)), ".cluster")
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "keda-operator"} {
		if _, err := os.Stat(filepath.Join(dir, "bin", b)); err != nil {
			return "", fmt.Errorf("%s missing in %s: run `make cluster-bins` first", b, filepath.Join(dir, "bin"))
		}
	}
	return dir, nil
}

// Cluster is a running control plane.
type Cluster struct {
	BinDir, CRDDir string
	Work           string // certificates, etcd's data, the processes' logs
	Kubeconfig     string // the admin's (system:masters)
	Config         *rest.Config
	StartTime      time.Duration // from the first process to a ready API server and controller manager

	pki   *pki
	mu    sync.Mutex
	procs []*proc
}

// proc is one control-plane process.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// Start starts etcd, kube-apiserver and kube-controller-manager, and waits
// until the API server answers /readyz and the controller manager has
// created the default namespace's service account (its controllers run).
func Start(ctx context.Context, work string) (*Cluster, error) {
	dir, err := Dir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{BinDir: filepath.Join(dir, "bin"), CRDDir: filepath.Join(dir, "crds"), Work: work}
	began := time.Now()
	if err := c.start(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	c.StartTime = time.Since(began)
	return c, nil
}

func (c *Cluster) start(ctx context.Context) error {
	p, err := writePKI(c.Work)
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	c.pki = p
	ports, err := freePorts(4)
	if err != nil {
		return err
	}
	etcdClient := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	etcdPeer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	if err := c.run("etcd", nil,
		"--name=raibid-test", "--data-dir="+filepath.Join(c.Work, "etcd"),
		"--listen-client-urls="+etcdClient, "--advertise-client-urls="+etcdClient,
		"--listen-peer-urls="+etcdPeer, "--initial-advertise-peer-urls="+etcdPeer,
		"--initial-cluster=raibid-test="+etcdPeer,
		// A test cluster's data dies with it; fsync only slows it down.
		"--unsafe-no-fsync", "--log-level=warn",
	); err != nil {
		return err
	}
	if err := c.waitHTTP(ctx, "etcd", http.DefaultClient, etcdClient+"/health", 30*time.Second); err != nil {
		return c.failed("etcd", err)
	}

	server := "https://127.0.0.1:" + strconv.Itoa(ports[2])
	if err := c.run("kube-apiserver", nil,
		"--etcd-servers="+etcdClient,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+strconv.Itoa(ports[2]),
		"--tls-cert-file="+p.ServerCert, "--tls-private-key-file="+p.ServerKey,
		"--client-ca-file="+p.CA,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+p.SAPub, "--service-account-signing-key-file="+p.SAKey,
		"--service-cluster-ip-range=10.0.0.0/24",
		// The kubernetes Service's endpoint would be 127.0.0.1, which the
		// endpoint reconciler refuses (loopback); nothing here needs it.
		"--endpoint-reconciler-type=none",
		"--authorization-mode=Node,RBAC",
		"--cert-dir="+filepath.Join(c.Work, "apiserver"),
		"--v=0",
	); err != nil {
		return err
	}
	c.Kubeconfig = filepath.Join(c.Work, "admin.kubeconfig")
	if err := writeKubeconfig(c.Kubeconfig, server, p); err != nil {
		return err
	}
	c.Config, err = clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return err
	}
	c.Config.QPS, c.Config.Burst = 200, 400
	hc, err := rest.HTTPClientFor(c.Config)
	if err != nil {
		return err
	}
	if err := c.waitHTTP(ctx, "kube-apiserver", hc, server+"/readyz", 90*time.Second); err != nil {
		return c.failed("kube-apiserver", err)
	}

	if err := c.run("kube-controller-manager", nil,
		"--kubeconfig="+c.Kubeconfig,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(ports[3]),
		"--leader-elect=false",
		"--root-ca-file="+p.CA, "--service-account-private-key-file="+p.SAKey,
		"--use-service-account-credentials=false",
		"--cert-dir="+filepath.Join(c.Work, "controller-manager"),
		"--v=0",
	); err != nil {
		return err
	}
	// The service-account controller creates "default" in every namespace:
	// once it exists, the controllers are running.
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := hc.Get(server + "/api/v1/namespaces/default/serviceaccounts/default")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil || !c.Running("kube-controller-manager") {
			return c.failed("kube-controller-manager", errors.New("no default service account (after 60 s, or it exited)"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// StartKEDA starts the KEDA operator against the cluster, watching every
// namespace, its own objects in namespace keda (created here).
func (c *Cluster) StartKEDA(ctx context.Context) error {
	ports, err := freePorts(1)
	if err != nil {
		return err
	}
	// Its gRPC metrics service serves TLS from --cert-dir (ca.crt,
	// tls.crt, tls.key): the API server's certificate, whose names
	// include 127.0.0.1, does.
	certs := filepath.Join(c.Work, "keda-certs")
	if err := os.MkdirAll(certs, 0o700); err != nil {
		return err
	}
	for dst, src := range map[string]string{"ca.crt": c.pki.CA, "tls.crt": c.pki.ServerCert, "tls.key": c.pki.ServerKey} {
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(certs, dst), b, 0o600); err != nil {
			return err
		}
	}
	return c.run("keda-operator", []string{
		"KUBECONFIG=" + c.Kubeconfig, "WATCH_NAMESPACE=", "POD_NAMESPACE=keda", "KEDA_CLUSTER_OBJECT_NAMESPACE=keda",
	},
		"--leader-elect=false", "--metrics-bind-address=0", "--health-probe-bind-address=0",
		"--metrics-service-bind-address=127.0.0.1:"+strconv.Itoa(ports[0]),
		"--cert-dir="+certs, "--zap-log-level=info", "--zap-encoder=console",
	)
}

// run starts a binary of BinDir, its output into Work/<name>.log.
func (c *Cluster) run(name string, env []string, args ...string) error {
	return c.runBin(name, filepath.Join(c.BinDir, name), env, args...)
}

// runBin starts the program bin as the component name.
func (c *Cluster) runBin(name, bin string, env []string, args ...string) error {
	logPath := filepath.Join(c.Work, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	// Its own process group: Stop signals the group, so nothing a
	// component starts outlives it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		f.Close()
		close(p.done)
	}()
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	return nil
}

// Stop stops every process, newest first: SIGTERM, then SIGKILL after 15 s.
// It returns once all have exited.
func (c *Cluster) Stop() {
	c.mu.Lock()
	procs := c.procs
	c.procs = nil
	c.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		p := procs[i]
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	}
}

// Running says whether the named process is still up.
func (c *Cluster) Running(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.procs {
		if p.name == name {
			select {
			case <-p.done:
				return false
			default:
				return true
			}
		}
	}
	return false
}

// Log is the tail of a process's output, for a failing test's message.
func (c *Cluster) Log(name string, lines int) string {
	b, err := os.ReadFile(filepath.Join(c.Work, name+".log"))
	if err != nil {
		return err.Error()
	}
	all := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return string(bytes.Join(all, []byte("\n")))
}

func (c *Cluster) failed(name string, err error) error {
	return fmt.Errorf("%s: %w\n%s", name, err, c.Log(name, 30))
}

// waitHTTP polls url until it answers 200, the process name exits, or limit passes.
func (c *Cluster) waitHTTP(ctx context.Context, name string, hc *http.Client, url string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if !c.Running(name) {
			return fmt.Errorf("exited: %v", last)
		}
		resp, err := hc.Get(url)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %s: %v", limit, last)
}

// freePorts asks the kernel for n free loopback ports.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func writeKubeconfig(path, server string, p *pki) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: server, CertificateAuthority: p.CA}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificate: p.AdminCert, ClientKey: p.AdminKey}
	cfg.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "admin", Namespace: "default"}
	cfg.CurrentContext = "test"
	return clientcmd.WriteToFile(*cfg, path)
}
