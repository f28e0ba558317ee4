package server_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/raibid-labs/raibid-ci/internal/agent"
	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/jobs"
	"github.com/raibid-labs/raibid-ci/internal/queue"
	"github.com/raibid-labs/raibid-ci/internal/sandbox"
	"github.com/raibid-labs/raibid-ci/internal/server"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// GPU jobs: two jobs that need a GPU (queued like any other; the agent that
// reads their pipeline hands them to the GPU stream), on a machine with one
// GPU slot and two agents, run one after the other (each sees only its slot), while a
// CPU job queued behind them is not held back; /agents shows the slots.
func TestGPUJobsShareTheSlotsAndCPUJobsAreNotHeldBack(t *testing.T) {
	gpuYML := "resources: {gpu: 1}\nsteps:\n  - name: train\n    run: echo \"gpus=[$CUDA_VISIBLE_DEVICES]\"; sleep 1\n"
	cpuYML := "steps:\n  - name: lint\n    run: echo \"gpus=[$CUDA_VISIBLE_DEVICES]\"; sleep 0.2\n"
	gpuDir, gpuSHA := testutil.GitRepo(t, map[string]string{".raibid.yml": gpuYML})
	cpuDir, cpuSHA := testutil.GitRepo(t, map[string]string{".raibid.yml": cpuYML})
	r := testutil.StartRedis(t)
	var gpuJobs *jobs.Lifecycle
	e := startOn(t, r, func(o *server.Options) {
		gpuJobs = jobs.New(o.Store, queue.New(r.Client(), queue.Options{Keys: queue.GPUKeysWithPrefix("")}), jobs.Options{})
		o.GPUJobs = gpuJobs
	})
	hook := func(repo, dir, sha, delivery string) string {
		body, _ := json.Marshal(map[string]any{"ref": "refs/heads/main", "after": sha,
			"repository": map[string]any{"full_name": repo, "clone_url": dir}})
		code, out := e.webhook(hook{body: body, delivery: delivery})
		if code != 202 {
			t.Fatalf("webhook %d %v", code, out)
		}
		return out["job_id"].(string)
	}
	g1 := hook("acme/train", gpuDir, gpuSHA, "g1")
	g2 := hook("acme/train", gpuDir, gpuSHA, "g2")
	c1 := hook("acme/lint", cpuDir, cpuSHA, "c1")
	slots := agent.NewGPUSlots(1)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, name := range []string{"a1", "a2"} {
		a := agent.New(agent.Options{Name: name, Jobs: e.jobs, GPUJobs: gpuJobs, GPUs: slots, Store: e.store,
			WorkDir: t.TempDir(), Repos: agent.Repos{AllowLocal: true}, ClaimBlock: 200 * time.Millisecond})
		wg.Go(func() { a.Run(ctx) })
	}
	testutil.Eventually(t, 30*time.Second, func() bool {
		return e.job(g1).Status.Final() && e.job(g2).Status.Final() && e.job(c1).Status.Final()
	})
	var agents struct {
		Agents []struct{ GPUs, GPUsBusy int }
	}
	_, body := e.do("GET", "/agents", "", token)
	json.Unmarshal(body, &agents)
	stop()
	wg.Wait()
	a, b, c := e.job(g1), e.job(g2), e.job(c1)
	for _, j := range []*ci.Job{a, b, c} {
		if j.Status != ci.StatusSuccess {
			t.Fatalf("job %s (%s) %s %q", j.ID, j.Repo, j.Status, j.Error)
		}
	}
	if a.StartedAt.Before(*b.FinishedAt) && b.StartedAt.Before(*a.FinishedAt) {
		t.Fatalf("two GPU jobs ran at once on one slot: %s–%s and %s–%s", a.StartedAt, a.FinishedAt, b.StartedAt, b.FinishedAt)
	}
	last := a
	if b.FinishedAt.After(*a.FinishedAt) {
		last = b
	}
	if !c.StartedAt.Before(*last.StartedAt) {
		t.Fatalf("the CPU job waited for the GPU jobs: started %s, the second GPU job %s", c.StartedAt, last.StartedAt)
	}
	if a.GPUs != 1 || b.GPUs != 1 || c.GPUs != 0 {
		t.Fatalf("GPUs recorded: %d %d %d", a.GPUs, b.GPUs, c.GPUs)
	}
	if logs := e.logText(a.ID); !strings.Contains(logs, "gpus=[0]") || !strings.Contains(logs, "handed over: the pipeline needs an agent with 1 GPU") {
		t.Fatalf("the GPU job did not see its slot:\n%s", logs)
	}
	if logs := e.logText(c.ID); !strings.Contains(logs, "gpus=[]") {
		t.Fatalf("the CPU job saw a GPU:\n%s", logs)
	}
	if len(agents.Agents) != 2 || agents.Agents[0].GPUs != 1 {
		t.Fatalf("/agents %s", body)
	}
}

// The GPU count comes from nvidia-smi -L; a stand-in nvidia-smi on PATH
// (a shell script, named as one) lists two GPUs.
func TestDetectGPUsWithAStandInNvidiaSmi(t *testing.T) {
	dir := t.TempDir()
	stub := "#!/bin/sh\n# stand-in for nvidia-smi (no NVIDIA driver here)\necho 'GPU 0: NVIDIA GB10 (UUID: GPU-0000)'\necho 'GPU 1: NVIDIA GB10 (UUID: GPU-0001)'\n"
	if err := os.WriteFile(filepath.Join(dir, "nvidia-smi"), []byte(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	if n := agent.DetectGPUs(); n != 2 {
		t.Fatalf("detected %d GPUs, want 2", n)
	}
	t.Setenv("PATH", t.TempDir())
	if n := agent.DetectGPUs(); n != 0 {
		t.Fatalf("without nvidia-smi: %d GPUs", n)
	}
}

// In the sandbox a GPU job sees the device nodes of the slot it holds (slot
// 0: the first /dev/nvidiaN present, as in a pod given GPU 1) and the
// driver's control node; a CPU job sees none. The nodes are stand-ins
// made by mknod (no NVIDIA driver here) in a directory the agent is told
// is its /dev.
func TestGPUJobsSeeTheirDevicesInTheSandbox(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("mknod needs root: run the tests as root, as .ci/run does")
	}
	devDir := t.TempDir()
	for name, minor := range map[string]uint32{"nvidia1": 1, "nvidia3": 3, "nvidiactl": 255} {
		if err := unix.Mknod(filepath.Join(devDir, name), unix.S_IFCHR|0o666, int(unix.Mkdev(195, minor))); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(devDir, "nvidia7"), []byte("not a device"), 0o644)
	sb, err := sandbox.New(sandbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	show := "echo \"devs=[$(ls /dev | grep nvidia | tr '\\n' ' ')]\"; test ! -e /dev/nvidia3"
	gpuDir, gpuSHA := testutil.GitRepo(t, map[string]string{".raibid.yml": "resources: {gpu: 1}\nsteps:\n  - name: train\n    run: " + strconv.Quote(show) + "\n"})
	cpuDir, cpuSHA := testutil.GitRepo(t, map[string]string{".raibid.yml": "steps:\n  - name: lint\n    run: " + strconv.Quote(show) + "\n"})
	r := testutil.StartRedis(t)
	var gpuJobs *jobs.Lifecycle
	e := startOn(t, r, func(o *server.Options) {
		gpuJobs = jobs.New(o.Store, queue.New(r.Client(), queue.Options{Keys: queue.GPUKeysWithPrefix("")}), jobs.Options{})
		o.GPUJobs = gpuJobs
	})
	var ids []string
	for i, c := range []struct{ dir, sha string }{{gpuDir, gpuSHA}, {cpuDir, cpuSHA}} {
		body, _ := json.Marshal(map[string]any{"ref": "refs/heads/main", "after": c.sha,
			"repository": map[string]any{"full_name": "acme/dev" + strconv.Itoa(i), "clone_url": c.dir}})
		code, out := e.webhook(hook{body: body, delivery: "d" + strconv.Itoa(i)})
		if code != 202 {
			t.Fatalf("webhook %d %v", code, out)
		}
		ids = append(ids, out["job_id"].(string))
	}
	ctx, stop := context.WithCancel(context.Background())
	a := agent.New(agent.Options{Name: "a1", Jobs: e.jobs, GPUJobs: gpuJobs, GPUs: agent.NewGPUSlots(1), Store: e.store, DevDir: devDir, Sandbox: sb,
		WorkDir: t.TempDir(), Repos: agent.Repos{AllowLocal: true}, ClaimBlock: 200 * time.Millisecond})
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	testutil.Eventually(t, 30*time.Second, func() bool { return e.job(ids[0]).Status.Final() && e.job(ids[1]).Status.Final() })
	stop()
	<-done
	for i, want := range []string{"devs=[nvidia1 nvidiactl ]", "devs=[]"} {
		j := e.job(ids[i])
		if logs := e.logText(ids[i]); j.Status != ci.StatusSuccess || !strings.Contains(logs, "\n"+want) && !strings.Contains(logs, " "+want) {
			t.Fatalf("job %d %s %q, want %q in:\n%s", i, j.Status, j.Error, want, logs)
		}
	}
}
