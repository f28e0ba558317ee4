package store

import (
	"context"

	"github.com/redis/go-redis/v9"

	"github.com/raibid-labs/raibid-ci/internal/ci"
)

// Filter selects jobs for List.
type Filter struct {
	Status ci.Status
	Repo   string
	Branch string
	// Group selects the jobs of one matrix.
	Group string
	// Event selects the jobs of one event (push, pull_request, tag, …).
	Event string
	// Limit is the page size (default 50, at most 500).
	Limit int
	// Cursor is the NextCursor of the previous page.
	Cursor string
}

// maxScan bounds the index entries one List call reads, so a filter that
// matches nothing cannot make one request read every job.
const maxScan = 5000

// List returns jobs newest first, and the cursor of the next page ("" when
// there is none). An index is ordered by id (see index.go), and ids start
// with their creation time: walking it down gives the newest first, and the
// cursor is simply the last id returned.
func (s *Store) List(ctx context.Context, f Filter) ([]*ci.Job, string, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	if f.Limit > 500 {
		f.Limit = 500
	}
	maxBound := "+"
	if f.Cursor != "" {
		maxBound = "(" + f.Cursor
	}
	batch := int64(f.Limit)
	if f.Status != "" || f.Repo != "" || f.Branch != "" || f.Group != "" || f.Event != "" {
		batch = 200
	}
	// Walk the index of the most selective filter (matrix group, an event
	// other than push, status, repository, then branch): each holds only its
	// jobs, so a page costs about the same whatever the history; the other
	// filters are checked on the job.
	index := s.keys.Index()
	switch {
	case f.Group != "":
		index = s.keys.Group(f.Group)
	case f.Event != "" && f.Event != ci.EventPush:
		index = s.keys.Event(f.Event)
	case f.Status != "":
		index = s.keys.Status(f.Status)
	case f.Repo != "":
		index = s.keys.Repo(f.Repo)
	case f.Branch != "":
		index = s.keys.Branch(f.Branch)
	}
	jobs := make([]*ci.Job, 0, f.Limit)
	scanned := 0
	for scanned < maxScan {
		ids, err := s.indexNewest(ctx, index, maxBound, int(batch))
		if err != nil {
			return nil, "", Wrap("list jobs", err)
		}
		if len(ids) == 0 {
			return jobs, "", nil
		}
		p := s.rdb.Pipeline()
		cmds := make([]*redis.MapStringStringCmd, len(ids))
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, s.keys.Job(id))
		}
		if _, err := p.Exec(ctx); err != nil {
			return nil, "", Wrap("list jobs", err)
		}
		var expired []string
		for i, c := range cmds {
			scanned++
			maxBound = "(" + ids[i]
			h := c.Val()
			if len(h) == 0 {
				expired = append(expired, ids[i])
				continue
			}
			j := JobFromHash(ids[i], h)
			if (f.Status != "" && j.Status != f.Status) || (f.Repo != "" && j.Repo != f.Repo) ||
				(f.Branch != "" && j.Branch != f.Branch) || (f.Group != "" && j.Group != f.Group) || (f.Event != "" && j.Event != f.Event) {
				continue
			}
			jobs = append(jobs, j)
			if len(jobs) == f.Limit {
				s.dropExpired(ctx, index, expired)
				return jobs, ids[i], nil
			}
		}
		s.dropExpired(ctx, index, expired)
		if int64(len(ids)) < batch {
			return jobs, "", nil
		}
	}
	// Scanned enough: hand back what we have and where to go on.
	return jobs, maxBound[1:], nil
}

// dropExpired removes index entries whose job hash is gone (Expire did not
// run, and the safety TTL took it). Best effort: a failure only means the
// next List skips them again.
func (s *Store) dropExpired(ctx context.Context, index string, ids []string) {
	_ = s.indexRemove(ctx, index, ids...)
}
