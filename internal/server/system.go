package server

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"

	"github.com/raibid-labs/raibid-ci/internal/api"
)

// hostSampler reads /proc; CPU use is measured between two calls (the first
// call measures since boot).
type hostSampler struct {
	mu         sync.Mutex
	idle, busy uint64
}

func (h *hostSampler) sample() api.Host {
	st := api.Host{CPUs: runtime.NumCPU()}
	if idle, busy, err := readCPU(); err == nil {
		h.mu.Lock()
		di, db := idle-h.idle, busy-h.busy
		h.idle, h.busy = idle, busy
		h.mu.Unlock()
		if di+db > 0 {
			st.CPUPercent = float64(db) * 100 / float64(di+db)
		}
	}
	st.MemTotal, st.MemUsed = readMem()
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Sscan(string(b), &st.Load1)
	}
	return st
}

func readCPU() (idle, busy uint64, err error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, 0, fmt.Errorf("empty /proc/stat")
	}
	fields := strings.Fields(sc.Text())
	for i, v := range fields[1:] {
		var n uint64
		fmt.Sscan(v, &n)
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		} else if i < 8 { // user nice system irq softirq steal
			busy += n
		}
	}
	return idle, busy, nil
}

func readMem() (total, used uint64) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	var avail uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var key string
		var kb uint64
		fmt.Sscan(sc.Text(), &key, &kb)
		switch key {
		case "MemTotal:":
			total = kb * 1024
		case "MemAvailable:":
			avail = kb * 1024
		}
	}
	return total, total - avail
}

func (s *Server) handleSystem(w http.ResponseWriter, r *http.Request) {
	sys := api.System{Version: s.opts.Version, StartedAt: s.started, Host: s.opts.HostStats()}
	for _, f := range s.opts.Features {
		if figures, ok := f.(systemFigures); ok {
			figures.addSystemFigures(&sys)
		}
	}
	writeJSON(w, http.StatusOK, sys)
}
