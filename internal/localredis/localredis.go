// Package localredis gives `raibid up` a Redis when none is configured: a
// redis-server from PATH run as a supervised child with its AOF in the data
// directory, or, when there is none, an in-process Redis-compatible server
// that keeps nothing across restarts. Production deployments never use it.
package localredis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Instance is a running local Redis.
type Instance struct {
	// URL is the redis:// address to connect to.
	URL string
	// Durable is false for the in-process fallback.
	Durable bool
	stop    func()
}

// Stop ends the instance and waits for it.
func (i *Instance) Stop() { i.stop() }

// Start runs redis-server from PATH with its data under dir, or falls back to
// the in-process server when there is none. The child is restarted when it
// dies and stopped when ctx ends or Stop is called.
func Start(ctx context.Context, dir string, log *slog.Logger) (*Instance, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return startInProcess(log)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("redis data dir: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	pw, err := password(dir)
	if err != nil {
		return nil, err
	}
	s := &supervisor{bin: bin, dir: dir, port: port, password: pw, log: log}
	if err := s.startOnce(); err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); s.supervise(sctx) }()
	var once sync.Once
	return &Instance{
		URL:     fmt.Sprintf("redis://:%s@127.0.0.1:%d/0", pw, port),
		Durable: true,
		stop:    func() { once.Do(func() { cancel(); <-done }) },
	}, nil
}

func startInProcess(log *slog.Logger) (*Instance, error) {
	m := miniredis.NewMiniRedis()
	pw := randomHex(24)
	m.RequireAuth(pw)
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("in-process redis: %w", err)
	}
	log.Warn("redis-server not found on PATH: using an in-process Redis; NOTHING SURVIVES A RESTART. " +
		"Install redis-server (apt-get install redis-server) or pass --redis-url.")
	return &Instance{URL: "redis://:" + pw + "@" + m.Addr() + "/0", stop: m.Close}, nil
}

// password is the local Redis's password, generated once into dir (0600,
// inside the 0700 data dir): builds run on this machine and reach loopback,
// so a Redis without one would let any push rewrite every job and log.
func password(dir string) (string, error) {
	path := filepath.Join(dir, "password")
	b, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("redis password: %w", err)
	}
	pw := randomHex(24)
	if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("redis password: %w", err)
	}
	return pw, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("localredis: random source failed: " + err.Error())
	}
	return hex.EncodeToString(b)
}

// writeConfig writes redis-server's configuration, password included, to a
// 0600 file: a password in redis-server's arguments would show in ps.
func (s *supervisor) writeConfig() (string, error) {
	path := filepath.Join(s.dir, "redis.conf")
	conf := fmt.Sprintf(`port %d
bind 127.0.0.1
protected-mode yes
dir %q
appendonly yes
appendfsync always
maxmemory-policy noeviction
save ""
daemonize no
logfile %q
requirepass %s
# A finished job's hash holds its steps as JSON (a few hundred bytes): keep
# such hashes in the compact listpack encoding, a third of a hashtable's size.
hash-max-listpack-value 1024
# Job indexes are pages of at most 128 members (internal/store index.go),
# each a listpack up to this many: ~24 B a member instead of ~130.
zset-max-listpack-entries 128
`, s.port, s.dir, filepath.Join(s.dir, "redis.log"), s.password)
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return "", fmt.Errorf("redis config: %w", err)
	}
	return path, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

type supervisor struct {
	bin      string
	dir      string
	port     int
	password string
	log      *slog.Logger
	cmd      *exec.Cmd
	exit     chan error
}

// startOnce starts redis-server and waits until it answers PING.
func (s *supervisor) startOnce() error {
	conf, err := s.writeConfig()
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, conf)
	// Die with raibid even when raibid itself is killed with SIGKILL, and
	// keep terminal signals (Ctrl+C) for raibid, which stops it in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	s.cmd = cmd
	s.exit = make(chan error, 1)
	go func() { s.exit <- cmd.Wait() }()
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", s.port), Password: s.password, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-s.exit:
			s.exit <- err
			return fmt.Errorf("redis-server exited at start (%v); see %s", err, filepath.Join(s.dir, "redis.log"))
		default:
		}
		if c.Ping(context.Background()).Err() == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	return errors.New("redis-server did not answer within 15s")
}

// supervise restarts redis-server when it dies, with backoff, until ctx ends;
// then it stops it with SIGTERM (Redis flushes its AOF) and SIGKILL after 5 s.
func (s *supervisor) supervise(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.exit:
			case <-time.After(5 * time.Second):
				_ = s.cmd.Process.Kill()
				<-s.exit
			}
			return
		case err := <-s.exit:
			s.log.Error("redis-server exited; restarting", "err", err, "backoff", backoff)
			for {
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(backoff*2, 10*time.Second)
				if err := s.startOnce(); err != nil {
					s.log.Error("restart redis-server", "err", err)
					continue
				}
				backoff = 100 * time.Millisecond
				break
			}
		}
	}
}
