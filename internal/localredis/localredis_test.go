package localredis_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/jobs"
	"github.com/raibid-labs/raibid-ci/internal/localredis"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

func client(t *testing.T, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// The fallback must run every script and stream command the queue and store
// use, or `raibid up` without redis-server would fail at the first push.
func TestInProcessFallbackRunsQueueAndStore(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no redis-server to be found
	inst, err := localredisStart(t)
	if err != nil {
		t.Fatal(err)
	}
	if inst.Durable {
		t.Fatal("in-process fallback claims to be durable")
	}
	rdb := client(t, inst.URL)
	jb := testutil.NewJobs(rdb, 0)
	ctx := context.Background()
	id, created, err := jb.Submit(ctx, &ci.Job{Repo: "a/b", CloneURL: "/src", Branch: "main"}, "d1")
	if err != nil || !created {
		t.Fatalf("submit: %v", err)
	}
	if again, created, _ := jb.Submit(ctx, &ci.Job{Repo: "a/b", CloneURL: "/src", Branch: "main"}, "d1"); created || again != id {
		t.Fatalf("dedupe failed on the fallback")
	}
	run, err := jb.Claim(ctx, "a1", 10*time.Millisecond, nil)
	if err != nil || run == nil || run.Job.ID != id || run.Job.Status != ci.StatusRunning {
		t.Fatalf("claim: %+v %v", run, err)
	}
	if err := run.Heartbeat(ctx); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	if st, err := jb.Queue.Stats(ctx); err != nil || st.Pending != 1 {
		t.Fatalf("stats %+v %v", st, err)
	}
	if _, err := run.Finish(ctx, jobs.Verdict{Status: ci.StatusSuccess}); err != nil {
		t.Fatalf("finish: %v", err)
	}
}

func localredisStart(t *testing.T) (*localredis.Instance, error) {
	t.Helper()
	inst, err := localredis.Start(context.Background(), t.TempDir(), slog.New(slog.DiscardHandler))
	if err == nil {
		t.Cleanup(inst.Stop)
	}
	return inst, err
}

// A supervised redis-server that is killed comes back on the same port with
// its data, because the AOF is fsynced on every write.
func TestSupervisedRedisRestartsWithData(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server not installed: %v", err)
	}
	inst, err := localredisStart(t)
	if err != nil {
		t.Fatal(err)
	}
	if !inst.Durable {
		t.Fatal("redis-server on PATH but the fallback was used")
	}
	rdb := client(t, inst.URL)
	ctx := context.Background()
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	var serverPID int
	info, _ := rdb.InfoMap(ctx, "server").Result()
	if _, err := fmt.Sscan(info["Server"]["process_id"], &serverPID); err != nil {
		t.Fatalf("process_id: %v", err)
	}
	if err := syscall.Kill(serverPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var got string
	testutil.Eventually(t, 10*time.Second, func() bool {
		got, err = rdb.Get(ctx, "k").Result()
		return err == nil
	})
	if got != "v" {
		t.Fatalf("after kill -9 and restart: %q, %v", got, err)
	}
}

// Builds run on this machine and reach loopback: the local Redis must refuse
// a client without the password, and the password must never be in a
// process's arguments (ps shows them to every user).
func TestLocalRedisNeedsPasswordKeptOutOfArguments(t *testing.T) {
	for _, name := range []string{"supervised", "in-process"} {
		t.Run(name, func(t *testing.T) {
			if name == "in-process" {
				t.Setenv("PATH", t.TempDir())
			}
			inst, err := localredisStart(t)
			if err != nil {
				t.Fatal(err)
			}
			opt, err := redis.ParseURL(inst.URL)
			if err != nil || len(opt.Password) < 32 {
				t.Fatalf("URL without a strong password: %v", err)
			}
			ctx := context.Background()
			anon := redis.NewClient(&redis.Options{Addr: opt.Addr, MaxRetries: -1})
			defer anon.Close()
			if err := anon.Set(ctx, "pwned", "1", 0).Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
				t.Fatalf("SET without password: %v, want NOAUTH", err)
			}
			if err := client(t, inst.URL).Set(ctx, "k", "v", 0).Err(); err != nil {
				t.Fatalf("SET with password: %v", err)
			}
			if name == "in-process" {
				return
			}
			info, _ := client(t, inst.URL).InfoMap(ctx, "server").Result()
			var pid int
			fmt.Sscan(info["Server"]["process_id"], &pid)
			cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(cmdline), opt.Password) {
				t.Fatalf("password in redis-server's arguments: %q", cmdline)
			}
		})
	}
}
