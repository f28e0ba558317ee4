package cache_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/cache"
)

func fill(t *testing.T, dir string, size int, used time.Time) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "blob"), make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(dir, used, used); err != nil {
		t.Fatal(err)
	}
}

func TestTargetDirIsPerRepoAndToolchain(t *testing.T) {
	c := cache.Cache{Root: t.TempDir()}
	a, _ := c.TargetDir("acme/widget", "1.95.0")
	b, _ := c.TargetDir("acme/widget", "1.95.0")
	other, _ := c.TargetDir("acme/widget", "1.96.0")
	evil, err := c.TargetDir("../../etc", "x")
	if err != nil || a != b || a == other || filepath.Dir(evil) != filepath.Join(c.Root, "target") {
		t.Fatalf("dirs %s %s %s %s %v", a, b, other, evil, err)
	}
}

// Prune removes the least recently used first and stops once both limits hold.
func TestPruneOldestFirstWithinBothLimits(t *testing.T) {
	c := cache.Cache{Root: t.TempDir()}
	now := time.Now()
	dirs := map[string]time.Duration{"r1": 10 * 24 * time.Hour, "r2": 3 * time.Hour, "r3": 2 * time.Hour, "r4": time.Hour}
	paths := map[string]string{}
	for repo, age := range dirs {
		p, _ := c.TargetDir("acme/"+repo, "t")
		fill(t, p, 1000, now.Add(-age))
		paths[repo] = p
	}
	// Age: r1 (10 days) goes. Size: 3000 left > 2500, so r2, the oldest left, goes.
	removed, err := c.Prune("", 7*24*time.Hour, 2500, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 2 || removed[0].Path != paths["r1"] || removed[1].Path != paths["r2"] {
		t.Fatalf("removed %+v", removed)
	}
	left, _ := c.Entries()
	if len(left) != 2 || left[0].Path != paths["r3"] || left[1].Path != paths["r4"] || left[0].Size != 1000 {
		t.Fatalf("left %+v", left)
	}
	if removed, _ := c.Prune("", 0, 0, now); len(removed) != 0 {
		t.Fatalf("no limits removed %+v", removed)
	}
}

func TestParseSizeAndAge(t *testing.T) {
	for in, want := range map[string]int64{"50GB": 50e9, "512MiB": 512 << 20, "1.5G": 3 << 29, "1000": 1000, "2 kb": 2000} {
		if got, err := cache.ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "lots", "-5GB"} {
		if _, err := cache.ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
	if d, err := cache.ParseAge("7d"); err != nil || d != 7*24*time.Hour {
		t.Errorf("7d = %v %v", d, err)
	}
	if d, err := cache.ParseAge("36h"); err != nil || d != 36*time.Hour {
		t.Errorf("36h = %v %v", d, err)
	}
	if _, err := cache.ParseAge("soon"); err == nil {
		t.Error("soon accepted")
	}
}

func TestCargoHomeCopiesTheAgentsSettingsNotItsCredentials(t *testing.T) {
	c := cache.Cache{Root: t.TempDir()}
	user := t.TempDir()
	os.WriteFile(filepath.Join(user, "config.toml"), []byte("[net]\noffline = true\n"), 0o600)
	os.WriteFile(filepath.Join(user, "credentials.toml"), []byte("[registry]\ntoken = \"agent-only\"\n"), 0o600)
	home, err := c.CargoHome("acme/x", user)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(home, "config.toml"))
	if err != nil || string(b) != "[net]\noffline = true\n" {
		t.Fatalf("config not linked: %q %v", b, err)
	}
	if _, err := os.Lstat(filepath.Join(home, "credentials.toml")); err == nil {
		t.Fatal("the agent's registry credentials were shared with builds")
	}
	if fi, _ := os.Lstat(filepath.Join(home, "config.toml")); fi.Mode()&os.ModeSymlink != 0 {
		t.Fatal("config is a link into the agent's home, which a sandboxed step cannot see")
	}
	if again, err := c.CargoHome("acme/x", user); err != nil || again != home {
		t.Fatalf("second call: %s %v", again, err)
	}
}

// Nothing a running job holds is pruned: a target dir in use survives a
// prune that removes its unused neighbour, and goes once released.
func TestPruneSkipsWhatARunningJobUses(t *testing.T) {
	c := cache.Cache{Root: t.TempDir()}
	busy, _ := c.TargetDir("acme/busy", "rustc 1.95")
	idle, _ := c.TargetDir("acme/idle", "rustc 1.95")
	old := time.Now().Add(-48 * time.Hour)
	fill(t, busy, 1000, old)
	fill(t, idle, 1000, old)
	release, err := c.Use(busy)
	if err != nil {
		t.Fatal(err)
	}
	removed, err := c.Prune("", time.Hour, 0, time.Now())
	if err != nil || len(removed) != 1 || removed[0].Path != idle {
		t.Fatalf("removed %+v, %v", removed, err)
	}
	if _, err := os.Stat(busy); err != nil {
		t.Fatal("the directory in use was removed")
	}
	release()
	if removed, _ := c.Prune("", time.Hour, 0, time.Now().Add(time.Hour)); len(removed) != 1 || removed[0].Path != busy {
		t.Fatalf("after release: removed %+v", removed)
	}
}

// One accounting of everything agents keep, part by part.
func TestUsageCountsEveryPart(t *testing.T) {
	c := cache.Cache{Root: t.TempDir()}
	work := t.TempDir()
	target, _ := c.TargetDir("acme/x", "rustc")
	fill(t, target, 300, time.Now())
	for dir, size := range map[string]int{
		filepath.Join(c.Root, "sccache"): 200, filepath.Join(c.Root, "cargo-homes"): 100,
		filepath.Join(work, cache.MirrorsDir, "abc.git"): 400, filepath.Join(work, "abcdef-0"): 500, filepath.Join(work, cache.HomesDir, "abcdef-0"): 50,
	} {
		os.MkdirAll(dir, 0o755)
		fill(t, dir, size, time.Now())
	}
	got := map[string]int64{}
	for _, p := range c.Usage(work) {
		got[p.Name] = p.Size
	}
	want := map[string]int64{"target dirs": 300, "sccache": 200, "cargo homes": 100, "mirrors": 400, "workspaces": 500, "step homes": 50}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d (%v)", k, got[k], v, got)
		}
	}
}

// The work dir is pruned by age too: an old mirror and an old slot go (with
// its step home), a slot a job holds stays however old.
func TestPruneWorkKeepsWhatAJobHolds(t *testing.T) {
	work := t.TempDir()
	old := time.Now().Add(-48 * time.Hour)
	mirror := filepath.Join(work, cache.MirrorsDir, "abc.git")
	idleSlot, busySlot := filepath.Join(work, "aaaa-0"), filepath.Join(work, "bbbb-0")
	home := filepath.Join(work, cache.HomesDir, "aaaa-0")
	for _, d := range []string{mirror, idleSlot, busySlot, home, filepath.Join(work, cache.SlotsDir)} {
		os.MkdirAll(d, 0o755)
	}
	for _, d := range []string{mirror, idleSlot, busySlot} {
		fill(t, d, 100, old)
	}
	lock, _ := os.OpenFile(filepath.Join(work, cache.SlotsDir, "bbbb-0.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	removed, err := cache.Cache{Root: t.TempDir()}.Prune(work, time.Hour, 0, time.Now())
	if err != nil || len(removed) != 2 {
		t.Fatalf("removed %+v, %v", removed, err)
	}
	for _, gone := range []string{mirror, idleSlot, home} {
		if _, err := os.Stat(gone); err == nil {
			t.Errorf("%s is still there", gone)
		}
	}
	if _, err := os.Stat(busySlot); err != nil {
		t.Fatal("the slot a job holds was removed")
	}
}

// --cache-max-size covers everything agents keep: over the size, the least
// recently used of target dirs, mirrors and slots go first, whatever kind.
func TestPruneBySizeAcrossEveryPart(t *testing.T) {
	c := cache.Cache{Root: t.TempDir()}
	work := t.TempDir()
	target, _ := c.TargetDir("acme/x", "rustc")
	mirror := filepath.Join(work, cache.MirrorsDir, "abc.git")
	slot := filepath.Join(work, "aaaa-0")
	for _, d := range []string{mirror, slot} {
		os.MkdirAll(d, 0o755)
	}
	now := time.Now()
	fill(t, mirror, 1000, now.Add(-3*time.Hour)) // oldest
	fill(t, target, 1000, now.Add(-2*time.Hour))
	fill(t, slot, 1000, now.Add(-1*time.Hour))
	removed, err := c.Prune(work, 0, 2000, now)
	if err != nil || len(removed) != 1 || removed[0].Path != mirror {
		t.Fatalf("removed %+v, %v; want the oldest part, the mirror", removed, err)
	}
	var total int64
	for _, p := range c.Usage(work) {
		total += p.Size
	}
	if total > 2000 {
		t.Fatalf("%d bytes kept, more than the 2000 allowed", total)
	}
}

// Scopes never share a directory: another repository, and a fork's pull
// request of the same one, get target dirs and cargo homes of their own.
func TestScopesShareNothing(t *testing.T) {
	c := cache.Cache{Root: t.TempDir()}
	seen := map[string]string{}
	for _, scope := range []string{"acme/a", "acme/b", "acme/a#fork-pr-7", "acme/a#fork-pr-8"} {
		for _, dir := range []func() (string, error){
			func() (string, error) { return c.TargetDir(scope, "rustc") },
			func() (string, error) { return c.CargoHome(scope, "") },
		} {
			d, err := dir()
			if err != nil {
				t.Fatal(err)
			}
			if other, ok := seen[d]; ok {
				t.Fatalf("%s and %s share %s", scope, other, d)
			}
			seen[d] = scope
		}
	}
}

// What a build plants in the directories it writes — a link at the name of
// the old in-use marker, at the cargo config the agent copies in, a link
// to a host directory — steers nothing the cache does as root: using,
// preparing, accounting and pruning leave the host as it was.
func TestPlantedLinksSteerNothing(t *testing.T) {
	c := cache.Cache{Root: t.TempDir()}
	host := t.TempDir()
	hostFile := filepath.Join(host, "nologin")
	os.WriteFile(hostFile, []byte("host"), 0o600)
	user := t.TempDir()
	os.WriteFile(filepath.Join(user, "config.toml"), []byte("[net]\noffline = true\n"), 0o600)
	target, _ := c.TargetDir("acme/x", "rustc")
	home, _ := c.CargoHome("acme/x", user)
	plants := map[string]string{
		filepath.Join(target, ".raibid-in-use"): filepath.Join(host, "created-by-marker"),
		filepath.Join(target, "release"):        host,
		filepath.Join(home, "config.toml"):      hostFile,
		filepath.Join(home, "credentials.toml"): filepath.Join(host, "created-by-creds"),
		filepath.Join(home, "registry"):         host,
	}
	for at, to := range plants {
		os.RemoveAll(at)
		if err := os.Symlink(to, at); err != nil {
			t.Fatal(err)
		}
	}
	os.Link(hostFile, filepath.Join(target, "hardlink"))
	old := time.Now().Add(-48 * time.Hour)
	for range 2 {
		if _, err := c.TargetDir("acme/x", "rustc"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.CargoHome("acme/x", user); err != nil {
			t.Fatal(err)
		}
		release, err := c.Use(target)
		if err != nil {
			t.Fatal(err)
		}
		release()
		c.Usage(t.TempDir())
		os.Chtimes(target, old, old)
		os.Chtimes(home, old, old)
	}
	if _, err := c.Prune("", time.Hour, 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(host)
	if len(entries) != 1 {
		t.Fatalf("the host directory changed: %v", entries)
	}
	if b, _ := os.ReadFile(hostFile); string(b) != "host" {
		t.Fatalf("the host file holds %q", b)
	}
	for _, d := range []string{target, home} {
		if _, err := os.Lstat(d); err == nil {
			t.Errorf("%s was not pruned", d)
		}
	}
}
