package store

import "github.com/raibid-labs/raibid-ci/internal/ci"

// Keys names raibid's Redis keys under one prefix. The Lua scripts of
// internal/jobs build the per-status, per-repository and per-branch index
// names the same way (prefix .. 'jobs:status:' .. status).
type Keys struct{ prefix string }

// KeysWithPrefix names the keys under prefix.
func KeysWithPrefix(prefix string) Keys { return Keys{prefix} }

// Prefix goes in front of every key.
func (k Keys) Prefix() string { return k.prefix }

// Job is a job's hash, Log its log stream.
func (k Keys) Job(id string) string { return k.prefix + "job:" + id }
func (k Keys) Log(id string) string { return k.prefix + "job:" + id + ":log" }

// Index holds every job id, ordered by id = by creation time; Short holds
// them with their last 8 characters first (ShortMember). Both, and the
// filter indexes, are paged (index.go): these are the names of indexes,
// not of keys.
func (k Keys) Index() string { return k.prefix + "jobs" }
func (k Keys) Short() string { return k.prefix + "jobs:short" }

// The filter indexes, ordered like Index.
func (k Keys) Status(st ci.Status) string { return k.prefix + "jobs:status:" + string(st) }
func (k Keys) Repo(repo string) string    { return k.prefix + "jobs:repo:" + repo }
func (k Keys) Branch(b string) string     { return k.prefix + "jobs:branch:" + b }
func (k Keys) Group(g string) string      { return k.prefix + "jobs:group:" + g }

// Event indexes a job by its event, for every event but push: most jobs are
// pushes, so an index of them would cost every job an entry to serve a
// filter that the main index serves as well (a push filter walks it).
func (k Keys) Event(e string) string { return k.prefix + "jobs:event:" + e }

// Expiry schedules finished jobs' removal (score: when, in ms).
func (k Keys) Expiry() string { return k.prefix + "jobs:expiry" }

// Agent is an agent's heartbeat hash; Agents indexes them by last beat.
func (k Keys) Agent(name string) string { return k.prefix + "agent:" + name }
func (k Keys) Agents() string           { return k.prefix + "agents" }

// Delivery remembers a webhook delivery id (dedupe).
func (k Keys) Delivery(id string) string { return k.prefix + "delivery:" + id }

// Events is the pub/sub channel of job and queue changes.
func (k Keys) Events() string { return k.prefix + "events" }
