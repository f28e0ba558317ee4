package runner

import (
	"net"
	"os"
	"os/exec"
	"testing"
)

func TestListensWithinTellsWhoseListenerItIs(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	other := exec.Command("sleep", "5")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer other.Process.Kill()
	if !listensWithin(port, os.Getpid()) {
		t.Error("the test's own listener is not its own")
	}
	if listensWithin(port, other.Process.Pid) {
		t.Error("another process's listener counted as a sleep's")
	}
}
