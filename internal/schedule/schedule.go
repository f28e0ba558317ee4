// Package schedule keeps cron schedules of pipelines in Redis and fires
// them: each schedule queues a job (event cron) for its branch at the times
// its cron expression gives. Several servers may run the firing loop at
// once: a per-schedule, per-minute lock in Redis lets exactly one of them
// queue each firing.
package schedule

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/robfig/cron/v3"

	"github.com/raibid-labs/raibid-ci/internal/api"
	"github.com/raibid-labs/raibid-ci/internal/ci"
)

// Schedule is one cron schedule of a repository's branch: the API's type.
type Schedule = api.Schedule

// parser reads the five standard fields (minute hour day month weekday)
// and the @hourly/@daily/… descriptors.
var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Check refuses a schedule raibid cannot fire, with one line saying why.
func Check(s *Schedule) error {
	if err := ci.CheckRepo(s.Repo); err != nil {
		return err
	}
	if err := ci.CheckBranch(s.Branch); err != nil {
		return err
	}
	if s.CloneURL != "" {
		if err := ci.CheckCloneURL(s.CloneURL); err != nil {
			return err
		}
	}
	if _, err := parser.Parse(s.Cron); err != nil {
		return fmt.Errorf("cron %q: %v: %w", ci.Truncate(s.Cron, 80), err, ci.ErrInvalid)
	}
	return nil
}

// Next is the schedule's first firing after t.
func Next(s *Schedule, t time.Time) time.Time {
	sched, err := parser.Parse(s.Cron)
	if err != nil {
		return time.Time{}
	}
	return sched.Next(t)
}

// Store keeps schedules in one Redis hash (id → JSON) under prefix.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	now    func() time.Time
}

// NewStore returns the schedules under prefix.
func NewStore(rdb redis.UniversalClient, prefix string) *Store {
	return &Store{rdb: rdb, prefix: prefix, now: time.Now}
}

// SetClock replaces the clock schedules are made and fired by (tests:
// a schedule added at a chosen second).
func (st *Store) SetClock(now func() time.Time) { st.now = now }

func (st *Store) key() string { return st.prefix + "schedules" }

// lockKey is the lock of one schedule's firing at one minute.
func (st *Store) lockKey(id string, minute time.Time) string {
	return fmt.Sprintf("%sschedule:fired:%s:%d", st.prefix, id, minute.Unix())
}

func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w: %w", op, ci.ErrUnavailable, err)
}

// Add stores a new schedule and returns it with its id.
func (st *Store) Add(ctx context.Context, s Schedule) (*Schedule, error) {
	s.Cron = strings.TrimSpace(s.Cron)
	if err := Check(&s); err != nil {
		return nil, err
	}
	s.ID = ci.NewID(st.now())
	s.CreatedAt = st.now()
	b, _ := json.Marshal(s)
	if err := st.rdb.HSet(ctx, st.key(), s.ID, b).Err(); err != nil {
		return nil, wrap("add schedule", err)
	}
	return &s, nil
}

// List returns every schedule, by repository and branch.
func (st *Store) List(ctx context.Context) ([]Schedule, error) {
	all, err := st.rdb.HGetAll(ctx, st.key()).Result()
	if err != nil {
		return nil, wrap("list schedules", err)
	}
	out := make([]Schedule, 0, len(all))
	for _, v := range all {
		var s Schedule
		if json.Unmarshal([]byte(v), &s) == nil {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Repo != out[j].Repo {
			return out[i].Repo < out[j].Repo
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Remove deletes a schedule: ci.ErrNotFound when there is none.
func (st *Store) Remove(ctx context.Context, id string) error {
	n, err := st.rdb.HDel(ctx, st.key(), id).Result()
	if err != nil {
		return wrap("remove schedule", err)
	}
	if n == 0 {
		return fmt.Errorf("schedule %s: %w", id, ci.ErrNotFound)
	}
	return nil
}

// Submit queues a schedule's job; the firing loop is given one.
type Submit func(ctx context.Context, j *ci.Job) (id string, err error)

// lockTTL keeps a firing's lock long past any server's catch-up window.
const lockTTL = 2 * time.Hour

// catchUp is how far back a firing loop looks for firings it missed (a
// server restarting, a slow Redis): at most this many minutes.
const catchUp = 5

// Fire queues a job for every schedule due in the minutes (now-catchUp,
// now], each firing once across every server that calls Fire: the first
// to take its lock (SET NX) queues it. It returns the ids of the jobs it
// queued.
func (st *Store) Fire(ctx context.Context, now time.Time, submit Submit, log *slog.Logger) ([]string, error) {
	list, err := st.List(ctx)
	if err != nil {
		return nil, err
	}
	minute := now.Truncate(time.Minute)
	var fired []string
	for i := range list {
		s := &list[i]
		from := minute.Add(-catchUp * time.Minute)
		if s.CreatedAt.After(from) {
			from = s.CreatedAt.Truncate(time.Minute) // never fire for before it existed
		}
		for due := Next(s, from.Add(-time.Second)); !due.IsZero() && !due.After(minute); due = Next(s, due) {
			if due.Before(from) || due.Before(s.CreatedAt) {
				continue // a minute that began before the schedule existed
			}
			won, err := st.rdb.SetNX(ctx, st.lockKey(s.ID, due), "1", lockTTL).Result()
			if err != nil {
				return fired, wrap("schedule lock", err)
			}
			if !won {
				continue // another server fired it
			}
			j := &ci.Job{Repo: s.Repo, Branch: s.Branch, CloneURL: s.CloneURL, Trigger: ci.TriggerSchedule, Event: ci.EventCron,
				Message: "schedule " + s.Cron}
			id, err := submit(ctx, j)
			if err != nil {
				// Give the lock back: the next round tries again.
				st.rdb.Del(ctx, st.lockKey(s.ID, due))
				if log != nil {
					log.Warn("schedule not fired", "schedule", s.ID, "repo", s.Repo, "err", err)
				}
				continue
			}
			fired = append(fired, id)
			s.LastFired, s.LastJob = due, id
			b, _ := json.Marshal(s)
			// Only if it still exists: a schedule removed meanwhile stays gone.
			if n, _ := st.rdb.HExists(ctx, st.key(), s.ID).Result(); n {
				st.rdb.HSet(ctx, st.key(), s.ID, b)
			}
			if log != nil {
				log.Info("schedule fired", "schedule", s.ID, "repo", s.Repo, "branch", s.Branch, "job_id", id)
			}
		}
	}
	return fired, nil
}

// Run calls Fire at once (catching up what a restart missed), then at
// every minute boundary, as cron does, until ctx ends. A wake-up that comes
// late or early by the timer's slack still fires the right minute: Fire goes
// by the minute now falls in.
func (st *Store) Run(ctx context.Context, submit Submit, log *slog.Logger) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		now := st.now()
		if _, err := st.Fire(ctx, now, submit, log); err != nil && ctx.Err() == nil {
			log.Warn("schedules", "err", err)
		}
		timer.Reset(untilNextMinute(st.now()))
	}
}

// untilNextMinute is how long from now until the next minute begins, plus a
// little so that a timer firing a hair early still lands in the new minute.
func untilNextMinute(now time.Time) time.Duration {
	return now.Truncate(time.Minute).Add(time.Minute).Sub(now) + 10*time.Millisecond
}
