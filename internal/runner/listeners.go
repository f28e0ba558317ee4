package runner

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The kernel's tables of TCP sockets (this network namespace: the agent's,
// which its sandboxed steps and services share).
var tcpTables = []string{"/proc/net/tcp", "/proc/net/tcp6"}

// tcpListen is the state of a listening socket in those tables.
const tcpListen = "0A"

// listenInodes are the inodes of the sockets listening on port, or nil when
// the tables cannot be read.
func listenInodes(port int) (inodes map[string]bool, readable bool) {
	inodes = map[string]bool{}
	want := fmt.Sprintf(":%04X", port)
	for _, table := range tcpTables {
		f, err := os.Open(table)
		if err != nil {
			continue
		}
		readable = true
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fields := strings.Fields(sc.Text())
			if len(fields) > 9 && strings.HasSuffix(fields[1], want) && fields[3] == tcpListen {
				inodes[fields[9]] = true
			}
		}
		f.Close()
	}
	return inodes, readable
}

// listening reports whether any process listens on port.
func listening(port int) bool {
	inodes, _ := listenInodes(port)
	return len(inodes) > 0
}

// listensWithin reports whether the socket listening on port belongs to
// the process root or one of its descendants: a service is ready when it
// listens itself, not when another job's listener answers on its port.
// Where the tables cannot be read (not Linux), any listener counts.
func listensWithin(port, root int) bool {
	inodes, readable := listenInodes(port)
	if !readable {
		return true
	}
	if len(inodes) == 0 {
		return false
	}
	seen := false // any of their descriptors could be read
	for _, pid := range descendants(root) {
		fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
		seen = seen || len(fds) > 0
		for _, fd := range fds {
			link, err := os.Readlink(fd)
			if err == nil && strings.HasPrefix(link, "socket:[") && inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] {
				return true
			}
		}
	}
	// Processes whose descriptors this agent may not read (another user's,
	// without root) cannot be told apart: the listener counts.
	return !seen
}

// descendants is root and every process below it, from /proc.
func descendants(root int) []int {
	children := map[int][]int{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, st := range stats {
		b, err := os.ReadFile(st)
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		pid, err1 := strconv.Atoi(filepath.Base(filepath.Dir(st)))
		ppid, err2 := strconv.Atoi(f[1])
		if err1 == nil && err2 == nil {
			children[ppid] = append(children[ppid], pid)
		}
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}
