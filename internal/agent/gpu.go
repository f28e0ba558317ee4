package agent

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// GPUSlots are a machine's GPUs, shared by its agents: a job that needs n
// GPUs holds n free slots for as long as it runs, and its steps see only
// those (CUDA_VISIBLE_DEVICES). With time-slicing a GPU may count as
// several slots.
type GPUSlots struct {
	mu   sync.Mutex
	busy []bool
}

// NewGPUSlots returns n slots, numbered from 0.
func NewGPUSlots(n int) *GPUSlots { return &GPUSlots{busy: make([]bool, max(n, 0))} }

// Total is the number of slots (0 on a nil or empty pool).
func (g *GPUSlots) Total() int {
	if g == nil {
		return 0
	}
	return len(g.busy)
}

// InUse is the number of slots held.
func (g *GPUSlots) InUse() int {
	if g == nil {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, b := range g.busy {
		if b {
			n++
		}
	}
	return n
}

// Take holds n free slots and returns their numbers, or ok false (holding
// nothing) when fewer are free.
func (g *GPUSlots) Take(n int) (ids []int, ok bool) {
	if g == nil || n <= 0 {
		return nil, n <= 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, b := range g.busy {
		if !b && len(ids) < n {
			ids = append(ids, i)
		}
	}
	if len(ids) < n {
		return nil, false
	}
	for _, i := range ids {
		g.busy[i] = true
	}
	return ids, true
}

// Give frees slots Take returned.
func (g *GPUSlots) Give(ids []int) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, i := range ids {
		g.busy[i] = false
	}
}

// DetectGPUs counts the GPUs `nvidia-smi -L` lists: 0 without nvidia-smi.
func DetectGPUs() int {
	out, err := exec.Command("nvidia-smi", "-L").Output()
	if err != nil {
		return 0
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if strings.HasPrefix(strings.TrimSpace(sc.Text()), "GPU ") {
			n++
		}
	}
	return n
}

// gpuEnv is what a job's steps see of the GPUs: the slots it holds, or none
// (a job that asked for none must not compete with one that did).
func gpuEnv(ids []int) []string {
	list := make([]string, len(ids))
	for i, id := range ids {
		list[i] = strconv.Itoa(id)
	}
	v := strings.Join(list, ",")
	return []string{"CUDA_VISIBLE_DEVICES=" + v, "NVIDIA_VISIBLE_DEVICES=" + firstNonEmpty(v, "none")}
}

// gpuControlDevices are the NVIDIA driver's nodes every GPU user needs,
// beside the per-GPU /dev/nvidiaN.
var gpuControlDevices = []string{"nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset", "nvidia-caps"}

// gpuDevices are the device nodes under devDir a job holding slots may
// use, as sandbox paths (/dev/…) to host paths: slot i is the i-th
// /dev/nvidiaN present (in a GPU pod, the ones the device plugin gave it;
// CUDA numbers visible GPUs in that order too), with the driver's control
// nodes. A job holding no slot gets none: it must not reach a GPU another
// job holds.
func gpuDevices(devDir string, slots []int) map[string]string {
	if len(slots) == 0 {
		return nil
	}
	entries, err := os.ReadDir(devDir)
	if err != nil {
		return nil
	}
	var gpus []int
	for _, e := range entries {
		if n, ok := strings.CutPrefix(e.Name(), "nvidia"); ok {
			if i, err := strconv.Atoi(n); err == nil && e.Type()&os.ModeDevice != 0 {
				gpus = append(gpus, i)
			}
		}
	}
	slices.Sort(gpus)
	out := map[string]string{}
	for _, s := range slots {
		if s < len(gpus) {
			name := "nvidia" + strconv.Itoa(gpus[s])
			out["/dev/"+name] = filepath.Join(devDir, name)
		}
	}
	for _, name := range gpuControlDevices {
		if _, err := os.Lstat(filepath.Join(devDir, name)); err == nil {
			out["/dev/"+name] = filepath.Join(devDir, name)
		}
	}
	return out
}
