// Package launcher turns any binary that links it into a sandbox's step
// launcher: started with Arg as its only argument, it waits for a step's
// command line and environment on descriptor SpecFD, then becomes that
// step (execve). internal/sandbox starts it, as the build user, inside a
// sandbox set up ahead of the step, so that starting the step costs one
// exec and no namespace or mount.
//
// It runs from a package initializer, before the rest of the binary's
// packages are initialized: it imports nothing but syscall, so Go
// initializes it among the first, and a launcher costs the Go runtime's
// start and not the agent's (Kubernetes' client alone initializes for
// ~15 ms).
package launcher

import "syscall"

// Arg, as a binary's only argument, starts it as a launcher.
const Arg = "--raibid-sandbox-launcher"

// The launcher's inherited descriptors: the executable it was started
// from (ExeFD), the pipe its step comes through (SpecFD) and the pipe it
// says it is waiting on (ReadyFD).
const (
	ExeFD   = 3
	SpecFD  = 4
	ReadyFD = 5
)

func init() {
	// os.Args belongs to package os, which this one does not import (it
	// would initialize later): the arguments are read from
	// /proc/self/cmdline.
	if isLauncher() {
		syscall.Exit(launch())
	}
}

// Encode is the form a step takes through the pipe: the count of its
// arguments, its arguments and its environment, each ended by a NUL.
func Encode(argv, env []string) []byte {
	var b []byte
	b = append(b, itoa(len(argv))...)
	b = append(b, 0)
	for _, s := range append(append([]string(nil), argv...), env...) {
		b = append(b, s...)
		b = append(b, 0)
	}
	return b
}

// decode is Encode's inverse; ok is false for anything else.
func decode(b []byte) (argv, env []string, ok bool) {
	var fields []string
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != 0 {
			i++
		}
		if i == len(b) {
			return nil, nil, false // not ended by a NUL
		}
		fields = append(fields, string(b[:i]))
		b = b[i+1:]
	}
	if len(fields) == 0 {
		return nil, nil, false
	}
	n := 0
	for _, c := range fields[0] {
		if c < '0' || c > '9' || n > 1<<20 {
			return nil, nil, false
		}
		n = n*10 + int(c-'0')
	}
	if fields[0] == "" || n == 0 || n > len(fields)-1 {
		return nil, nil, false
	}
	return fields[1 : 1+n], fields[1+n:], true
}

// isLauncher reads this process's command line: exactly the binary and Arg.
func isLauncher() bool {
	fd, err := syscall.Open("/proc/self/cmdline", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer syscall.Close(fd)
	buf := make([]byte, 4096)
	n, _ := syscall.Read(fd, buf)
	if n <= 0 {
		return false
	}
	args := 0
	last := ""
	start := 0
	for i := 0; i < n; i++ {
		if buf[i] == 0 {
			args++
			last = string(buf[start:i])
			start = i + 1
		}
	}
	return args == 2 && last == Arg
}

// launch waits for the step, then becomes it. A launcher thrown away gets
// nothing and exits quietly.
func launch() int {
	syscall.Write(ReadyFD, []byte{1})
	syscall.Close(ReadyFD)
	var spec []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := syscall.Read(SpecFD, buf)
		if n > 0 {
			spec = append(spec, buf[:n]...)
		}
		if err == syscall.EINTR {
			continue
		}
		if n <= 0 || err != nil {
			break
		}
	}
	if len(spec) == 0 {
		return 0
	}
	argv, env, ok := decode(spec)
	if !ok {
		fail("unreadable step", nil)
		return 127
	}
	// The step inherits its output and nothing else of the launcher's.
	const closeRangeCloexec = 4
	if _, _, errno := syscall.Syscall(sysCloseRange, ExeFD, ^uintptr(0), closeRangeCloexec); errno != 0 {
		fail("close descriptors", errno)
		return 127
	}
	err := syscall.Exec(argv[0], argv, env)
	fail("run "+argv[0], err)
	return 127
}

// sysCloseRange is close_range(2)'s number, the same on every Linux
// architecture since 5.9.
const sysCloseRange = 436

func fail(what string, err error) {
	msg := "raibid sandbox: " + what
	if err != nil {
		msg += ": " + err.Error()
	}
	syscall.Write(2, []byte(msg+"\n"))
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var d []byte
	for ; n > 0; n /= 10 {
		d = append([]byte{byte('0' + n%10)}, d...)
	}
	return string(d)
}
