package testutil

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/jobs"
	"github.com/raibid-labs/raibid-ci/internal/queue"
	"github.com/raibid-labs/raibid-ci/internal/store"
)

// Jobs is the store, the queue and the job lifecycle on one Redis, as the
// server and agents build them (default key names, MaxDeliveries 3). Store
// reads and lifecycle steps are both its methods.
type Jobs struct {
	*store.Store
	Queue *queue.Queue
	*jobs.Lifecycle
}

// NewJobs builds them on rdb with the given lease (0: the default).
func NewJobs(rdb redis.UniversalClient, lease time.Duration) *Jobs {
	return NewJobsWith(rdb, store.Options{}, queue.Options{Lease: lease}, jobs.Options{MaxDeliveries: 3})
}

// NewJobsWith builds them with the given options.
func NewJobsWith(rdb redis.UniversalClient, so store.Options, qo queue.Options, jo jobs.Options) *Jobs {
	st, q := store.New(rdb, so), queue.New(rdb, qo)
	return &Jobs{Store: st, Queue: q, Lifecycle: jobs.New(st, q, jo)}
}

// Push is a push job for repo and branch, as a webhook would queue it.
func Push(repo, branch string) *ci.Job {
	return &ci.Job{Repo: repo, CloneURL: "http://gitea.local/" + repo + ".git", Branch: branch,
		Commit: "0123456789abcdef0123456789abcdef01234567", Author: "ann", Message: "fix", Trigger: ci.TriggerPush}
}

// MustSubmit queues j and returns its id, failing the test on an error.
func (j *Jobs) MustSubmit(t testing.TB, job *ci.Job) string {
	t.Helper()
	id, _, err := j.Submit(context.Background(), job, "")
	if err != nil {
		t.Fatal(err)
	}
	return id
}
