package localredis

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotRunning means no local Redis answers for a data directory.
var ErrNotRunning = errors.New("localredis: not running")

// Running connects to the local Redis of dir if one answers: the port of
// its last start (redis.conf) and its password file.
func Running(ctx context.Context, dir string) (redis.UniversalClient, error) {
	conf, err := os.Open(filepath.Join(dir, "redis.conf"))
	if err != nil {
		return nil, ErrNotRunning
	}
	defer conf.Close()
	port := 0
	sc := bufio.NewScanner(conf)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "port" {
			port, _ = strconv.Atoi(f[1])
		}
	}
	pw, err := os.ReadFile(filepath.Join(dir, "password"))
	if err != nil || port == 0 {
		return nil, ErrNotRunning
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port), Password: strings.TrimSpace(string(pw)),
		DialTimeout: time.Second, MaxRetries: -1})
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		return nil, ErrNotRunning
	}
	return rdb, nil
}

// Checkpoint rewrites the AOF of a running local Redis (BGREWRITEAOF) and
// waits until the rewrite is done, so the files under dir are a compact,
// complete copy that a backup can take while raibid runs.
func Checkpoint(ctx context.Context, rdb redis.UniversalClient) error {
	if err := rdb.BgRewriteAOF(ctx).Err(); err != nil && !strings.Contains(err.Error(), "already in progress") {
		return fmt.Errorf("redis: rewrite the AOF: %w", err)
	}
	for {
		info, err := rdb.Info(ctx, "persistence").Result()
		if err != nil {
			return fmt.Errorf("redis: %w", err)
		}
		if strings.Contains(info, "aof_rewrite_in_progress:0") && strings.Contains(info, "aof_rewrite_scheduled:0") {
			if strings.Contains(info, "aof_last_bgrewrite_status:ok") {
				return nil
			}
			return errors.New("redis: the AOF rewrite failed (see redis.log in the data dir)")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
