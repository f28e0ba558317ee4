package cli

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/raibid-labs/raibid-ci/internal/jobs"
	"github.com/raibid-labs/raibid-ci/internal/queue"
	"github.com/raibid-labs/raibid-ci/internal/store"
)

// secret reads a secret from RAIBID_<NAME> or from the file named by
// --<name>-file. Secrets are never flags: flags show in `ps`.
func secret(cmd *cobra.Command, name string) (string, error) {
	if v := os.Getenv(EnvName(name)); v != "" {
		return v, nil
	}
	path, _ := cmd.Flags().GetString(name + "-file")
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--%s-file: %w", name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// addSecretFlags declares --<name>-file for each secret.
func addSecretFlags(f *pflag.FlagSet, names ...string) {
	for _, n := range names {
		f.String(n+"-file", "", "file holding the "+strings.ReplaceAll(n, "-", " ")+" (or set "+EnvName(n)+")")
	}
}

// connectRedis parses a redis:// URL and checks that the server answers.
func connectRedis(ctx context.Context, rawURL string, poolSize int) (*redis.Client, error) {
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		// url.Error quotes the whole URL, password and all.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, &UsageError{fmt.Errorf("--redis-url %s: %s", redactURL(rawURL), strings.ReplaceAll(err.Error(), rawURL, redactURL(rawURL)))}
	}
	if poolSize > 0 {
		opt.PoolSize = poolSize
	}
	rdb := redis.NewClient(opt)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("redis at %s does not answer: %w", redactURL(rawURL), err)
	}
	return rdb, nil
}

// redactURL hides a password in a URL before it reaches a log or an error.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

func init() {
	// go-redis logs pool errors with its own logger to stderr; silence it so
	// our structured logs are the only output.
	redis.SetLogger(quietLogger{})
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// addRetentionFlags declares how long finished jobs are kept; the server and
// the agents both end jobs, so both take them (give both the same values).
func addRetentionFlags(f *pflag.FlagSet) {
	f.Int64("dead-letters-kept", jobs.DefaultDeadLetterMax, "dead letters kept in ci-jobs:dead (about; older ones are trimmed)")
	f.Duration("job-retention", store.DefaultFinishedTTL, "how long a finished job's summary is kept (commit status links point at it)")
	f.Duration("log-retention", store.DefaultLogTTL, "how long a finished job's log is kept (at most --job-retention)")
}

// lifecycle builds the store, the queue and the job lifecycle on rdb from
// the flags the server and the agents share (key prefix, lease, deliveries,
// retention).
func lifecycle(cmd *cobra.Command, rdb redis.UniversalClient) (*store.Store, *queue.Queue, *jobs.Lifecycle) {
	f := cmd.Flags()
	prefix, _ := f.GetString("key-prefix")
	lease, _ := f.GetDuration("lease")
	maxDeliveries, _ := f.GetInt("max-deliveries")
	deadMax, _ := f.GetInt64("dead-letters-kept")
	o := store.Options{Prefix: prefix}
	if f.Lookup("job-retention") != nil {
		o.FinishedTTL, _ = f.GetDuration("job-retention")
		o.LogTTL, _ = f.GetDuration("log-retention")
	}
	st := store.New(rdb, o)
	q := queue.New(rdb, queue.Options{Keys: queue.KeysWithPrefix(prefix), Lease: lease})
	return st, q, jobs.New(st, q, jobs.Options{MaxDeliveries: maxDeliveries, DeadLetterMax: deadMax})
}
