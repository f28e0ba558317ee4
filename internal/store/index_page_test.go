package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/raibid-labs/raibid-ci/internal/store"
	"github.com/raibid-labs/raibid-ci/internal/testutil"
)

var indexAdd = redis.NewScript(store.IndexLua + `
for _, m in ipairs(ARGV) do index_add(KEYS[1], m) end
return 0
`)

// checkPages verifies an index's pages: each a listpack of at most
// PageSize members, every member at or above its page's bound and below
// the next, the directory naming exactly the pages that exist. It returns
// every member in order.
func checkPages(t *testing.T, rdb *redis.Client, index string) []string {
	t.Helper()
	ctx := context.Background()
	bounds := rdb.ZRange(ctx, index+":pages", 0, -1).Val()
	pages := rdb.Keys(ctx, index+"#*").Val()
	if len(pages) != len(bounds) {
		t.Fatalf("%d pages for %d bounds", len(pages), len(bounds))
	}
	var all []string
	for i, b := range bounds {
		page := index + "#" + b
		members := rdb.ZRange(ctx, page, 0, -1).Val()
		if len(members) == 0 || len(members) > store.PageSize {
			t.Fatalf("page %q holds %d members", b, len(members))
		}
		if enc := rdb.ObjectEncoding(ctx, page).Val(); enc != "listpack" {
			t.Fatalf("page %q is a %s", b, enc)
		}
		for _, m := range members {
			if m < b || (i+1 < len(bounds) && m >= bounds[i+1]) {
				t.Fatalf("member %s in page %q (next bound %v)", m, b, bounds[i+1:])
			}
		}
		all = append(all, members...)
	}
	return all
}

func TestIndexPagesStayListpacksInOrder(t *testing.T) {
	r := testutil.StartRedis(t)
	rdb := r.Client()
	ctx := context.Background()
	st := store.New(rdb, store.Options{})
	rng := rand.New(rand.NewPCG(1, 2))
	var want []string
	add := func(ms ...string) {
		args := make([]any, len(ms))
		for i, m := range ms {
			args[i] = m
		}
		if err := indexAdd.Run(ctx, rdb, []string{"ix"}, args...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// Ids in time order (appends), then in random order (splits in the
	// middle), then ones older than every page (the "" page), then again.
	for i := range 1000 {
		m := fmt.Sprintf("%012x%08x", 1_000_000+i, rng.Uint32())
		want = append(want, m)
		add(m)
	}
	for range 1500 {
		m := fmt.Sprintf("%012x%08x", 1_000_000+rng.IntN(2000), rng.Uint32())
		want = append(want, m)
		add(m)
	}
	for i := range 300 {
		m := fmt.Sprintf("%012x%08x", 500+i, rng.Uint32())
		want = append(want, m)
		add(m)
	}
	add(want[:50]...) // adding again changes nothing
	slices.Sort(want)
	if got := checkPages(t, rdb, "ix"); !slices.Equal(got, want) {
		t.Fatalf("pages hold %d members, want %d", len(got), len(want))
	}
	if n, _ := st.IndexSize(ctx, "ix"); n != int64(len(want)) {
		t.Fatalf("IndexSize %d, want %d", n, len(want))
	}

	// Newest first, a page at a time from a cursor, across pages.
	var walked []string
	for cursor := "+"; ; {
		got, err := store.IndexNewest(st, ctx, "ix", cursor, 200)
		if err != nil {
			t.Fatal(err)
		}
		walked = append(walked, got...)
		if len(got) < 200 {
			break
		}
		cursor = "(" + got[len(got)-1]
	}
	desc := slices.Clone(want)
	slices.Reverse(desc)
	if !slices.Equal(walked, desc) {
		t.Fatalf("walk newest first gave %d members, want %d in order", len(walked), len(desc))
	}
	// A prefix finds its members whichever pages they are in.
	prefix := want[len(want)/2][:9]
	var hits []string
	for _, m := range want {
		if strings.HasPrefix(m, prefix) {
			hits = append(hits, m)
		}
	}
	got, err := store.IndexRange(st, ctx, "ix", "["+prefix, "("+prefix+"\xff", 10000)
	if err != nil || !slices.Equal(got, hits) || len(hits) == 0 {
		t.Fatalf("prefix %s: %d members, want %d (%v)", prefix, len(got), len(hits), err)
	}
	if got, _ := store.IndexRange(st, ctx, "ix", "[0", "(0\xff", 3); len(got) != 3 || got[0] != want[0] {
		t.Fatalf("lowest three: %v", got)
	}

	// Removing every member, in random order, leaves no key behind.
	rng.Shuffle(len(want), func(i, j int) { want[i], want[j] = want[j], want[i] })
	for i := 0; i < len(want); i += 100 {
		if err := store.IndexRemove(st, ctx, "ix", want[i:min(i+100, len(want))]...); err != nil {
			t.Fatal(err)
		}
		if i == 1000 {
			checkPages(t, rdb, "ix")
		}
	}
	if keys := rdb.Keys(ctx, "ix*").Val(); len(keys) != 0 {
		t.Fatalf("keys left: %v", keys)
	}
}

func TestShortMemberRoundTrip(t *testing.T) {
	id := "0123456789abcdef0123"
	if m := store.ShortMember(id); m != "cdef0123"+"0123456789ab" || store.IDOfShortMember(m) != id {
		t.Fatalf("ShortMember %q, back %q", m, store.IDOfShortMember(m))
	}
}
