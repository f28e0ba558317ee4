package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raibid-labs/raibid-ci/internal/ci"
)

// Errors a caller turns into answers.
var (
	ErrNotFound = errors.New("secrets: not found")
	ErrInvalid  = errors.New("secrets: invalid")
)

// MaxValue bounds one secret's value.
const MaxValue = 64 << 10

var namePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// Scope is where a secret applies: one repository, or every repository of
// an organisation (a repository's secret of the same name wins).
type Scope struct {
	Org  string // organisation (or user) for org scope; empty for repo scope
	Repo string // owner/name for repo scope
}

// RepoScope and OrgScope build checked scopes.
func RepoScope(repo string) (Scope, error) {
	if err := ci.CheckRepo(repo); err != nil {
		return Scope{}, fmt.Errorf("%v: %w", err, ErrInvalid)
	}
	return Scope{Repo: repo}, nil
}

// OrgScope is the scope of every repository of owner.
func OrgScope(owner string) (Scope, error) {
	if err := ci.CheckOwner(owner); err != nil {
		return Scope{}, fmt.Errorf("%v: %w", err, ErrInvalid)
	}
	return Scope{Org: owner}, nil
}

func (s Scope) String() string {
	if s.Org != "" {
		return "org:" + s.Org
	}
	return "repo:" + s.Repo
}

// CheckName refuses names that cannot be environment variables.
func CheckName(name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("secret name %q must be letters, digits and _ (not starting with a digit), at most 128: %w", name, ErrInvalid)
	}
	return nil
}

// Meta is what anyone may know of a secret: never its value.
type Meta struct {
	Name      string    `json:"name"`
	Scope     string    `json:"scope"`
	UpdatedAt time.Time `json:"updated_at"`
}

// stored is a secret's Redis form.
type stored struct {
	Sealed    string `json:"v"`
	UpdatedAt int64  `json:"u"` // Unix milliseconds
}

// Store keeps secrets in Redis: one hash per scope, field = name, value =
// the sealed value and its time; a set indexes the scopes for rotation.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	keys   func() (*Keyring, error)
	now    func() time.Time
}

// NewStore returns a store. keys is called for every operation that seals
// or opens, so agents in other processes pick up a rotated key file.
func NewStore(rdb redis.UniversalClient, prefix string, keys func() (*Keyring, error)) *Store {
	return &Store{rdb: rdb, prefix: prefix, keys: keys, now: time.Now}
}

func (s *Store) hashKey(sc Scope) string { return s.prefix + "secrets:" + sc.String() }
func (s *Store) indexKey() string        { return s.prefix + "secrets:scopes" }

// aad binds a sealed value to its scope and name.
func aad(sc Scope, name string) string { return sc.String() + "\x00" + name }

// Set stores (or replaces) a secret.
func (s *Store) Set(ctx context.Context, sc Scope, name, value string) (Meta, error) {
	if err := CheckName(name); err != nil {
		return Meta{}, err
	}
	if value == "" || len(value) > MaxValue {
		return Meta{}, fmt.Errorf("value must be 1 to %d bytes: %w", MaxValue, ErrInvalid)
	}
	k, err := s.keys()
	if err != nil {
		return Meta{}, err
	}
	now := s.now()
	b, _ := json.Marshal(stored{Sealed: k.seal(value, aad(sc, name)), UpdatedAt: now.UnixMilli()})
	pipe := s.rdb.TxPipeline()
	pipe.HSet(ctx, s.hashKey(sc), name, b)
	pipe.SAdd(ctx, s.indexKey(), sc.String())
	if _, err := pipe.Exec(ctx); err != nil {
		return Meta{}, fmt.Errorf("secrets: store: %w", err)
	}
	return Meta{Name: name, Scope: sc.String(), UpdatedAt: now.UTC().Truncate(time.Millisecond)}, nil
}

// List returns the names and times of a scope's secrets, sorted by name.
func (s *Store) List(ctx context.Context, sc Scope) ([]Meta, error) {
	h, err := s.rdb.HGetAll(ctx, s.hashKey(sc)).Result()
	if err != nil {
		return nil, fmt.Errorf("secrets: list: %w", err)
	}
	out := make([]Meta, 0, len(h))
	for name, raw := range h {
		var st stored
		_ = json.Unmarshal([]byte(raw), &st)
		out = append(out, Meta{Name: name, Scope: sc.String(), UpdatedAt: time.UnixMilli(st.UpdatedAt).UTC()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Delete removes a secret; ErrNotFound when there is none.
func (s *Store) Delete(ctx context.Context, sc Scope, name string) error {
	n, err := s.rdb.HDel(ctx, s.hashKey(sc), name).Result()
	if err != nil {
		return fmt.Errorf("secrets: delete: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("no secret %s in %s: %w", name, sc, ErrNotFound)
	}
	return nil
}

// ForRepo returns the values of the named secrets that apply to repo: the
// repository's own, else its owner's organisation-wide one. A name with no
// secret is an error naming it (a step that asks for a secret must not run
// without it).
func (s *Store) ForRepo(ctx context.Context, repo string, names []string) (map[string]string, error) {
	if len(names) == 0 {
		return map[string]string{}, nil
	}
	rs, err := RepoScope(repo)
	if err != nil {
		return nil, err
	}
	owner, _, _ := strings.Cut(repo, "/")
	os, err := OrgScope(owner)
	if err != nil {
		return nil, err
	}
	k, err := s.keys()
	if err != nil {
		return nil, err
	}
	repoVals, err := s.rdb.HMGet(ctx, s.hashKey(rs), names...).Result()
	if err != nil {
		return nil, fmt.Errorf("secrets: read: %w", err)
	}
	orgVals, err := s.rdb.HMGet(ctx, s.hashKey(os), names...).Result()
	if err != nil {
		return nil, fmt.Errorf("secrets: read: %w", err)
	}
	out := make(map[string]string, len(names))
	var missing []string
	for i, name := range names {
		raw, sc := repoVals[i], rs
		if raw == nil {
			raw, sc = orgVals[i], os
		}
		str, ok := raw.(string)
		if !ok {
			missing = append(missing, name)
			continue
		}
		var st stored
		if err := json.Unmarshal([]byte(str), &st); err != nil {
			return nil, fmt.Errorf("secrets: %s in %s: malformed stored value", name, sc)
		}
		v, err := k.open(st.Sealed, aad(sc, name))
		if err != nil {
			return nil, fmt.Errorf("%s in %s: %w", name, sc, err)
		}
		out[name] = v
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("no secret %s for %s or organisation %s (raibid secret set): %w", strings.Join(missing, ", "), repo, owner, ErrNotFound)
	}
	return out, nil
}

// Reencrypt seals every stored secret again with the keyring's current key
// and returns how many it changed. Each secret is replaced only if it did
// not change meanwhile (WATCH), so a concurrent Set is never undone.
func (s *Store) Reencrypt(ctx context.Context) (int, error) {
	k, err := s.keys()
	if err != nil {
		return 0, err
	}
	scopes, err := s.rdb.SMembers(ctx, s.indexKey()).Result()
	if err != nil {
		return 0, fmt.Errorf("secrets: rotate: %w", err)
	}
	changed := 0
	for _, scText := range scopes {
		var sc Scope
		if org, ok := strings.CutPrefix(scText, "org:"); ok {
			sc = Scope{Org: org}
		} else {
			sc = Scope{Repo: strings.TrimPrefix(scText, "repo:")}
		}
		hk := s.hashKey(sc)
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			h, err := tx.HGetAll(ctx, hk).Result()
			if err != nil {
				return err
			}
			updates := map[string]any{}
			for name, raw := range h {
				var st stored
				if err := json.Unmarshal([]byte(raw), &st); err != nil {
					return fmt.Errorf("%s in %s: malformed stored value", name, sc)
				}
				if strings.HasPrefix(st.Sealed, k.CurrentID()+":") {
					continue
				}
				v, err := k.open(st.Sealed, aad(sc, name))
				if err != nil {
					return fmt.Errorf("%s in %s: %w", name, sc, err)
				}
				st.Sealed = k.seal(v, aad(sc, name))
				b, _ := json.Marshal(st)
				updates[name] = b
			}
			if len(updates) == 0 {
				return nil
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.HSet(ctx, hk, updates)
				return nil
			})
			if err == nil {
				changed += len(updates)
			}
			return err
		}, hk)
		if err != nil {
			return changed, fmt.Errorf("secrets: rotate: %w", err)
		}
	}
	return changed, nil
}
