package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"
)

// NodeBins are the node's programs: built from their Go modules by
// test/cluster/build (make node-bins) into the machine's cache, once per
// version; runc and the CNI plugins are Debian's.
type NodeBins struct {
	Kubelet, Scheduler, Containerd, Shim, Ctr string
	Runc                                      string
	CNIDir                                    string
}

// NodeBinDir is where make node-bins keeps the node's programs.
func NodeBinDir() string {
	if d := os.Getenv("RAIBID_NODE_DIR"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "raibid", "node")
}

// FindNodeBins locates the node's programs, or says what is missing.
func FindNodeBins() (NodeBins, error) {
	d := NodeBinDir()
	b := NodeBins{
		Kubelet: filepath.Join(d, "kubelet-"+KubernetesVersion), Scheduler: filepath.Join(d, "kube-scheduler-"+KubernetesVersion),
		Containerd: filepath.Join(d, "containerd-"+ContainerdVersion), Shim: filepath.Join(d, "containerd-shim-runc-v2-"+ContainerdVersion),
		Ctr: filepath.Join(d, "ctr-"+ContainerdVersion), Runc: "/usr/sbin/runc", CNIDir: "/usr/lib/cni",
	}
	for _, p := range []string{b.Kubelet, b.Scheduler, b.Containerd, b.Shim, b.Ctr, b.Runc, filepath.Join(b.CNIDir, "bridge")} {
		if _, err := os.Stat(p); err != nil {
			return b, fmt.Errorf("%s missing: run `make node-bins` (and scripts/deps for runc and the CNI plugins)", p)
		}
	}
	return b, nil
}

// The versions the node runs (test/cluster/build builds them).
const (
	KubernetesVersion = "v1.37.2"
	ContainerdVersion = "v2.4.2"
)

// Node is a real Kubernetes node on this machine: containerd (with runc)
// running pods, a kubelet registering it with the cluster, kube-scheduler
// binding pods to it, and pod networking from the CNI bridge plugin. Pods
// reach this machine at BridgeIP.
type Node struct {
	Name     string
	BridgeIP string // this machine on the pods' network (the bridge's gateway)
	Subnet   string
	Socket   string // containerd's
	bins     NodeBins
	c        *Cluster
	bridge   string
	runDir   string
	sysctls  map[string]string // kernel settings the kubelet changes, as they were
}

// kubeletSysctls are the kernel settings a kubelet sets unless
// protectKernelDefaults refuses to start with others: the node restores
// them when it stops.
var kubeletSysctls = []string{"vm.overcommit_memory", "vm.panic_on_oom", "kernel.panic", "kernel.panic_on_oops", "kernel.keys.root_maxkeys", "kernel.keys.root_maxbytes"}

// StartNode starts a node in the cluster: the bridge, containerd (images
// imported from archives), kube-scheduler and the kubelet; it returns once
// the Node is Ready.
func (c *Cluster) StartNode(ctx context.Context, bins NodeBins, images []string) (*Node, error) {
	n := &Node{Name: "raibid-node", BridgeIP: "10.89.0.1", Subnet: "10.89.0.0/24", bins: bins, c: c, bridge: "raibid0"}
	// Unix sockets have a short path limit: the run dir is short.
	var err error
	if n.runDir, err = os.MkdirTemp("/tmp", "rn-"); err != nil {
		return nil, err
	}
	n.Socket = filepath.Join(n.runDir, "c.sock")
	if err := n.start(ctx, images); err != nil {
		n.Stop()
		return nil, err
	}
	return n, nil
}

func (n *Node) start(ctx context.Context, images []string) error {
	c := n.c
	work := filepath.Join(c.Work, "node")
	if err := os.MkdirAll(filepath.Join(work, "cni"), 0o755); err != nil {
		return err
	}
	// The bridge exists before any pod, so that servers for the pods can
	// listen on its address; the bridge plugin takes it as it finds it.
	for _, args := range [][]string{
		{"link", "add", n.bridge, "type", "bridge"},
		{"addr", "add", n.BridgeIP + "/24", "dev", n.bridge},
		{"link", "set", n.bridge, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	conflist := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "raibid-pods", "plugins": [
  {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": %q, "gateway": %q}]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": %q}},
  {"type": "loopback"}
]}`, n.bridge, n.Subnet, n.BridgeIP, filepath.Join(work, "cni-ipam"))
	if err := os.WriteFile(filepath.Join(work, "cni", "10-raibid.conflist"), []byte(conflist), 0o644); err != nil {
		return err
	}

	// containerd: runc from Debian, cgroupfs (PID 1 is not systemd), and
	// restrict_oom_score_adj: this machine lacks CAP_SYS_RESOURCE, so runc
	// cannot set the kubelet's -997 for Guaranteed pods below containerd's
	// own score.
	shimDir := filepath.Join(n.runDir, "bin")
	if err := os.MkdirAll(shimDir, 0o755); err != nil {
		return err
	}
	if err := os.Symlink(n.bins.Shim, filepath.Join(shimDir, "containerd-shim-runc-v2")); err != nil {
		return err
	}
	config := fmt.Sprintf(`version = 3
root = %q
state = %q
[grpc]
  address = %q
[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = [%q]
    conf_dir = %q
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      SystemdCgroup = false
      BinaryName = %q
[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = %q
`, filepath.Join(work, "containerd"), filepath.Join(n.runDir, "state"), n.Socket, n.bins.CNIDir, filepath.Join(work, "cni"), n.bins.Runc, PauseImage)
	cfgPath := filepath.Join(work, "containerd.toml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		return err
	}
	if err := c.runBin("containerd", n.bins.Containerd, []string{"PATH=" + shimDir + ":" + os.Getenv("PATH")}, "--config", cfgPath); err != nil {
		return err
	}
	if err := waitFor(ctx, 30*time.Second, func() bool {
		return exec.Command(n.bins.Ctr, "--address", n.Socket, "version").Run() == nil
	}); err != nil {
		return c.failed("containerd", err)
	}
	for _, img := range images {
		out, err := exec.Command(n.bins.Ctr, "--address", n.Socket, "-n", "k8s.io", "images", "import", img).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ctr images import %s: %v: %s", img, err, out)
		}
	}

	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	if err := c.runBin("kube-scheduler", n.bins.Scheduler, nil,
		"--kubeconfig="+c.Kubeconfig, "--authentication-kubeconfig="+c.Kubeconfig, "--authorization-kubeconfig="+c.Kubeconfig,
		"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(ports[0]), "--v=0"); err != nil {
		return err
	}

	// The kubelet: cgroup v1 is allowed (this machine is hybrid), the
	// cgroupfs driver, no swap check, no evictions (a CI machine's disk is
	// not this test's to guard), no anonymous access. It sets the kernel
	// settings it wants (kubeletSysctls); they are put back at Stop.
	n.sysctls = map[string]string{}
	for _, k := range kubeletSysctls {
		if out, err := exec.Command("sysctl", "-n", k).Output(); err == nil {
			n.sysctls[k] = strings.TrimSpace(string(out))
		}
	}
	resolv := filepath.Join(work, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver "+n.BridgeIP+"\n"), 0o644); err != nil {
		return err
	}
	kcfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: %q}
authorization: {mode: AlwaysAllow}
address: 127.0.0.1
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%s
resolvConf: %q
enforceNodeAllocatable: []
evictionHard: {}
protectKernelDefaults: false
makeIPTablesUtilChains: false
serializeImagePulls: false
localStorageCapacityIsolation: false
staticPodPath: ""
podLogsDir: %q
`, c.pki.CA, ports[1], ports[2], n.Socket, resolv, filepath.Join(work, "pod-logs"))
	kubeletCfg := filepath.Join(work, "kubelet.yaml")
	if err := os.WriteFile(kubeletCfg, []byte(kcfg), 0o644); err != nil {
		return err
	}
	if err := c.runBin("kubelet", n.bins.Kubelet, nil,
		"--config="+kubeletCfg, "--kubeconfig="+c.Kubeconfig, "--hostname-override="+n.Name,
		"--node-ip="+n.BridgeIP, "--root-dir="+filepath.Join(work, "kubelet"), "--cert-dir="+filepath.Join(work, "kubelet-pki"), "--v=1"); err != nil {
		return err
	}
	hc, err := rest.HTTPClientFor(c.Config)
	if err != nil {
		return err
	}
	return waitFor(ctx, 90*time.Second, func() bool {
		if !c.Running("kubelet") {
			return true // reported below
		}
		resp, err := hc.Get(c.Config.Host + "/api/v1/nodes/" + n.Name)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b := make([]byte, 64<<10)
		k, _ := resp.Body.Read(b)
		return resp.StatusCode == 200 && strings.Contains(string(b[:k]), `"type":"Ready","status":"True"`)
	}, func() error {
		if !c.Running("kubelet") {
			return c.failed("kubelet", errors.New("exited"))
		}
		return nil
	})
}

// PauseImage is the pods' sandbox image, imported (never pulled).
const PauseImage = "registry.k8s.io/pause:raibid-node"

// Stop removes what the node made outside the cluster's processes (the
// cluster's Stop ends those): the bridge, the kernel settings the kubelet
// changed, the run dir.
func (n *Node) Stop() {
	_ = exec.Command("ip", "link", "del", n.bridge).Run()
	for k, v := range n.sysctls {
		_ = exec.Command("sysctl", "-q", "-w", k+"="+v).Run()
	}
	if n.runDir != "" {
		_ = os.RemoveAll(n.runDir)
	}
}

// waitFor polls cond until it holds, ctx ends or within passes; check, when
// given, turns a hold into the error it reports.
func waitFor(ctx context.Context, within time.Duration, cond func() bool, check ...func() error) error {
	deadline := time.Now().Add(within)
	for {
		if cond() {
			for _, f := range check {
				if err := f(); err != nil {
					return err
				}
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within %s", within)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
