// Package testutil starts the real services tests need (a redis-server on a
// random loopback port) and builds fixtures. Only tests import it.
package testutil

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a real redis-server child process owned by one test.
type Redis struct {
	t    testing.TB
	Addr string
	Dir  string
	// Args are extra redis-server arguments, kept for Restart.
	Args []string
	cmd  *exec.Cmd
	port int
}

// RedisOption adds redis-server configuration, e.g. "--appendonly", "yes".
type RedisOption []string

// StartRedis starts redis-server on a free loopback port with its data in a
// temporary directory and stops it when the test ends. It fails the test when
// redis-server is not installed: .ci/run installs it, and a queue test that
// silently skipped would hide a broken queue.
func StartRedis(t testing.TB, extra ...string) *Redis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server not on PATH (apt-get install -y redis-server): %v", err)
	}
	r := &Redis{t: t, Dir: t.TempDir(), Args: extra}
	var lastErr error
	for range 5 {
		r.port = FreePort(t)
		if lastErr = r.start(); lastErr == nil {
			t.Cleanup(r.Stop)
			return r
		}
	}
	t.Fatalf("start redis-server: %v", lastErr)
	return nil
}

// FreePort is a loopback TCP port nothing listened on a moment ago.
func FreePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (r *Redis) start() error {
	args := []string{
		"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--dir", r.Dir, "--save", "", "--daemonize", "no",
		"--logfile", filepath.Join(r.Dir, "redis.log"),
	}
	args = append(args, r.Args...)
	cmd := exec.Command("redis-server", args...)
	// Die with the test binary so no redis-server outlives a crashed test run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	r.cmd = cmd
	r.Addr = fmt.Sprintf("127.0.0.1:%d", r.port)
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("redis-server exited: %s", r.logTail())
		default:
		}
		c := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1})
		err := c.Ping(context.Background()).Err()
		c.Close()
		if err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	return fmt.Errorf("redis-server did not answer PING: %s", r.logTail())
}

func (r *Redis) logTail() string {
	f, err := os.Open(filepath.Join(r.Dir, "redis.log"))
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var last []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		last = append(last, s.Text())
		if len(last) > 5 {
			last = last[1:]
		}
	}
	return strings.Join(last, " | ")
}

// URL is the redis:// URL of this server.
func (r *Redis) URL() string { return "redis://" + r.Addr + "/0" }

// Client returns a go-redis client closed at the end of the test.
func (r *Redis) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	r.t.Cleanup(func() { c.Close() })
	return c
}

// Kill sends SIGKILL, as a crash would, and waits until the port is closed.
func (r *Redis) Kill() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	for range 200 {
		c, err := net.DialTimeout("tcp", r.Addr, 50*time.Millisecond)
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(10 * time.Millisecond)
	}
}

// Restart starts redis-server again on the same port and directory.
func (r *Redis) Restart() {
	r.t.Helper()
	var err error
	for range 50 {
		if err = r.start(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.t.Fatalf("restart redis-server: %v", err)
}

// Stop ends the server.
func (r *Redis) Stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() {
			for range 100 {
				if err := r.cmd.Process.Signal(syscall.Signal(0)); err != nil {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			close(done)
		}()
		<-done
		_ = r.cmd.Process.Kill()
	}
}

// Freeze stops the redis-server process (SIGSTOP) for d, then lets it go on
// (SIGCONT): clients see a server that accepted their command and then said
// nothing — the case where a client retries a write that did happen.
func (r *Redis) Freeze(d time.Duration) {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGSTOP)
	time.Sleep(d)
	_ = r.cmd.Process.Signal(syscall.SIGCONT)
}
