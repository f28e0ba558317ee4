package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/raibid-labs/raibid-ci/internal/jobs"
	"github.com/raibid-labs/raibid-ci/internal/queue"
	"github.com/raibid-labs/raibid-ci/internal/statuses"
	"github.com/raibid-labs/raibid-ci/internal/store"
)

// secret reads a secret from RAIBID_<NAME> or from the file named by
// --<name>-file. Secrets are never flags: flags show in `ps`.
func secret(cmd *cobra.Command, name string) (string, error) {
	if v := os.Getenv(EnvName(name)); v != "" {
		return v, nil
	}
	path, err := cmd.Flags().GetString(name + "-file")
	if err != nil {
		return "", fmt.Errorf("flag --%s-file: %w", name, err)
	}
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

// addJobsFlags declares JobsConfig's flags; the server and the agents both
// take them (give both the same values). lease says what the lease is to
// the command's user.
func addJobsFlags(f *pflag.FlagSet, lease string) {
	f.String("key-prefix", "", "prefix of every Redis key")
	f.Duration("lease", queue.DefaultLease, lease)
	f.Int("max-deliveries", jobs.DefaultMaxDeliveries, "deliveries of one job before it becomes a dead letter")
	f.Int64("dead-letters-kept", jobs.DefaultDeadLetterMax, "dead letters kept in ci-jobs:dead (about; older ones are trimmed)")
	f.Duration("job-retention", store.DefaultFinishedTTL, "how long a finished job's summary is kept (commit status links point at it)")
	f.Duration("log-retention", store.DefaultLogTTL, "how long a finished job's log is kept (at most --job-retention)")
	f.Duration("status-retry-for", statuses.DefaultMaxAge, "how long a commit status Gitea did not take is tried again before it is dropped")
}

// Secret is a secret value loaded into a configuration: printing it (%v,
// %s, %+v, %#v) shows only whether it is set, so a logged config never
// leaks it. Reveal gives the value to what needs it.
type Secret string

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[set]"
}

// GoString keeps %#v from printing the value either.
func (s Secret) GoString() string { return s.String() }

// Reveal is the value.
func (s Secret) Reveal() string { return string(s) }

// loadSecret reads a secret from RAIBID_<NAME> or the file named by
// --<name>-file (see secret).
func loadSecret(cmd *cobra.Command, name string) (Secret, error) {
	v, err := secret(cmd, name)
	return Secret(v), err
}

// JobsConfig is what the server and the agents share about jobs in Redis:
// key names, leases, deliveries, retention. Give both the same values.
type JobsConfig struct {
	KeyPrefix       string
	Lease           time.Duration
	MaxDeliveries   int
	DeadLettersKept int64
	JobRetention    time.Duration
	LogRetention    time.Duration
	// StatusRetryFor bounds the status outbox's retries (internal/statuses).
	StatusRetryFor time.Duration
}

// DefaultJobsConfig is JobsConfig's defaults (the flags' defaults).
func DefaultJobsConfig() JobsConfig {
	return JobsConfig{Lease: queue.DefaultLease, MaxDeliveries: jobs.DefaultMaxDeliveries,
		DeadLettersKept: jobs.DefaultDeadLetterMax, JobRetention: store.DefaultFinishedTTL, LogRetention: store.DefaultLogTTL,
		StatusRetryFor: statuses.DefaultMaxAge}
}

// Validate says what is wrong, naming the flag.
func (c JobsConfig) Validate() error {
	switch {
	case c.Lease < time.Second:
		return fmt.Errorf("--lease %s: must be at least 1s", c.Lease)
	case c.MaxDeliveries < 1:
		return fmt.Errorf("--max-deliveries %d: must be at least 1", c.MaxDeliveries)
	case c.DeadLettersKept < 1:
		return fmt.Errorf("--dead-letters-kept %d: must be at least 1", c.DeadLettersKept)
	case c.JobRetention <= 0:
		return fmt.Errorf("--job-retention %s: must be positive", c.JobRetention)
	case c.LogRetention <= 0:
		return fmt.Errorf("--log-retention %s: must be positive", c.LogRetention)
	case c.StatusRetryFor <= 0:
		return fmt.Errorf("--status-retry-for %s: must be positive", c.StatusRetryFor)
	}
	return nil
}

// jobsConfigFromFlags reads the flags addJobsFlags declared.
func jobsConfigFromFlags(r *flagReader) JobsConfig {
	c, f := DefaultJobsConfig(), r.f
	read(r, "key-prefix", &c.KeyPrefix, f.GetString)
	read(r, "lease", &c.Lease, f.GetDuration)
	read(r, "max-deliveries", &c.MaxDeliveries, f.GetInt)
	read(r, "dead-letters-kept", &c.DeadLettersKept, f.GetInt64)
	read(r, "job-retention", &c.JobRetention, f.GetDuration)
	read(r, "log-retention", &c.LogRetention, f.GetDuration)
	read(r, "status-retry-for", &c.StatusRetryFor, f.GetDuration)
	return c
}

// open builds the store, the queue and the job lifecycle on rdb.
func (c JobsConfig) open(rdb redis.UniversalClient) (*store.Store, *queue.Queue, *jobs.Lifecycle) {
	st := store.New(rdb, store.Options{Prefix: c.KeyPrefix, FinishedTTL: c.JobRetention, LogTTL: c.LogRetention})
	q := queue.New(rdb, queue.Options{Keys: queue.KeysWithPrefix(c.KeyPrefix), Lease: c.Lease})
	return st, q, jobs.New(st, q, c.lifecycleOptions())
}

// openStatuses is the commit status outbox, posting with post (the server
// and every agent with a Gitea token run its poster).
func (c JobsConfig) openStatuses(rdb redis.UniversalClient, post statuses.Poster, log *slog.Logger) *statuses.Outbox {
	return statuses.New(rdb, post, statuses.Options{Prefix: c.KeyPrefix, MaxAge: c.StatusRetryFor, Log: log})
}

// openGPU is the lifecycle of jobs that need a GPU: the same store, the
// GPU stream.
func (c JobsConfig) openGPU(st *store.Store, rdb redis.UniversalClient) *jobs.Lifecycle {
	q := queue.New(rdb, queue.Options{Keys: queue.GPUKeysWithPrefix(c.KeyPrefix), Lease: c.Lease})
	return jobs.New(st, q, c.lifecycleOptions())
}

func (c JobsConfig) lifecycleOptions() jobs.Options {
	return jobs.Options{MaxDeliveries: c.MaxDeliveries, DeadLetterMax: c.DeadLettersKept}
}
