package store

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/raibid-labs/raibid-ci/internal/ci"
)

// AmbiguousError is a short job id that matches more than one job; it is a
// ci.ErrInvalid (the caller must say more).
type AmbiguousError struct {
	Short string
	IDs   []string // up to maxMatches of them
	More  bool
}

func (e *AmbiguousError) Error() string {
	more := ""
	if e.More {
		more = ", …"
	}
	return fmt.Sprintf("job id %s matches several jobs: %s%s", e.Short, strings.Join(e.IDs, ", "), more)
}

// Is makes an ambiguous id an invalid input.
func (e *AmbiguousError) Is(target error) bool { return target == ci.ErrInvalid }

var shortIDPattern = regexp.MustCompile(`^[0-9a-f]{4,20}$`)

// maxMatches is how many matches an ambiguous short id lists.
const maxMatches = 10

// Resolve turns a job id, or a short one, into the job's full id. Short ids
// are what people copy from the dashboard and the web pages: the id's last 8
// characters (its random part, or the start of them), or a prefix of the id.
// Each is found through an index in O(log n), never by scanning. A short id
// that matches several jobs is an *AmbiguousError naming them; none, ci.ErrNotFound.
func (s *Store) Resolve(ctx context.Context, short string) (string, error) {
	if !shortIDPattern.MatchString(short) {
		return "", fmt.Errorf("job id %q: want 4 to 20 hex digits: %w", short, ci.ErrInvalid)
	}
	if len(short) == 20 {
		return short, nil
	}
	byPrefix, err := s.indexRange(ctx, s.keys.Index(), "["+short, "("+short+"\xff", maxMatches+1)
	if err != nil {
		return "", Wrap("resolve job id", err)
	}
	var byTail []string
	if len(short) <= 8 {
		if byTail, err = s.indexRange(ctx, s.keys.Short(), "["+short, "("+short+"\xff", maxMatches+1); err != nil {
			return "", Wrap("resolve job id", err)
		}
	}
	seen := map[string]bool{}
	var ids []string
	add := func(id string) {
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	for _, id := range byPrefix {
		add(id)
	}
	for _, m := range byTail {
		add(IDOfShortMember(m))
	}
	// Index entries of jobs that expired are dropped here.
	var live []string
	for _, id := range ids {
		n, err := s.rdb.Exists(ctx, s.keys.Job(id)).Result()
		if err != nil {
			return "", Wrap("resolve job id", err)
		}
		if n == 1 {
			live = append(live, id)
			continue
		}
		_ = s.indexRemove(ctx, s.keys.Index(), id)
		_ = s.indexRemove(ctx, s.keys.Short(), ShortMember(id))
	}
	switch len(live) {
	case 0:
		return "", fmt.Errorf("no job %s: %w", short, ci.ErrNotFound)
	case 1:
		return live[0], nil
	}
	e := &AmbiguousError{Short: short, IDs: live}
	if len(live) > maxMatches {
		e.IDs, e.More = live[:maxMatches], true
	}
	return "", e
}
