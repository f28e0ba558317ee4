package agent

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/store"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

// readAll returns a job's stored log texts in order.
func readAll(t *testing.T, st *store.Store, id string) []ci.LogLine {
	t.Helper()
	var out []ci.LogLine
	after := ""
	for {
		lines, err := st.ReadLogs(context.Background(), id, after, 5000, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(lines) == 0 {
			return out
		}
		out = append(out, lines...)
		after = lines[len(lines)-1].ID
	}
}

// checkSequence: the stored lines are exactly want, in order, numbered 1..n.
func checkSequence(t *testing.T, got []ci.LogLine, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d lines stored, %d written", len(got), len(want))
	}
	for i := range want {
		if got[i].Text != want[i] {
			t.Fatalf("line %d is %q, want %q (duplicate or out of order)", i+1, got[i].Text, want[i])
		}
		if got[i].N != int64(i+1) {
			t.Fatalf("line %d numbered %d", i+1, got[i].N)
		}
	}
}

// A sink whose Redis stalls mid-burst — paused by CLIENT PAUSE, then frozen
// by SIGSTOP, with a client timeout so short that go-redis times out and
// retries writes that did reach Redis — still stores every line exactly
// once, in order.
func TestLogSinkExactlyOnceWhileRedisStalls(t *testing.T) {
	r := testutil.StartRedis(t)
	ctx := context.Background()
	admin := r.Client()
	impatient := redis.NewClient(&redis.Options{Addr: r.Addr, ReadTimeout: 150 * time.Millisecond,
		WriteTimeout: 150 * time.Millisecond, MaxRetries: 5, MinRetryBackoff: 10 * time.Millisecond, MaxRetryBackoff: 50 * time.Millisecond})
	t.Cleanup(func() { impatient.Close() })
	st := store.New(impatient, store.Options{})
	id, _, err := testutil.NewJobs(admin, 0).Submit(ctx, &ci.Job{Repo: "acme/log", CloneURL: "http://gitea.local/acme/log.git", Branch: "main"}, "")
	if err != nil {
		t.Fatal(err)
	}
	// A cap far above what 5 s can write: this test is about exactly-once
	// (the cap has tests of its own), and without -race a fast machine
	// writes past the default 64 MiB.
	sink := newLogSink(st, id, "agent-1/1-0/1", 1<<30)
	var want []string
	stalls := make(chan struct{})
	go func() {
		defer close(stalls)
		time.Sleep(100 * time.Millisecond)
		admin.Do(ctx, "CLIENT", "PAUSE", "1500", "WRITE")
		time.Sleep(1700 * time.Millisecond)
		r.Freeze(1500 * time.Millisecond)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		line := fmt.Sprintf("line %07d %s", i, strings.Repeat("x", i%300))
		want = append(want, line)
		sink.Line("burst", "stdout", line)
		if i%500 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	<-stalls
	sink.Close()
	checkSequence(t, readAll(t, store.New(admin, store.Options{}), id), want)
	t.Logf("%d lines through a 1.5 s CLIENT PAUSE and a 1.5 s SIGSTOP", len(want))
}

// A batch sent again (its first try reached Redis, its answer was lost) is
// stored once.
func TestLogBatchRetryIsStoredOnce(t *testing.T) {
	r := testutil.StartRedis(t)
	ctx := context.Background()
	st := store.New(r.Client(), store.Options{})
	id, _, _ := testutil.NewJobs(r.Client(), 0).Submit(ctx, &ci.Job{Repo: "acme/log", CloneURL: "http://gitea.local/acme/log.git", Branch: "main"}, "")
	batch := []ci.LogLine{{Step: "s", Stream: "stdout", Text: "a"}, {Step: "s", Stream: "stdout", Text: "b"}}
	for range 3 {
		if _, err := st.AppendLogBatch(ctx, id, "w1", 1, batch); err != nil {
			t.Fatal(err)
		}
	}
	st.AppendLogBatch(ctx, id, "w1", 2, []ci.LogLine{{Text: "c"}})
	st.AppendLogBatch(ctx, id, "w2", 1, []ci.LogLine{{Text: "d"}}) // another writer numbers its own
	var texts []string
	for _, l := range readAll(t, st, id) {
		texts = append(texts, l.Text)
	}
	if strings.Join(texts, "") != "abcd" {
		t.Fatalf("stored %q, want abcd", texts)
	}
}

// The marker counts lines as the step printed them: a line stored in pieces
// (cut at the reader's buffer) is one line, and its bytes include its
// newline.
func TestLogSinkMarkerCountsWholeLines(t *testing.T) {
	r := testutil.StartRedis(t)
	ctx := context.Background()
	st := store.New(r.Client(), store.Options{})
	id, _, _ := testutil.NewJobs(r.Client(), 0).Submit(ctx, &ci.Job{Repo: "acme/log", CloneURL: "http://gitea.local/acme/log.git", Branch: "main"}, "")
	sink := newLogSink(st, id, "w", 64<<10)
	const n = 3000
	for range n {
		sink.LineCont("s", "stdout", strings.Repeat("a", 100), false)
		sink.LineCont("s", "stdout", strings.Repeat("b", 100), true)
	}
	sink.Close()
	got := readAll(t, st, id)
	storedFirst, storedBytes := 0, 0
	var marker string
	for _, l := range got {
		if l.Stream == "system" {
			marker = l.Text
			continue
		}
		storedBytes += len(l.Text)
		if !l.Cont {
			storedFirst++
		}
	}
	droppedLines := n - storedFirst
	droppedBytes := int64(n*200 - storedBytes + droppedLines)
	want := fmt.Sprintf(": %d lines, %s not stored", droppedLines, humanBytes(droppedBytes))
	if !strings.Contains(marker, want) {
		t.Fatalf("marker %q, want it to say %q", marker, want)
	}
}

// Past the cap the head stops, a marker says what was not stored, and the
// last part of the output follows: the end is never lost.
func TestLogSinkCapKeepsHeadMarkerAndTail(t *testing.T) {
	r := testutil.StartRedis(t)
	ctx := context.Background()
	st := store.New(r.Client(), store.Options{})
	id, _, _ := testutil.NewJobs(r.Client(), 0).Submit(ctx, &ci.Job{Repo: "acme/log", CloneURL: "http://gitea.local/acme/log.git", Branch: "main"}, "")
	sink := newLogSink(st, id, "w", 64<<10) // 64 KiB cap, 32 KiB tail
	const n = 10000
	for i := range n {
		sink.Line("s", "stdout", fmt.Sprintf("%06d %s", i, strings.Repeat("y", 90)))
	}
	sink.Line("s", "system", "step s failed with exit code 3")
	sink.Close()
	got := readAll(t, st, id)
	marker := -1
	for i, l := range got {
		if strings.HasPrefix(l.Text, "log truncated at 64.0 KiB") {
			if marker >= 0 {
				t.Fatal("two markers")
			}
			marker = i
		}
	}
	if marker < 0 {
		t.Fatalf("no marker in %d lines", len(got))
	}
	// Head: lines 0..marker-1 in order from 0; tail: a run ending at n-1.
	for i := 0; i < marker; i++ {
		if !strings.HasPrefix(got[i].Text, fmt.Sprintf("%06d ", i)) {
			t.Fatalf("head line %d is %.10q", i, got[i].Text)
		}
	}
	tail := got[marker+1:]
	if last := tail[len(tail)-1].Text; last != "step s failed with exit code 3" {
		t.Fatalf("the verdict is not last: %q", last)
	}
	first := 0
	fmt.Sscanf(tail[0].Text, "%d", &first)
	for i, l := range tail[:len(tail)-1] {
		if !strings.HasPrefix(l.Text, fmt.Sprintf("%06d ", first+i)) {
			t.Fatalf("tail line %d is %.10q", i, l.Text)
		}
	}
	if first+len(tail)-1 != n {
		t.Fatalf("tail ends at %d, want %d", first+len(tail)-2, n-1)
	}
	dropped := first - marker
	if !strings.Contains(got[marker].Text, fmt.Sprintf(": %d lines,", dropped)) {
		t.Fatalf("marker %q does not count the %d lines not stored", got[marker].Text, dropped)
	}
}
