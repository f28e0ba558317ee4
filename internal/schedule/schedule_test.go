package schedule_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/schedule"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// Bad schedules are refused with one line naming what is wrong.
func TestAddRefusesBadSchedules(t *testing.T) {
	r := testutil.StartRedis(t)
	st := schedule.NewStore(r.Client(), "")
	for _, s := range []schedule.Schedule{
		{Repo: "acme/widget", Branch: "main", Cron: "61 * * * *"},
		{Repo: "acme/widget", Branch: "main", Cron: "every day"},
		{Repo: "acme", Branch: "main", Cron: "0 3 * * *"},
		{Repo: "acme/widget", Branch: "--upload-pack=x", Cron: "0 3 * * *"},
	} {
		if _, err := st.Add(context.Background(), s); !errors.Is(err, ci.ErrInvalid) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%+v: err = %v", s, err)
		}
	}
	if list, _ := st.List(context.Background()); len(list) != 0 {
		t.Fatalf("stored %+v", list)
	}
}

// Two servers run the firing loop on one Redis: each due firing queues
// exactly one job (event cron), whoever takes the minute's lock; a firing
// missed while no server ran is caught up once; a removed schedule stops.
func TestScheduleFiresOnceWithTwoServers(t *testing.T) {
	r := testutil.StartRedis(t)
	jb := testutil.NewJobs(r.Client(), 0)
	ctx := context.Background()
	var mu sync.Mutex
	var queued []*ci.Job
	submit := func(ctx context.Context, j *ci.Job) (string, error) {
		id, _, err := jb.Submit(ctx, j, "")
		mu.Lock()
		queued = append(queued, j)
		mu.Unlock()
		return id, err
	}
	serverA := schedule.NewStore(r.Client(), "")
	serverB := schedule.NewStore(testutil.NewJobs(r.Client(), 0).Store.Client(), "")
	s, err := serverA.Add(ctx, schedule.Schedule{Repo: "acme/widget", Branch: "main", Cron: "*/10 * * * *", CloneURL: "http://gitea.local/acme/widget.git"})
	if err != nil {
		t.Fatal(err)
	}
	// A firing minute after the schedule was made.
	due := schedule.Next(s, s.CreatedAt)
	for round, now := range []time.Time{due.Add(5 * time.Second), due.Add(40 * time.Second), due.Add(10*time.Minute + time.Second)} {
		var wg sync.WaitGroup
		for _, srv := range []*schedule.Store{serverA, serverB, serverA, serverB} {
			wg.Go(func() {
				if _, err := srv.Fire(ctx, now, submit, nil); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		mu.Lock()
		n := len(queued)
		mu.Unlock()
		if want := []int{1, 1, 2}[round]; n != want {
			t.Fatalf("round %d (%s): %d jobs queued, want %d", round, now.Format(time.TimeOnly), n, want)
		}
	}
	if j := queued[0]; j.Event != ci.EventCron || j.Branch != "main" || j.Repo != "acme/widget" || j.Trigger != ci.TriggerSchedule {
		t.Fatalf("job = %+v", j)
	}
	list, _ := serverB.List(ctx)
	if len(list) != 1 || list[0].LastJob == "" || !list[0].LastFired.Equal(due.Add(10*time.Minute)) {
		t.Fatalf("schedule after firing = %+v", list)
	}
	if err := serverB.Remove(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if ids, _ := serverA.Fire(ctx, due.Add(20*time.Minute+time.Second), submit, nil); len(ids) != 0 {
		t.Fatalf("a removed schedule fired: %v", ids)
	}
	if err := serverB.Remove(ctx, s.ID); !errors.Is(err, ci.ErrNotFound) {
		t.Fatalf("second remove: %v", err)
	}
}

// A schedule added mid-minute fires first at the next minute boundary, as
// cron does — not seconds after it was added for the minute already begun.
func TestScheduleFiresOnMinuteBoundaries(t *testing.T) {
	r := testutil.StartRedis(t)
	jb := testutil.NewJobs(r.Client(), 0)
	ctx := context.Background()
	queued := 0
	submit := func(ctx context.Context, j *ci.Job) (string, error) {
		queued++
		id, _, err := jb.Submit(ctx, j, "")
		return id, err
	}
	st := schedule.NewStore(r.Client(), "")
	// Added 53 s into a minute.
	added := time.Now().Truncate(time.Minute).Add(53 * time.Second)
	st.SetClock(func() time.Time { return added })
	s, err := st.Add(ctx, schedule.Schedule{Repo: "acme/widget", Branch: "main", Cron: "* * * * *", CloneURL: "http://gitea.local/acme/widget.git"})
	if err != nil {
		t.Fatal(err)
	}
	minute := s.CreatedAt.Truncate(time.Minute)
	if _, err := st.Fire(ctx, s.CreatedAt.Add(time.Millisecond), submit, nil); err != nil || queued != 0 {
		t.Fatalf("fired %d job(s) in the minute it was added (%v)", queued, err)
	}
	if _, err := st.Fire(ctx, minute.Add(time.Minute), submit, nil); err != nil || queued != 1 {
		t.Fatalf("%d job(s) at the next boundary, want 1 (%v)", queued, err)
	}
}
