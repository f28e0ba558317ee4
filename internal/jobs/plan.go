package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/store"
)

// Planning happens on the agent, Buildkite's way: the server queues one job
// per event without reading a file (so a webhook's answer never waits for
// the forge), and the agent that claims it, holding the checkout, reads the
// pipeline and plans what the event asks for. A pipeline that needs another
// kind of agent (a GPU, image services beside it) hands the job over; a
// matrix turns the job into its first combination and queues the others as
// its siblings, in a group named by the job's id.

// Plan is what a job's pipeline asks of it.
type Plan struct {
	// Matrix is the pipeline's combinations, when the job is not yet a
	// member of a group: the job becomes the first, the rest are queued.
	Matrix []map[string]string
	// GPUs and Sidecars are what the job's agent needs; set on the job and
	// its siblings.
	GPUs     int
	Sidecars []ci.Sidecar
	// To is the lifecycle whose stream the job and its siblings belong in
	// (the GPU stream); nil: this run's own. With To set, or with
	// Handoff, the job goes back to pending there instead of running here.
	To *Lifecycle
	// Handoff: the job needs another kind of agent even in the same stream
	// (a pod with the pipeline's sidecars).
	Handoff bool
}

// Planned is what a Plan did.
type Planned struct {
	// Siblings are the group's other jobs (created now or by an earlier
	// delivery of this run's job).
	Siblings []*ci.Job
	// HandedOff: the job is pending again for another agent; the run is
	// over without a verdict.
	HandedOff bool
}

// planScript turns a running job into what its plan says, in one step:
// joins its matrix group (first combination), sets what its agent needs,
// and, when handed off, puts it back to pending as a new entry in the
// target stream (KEYS[6]) — not counted as a delivery — and acks this one.
// ARGV 9 entry id, 10 consumer, 11 group to join (” none), 12 hand off
// ('1'), 13 the target's consumer group, 14 deliveries carried over, field
// pairs from 15. Returns {'lost'}, {'ended'}, {'planned'} or {'moved', id}.
var planScript = redis.NewScript(prelude + `
local entry = ARGV[9]
if not holds(entry, ARGV[10]) then return {'lost'} end
local cur = redis.call('HGET', JOB, 'status')
if not cur or FINAL[cur] then
  redis.call('XACK', STREAM, GROUP, entry)
  return {'ended'}
end
if ARGV[11] ~= '' then index_add(P .. 'jobs:group:' .. ARGV[11], ID) end
if ARGV[12] ~= '1' then
  move('running', '', rest(15))
  return {'planned'}
end
local g = redis.pcall('XGROUP', 'CREATE', KEYS[6], ARGV[13], '0', 'MKSTREAM')
if type(g) == 'table' and g.err and not string.find(g.err, 'BUSYGROUP') then
  return redis.error_reply(g.err)
end
local f = rest(15)
for _, k in ipairs({'agent', 'steps', 'error', 'upload_token'}) do f[#f + 1] = k; f[#f + 1] = '' end
move('pending,running', 'pending', f)
local sid = redis.call('XADD', KEYS[6], '*', unpack(entry_fields(entry, {prior_deliveries = ARGV[14]})))
redis.call('XACK', STREAM, GROUP, entry)
return {'moved', sid}
`)

// Plan makes the run's job what its pipeline asks (see Plan). Siblings are
// queued first, each with a delivery id derived from the job's, so a plan
// interrupted between the two steps (the agent died) and made again by the
// next delivery queues nothing twice.
func (r *Claimed) Plan(ctx context.Context, p Plan) (Planned, error) {
	to := p.To
	if to == nil {
		to = r.l
	}
	var out Planned
	fields := map[string]string{"gpus": strconv.Itoa(p.GPUs), "sidecars": ""}
	if p.GPUs == 0 {
		fields["gpus"] = ""
	}
	if len(p.Sidecars) > 0 {
		b, _ := json.Marshal(p.Sidecars)
		fields["sidecars"] = string(b)
	}
	group := ""
	if len(p.Matrix) > 0 && r.Job.Group == "" {
		group = r.Job.ID
		for i, combo := range p.Matrix[1:] {
			j := r.sibling(combo, group, p)
			id, created, err := to.Submit(ctx, j, "plan:"+r.Job.ID+"#"+strconv.Itoa(i+1))
			if err != nil {
				return out, fmt.Errorf("queue matrix job %s: %w", ci.MatrixLabel(combo), err)
			}
			if !created {
				if j, err = r.l.store.Get(ctx, id); err != nil {
					return out, err
				}
			}
			out.Siblings = append(out.Siblings, j)
		}
		b, _ := json.Marshal(p.Matrix[0])
		fields["matrix"], fields["group"] = string(b), group
	}
	handoff := p.Handoff || to != r.l
	pairs := make([]any, 0, 2*len(fields))
	for k, v := range fields {
		pairs = append(pairs, k, v)
	}
	flag := "0"
	if handoff {
		flag = "1"
	}
	args := append([]any{r.Entry.ID, r.Entry.Consumer, group, flag, to.qkeys.Group, r.Entry.Deliveries - 1}, pairs...)
	res, err := replyStrings(r.l.stepWith(ctx, planScript, []string{to.qkeys.Stream}, r.Job.ID, time.Time{}, args...))
	if err != nil {
		return out, store.Wrap("plan job", err)
	}
	switch res[0] {
	case "lost":
		return out, fmt.Errorf("plan job %s: %w", r.Job.ID, ErrLeaseLost)
	case "ended":
		return out, fmt.Errorf("job %s ended while it was planned: %w", r.Job.ID, ci.ErrConflict)
	}
	if group != "" {
		r.Job.Matrix, r.Job.Group = p.Matrix[0], group
	}
	r.Job.GPUs, r.Job.Sidecars = p.GPUs, p.Sidecars
	if res[0] == "moved" {
		out.HandedOff = true
		j := *r.Job
		j.Status, j.Agent, j.Steps, j.Error, j.StartedAt = ci.StatusPending, "", nil, "", nil
		to.submitted(ctx, &j)
	}
	return out, nil
}

// sibling is a new job for another combination of the run's job's matrix.
func (r *Claimed) sibling(combo map[string]string, group string, p Plan) *ci.Job {
	o := r.Job
	return &ci.Job{
		Repo: o.Repo, CloneURL: o.CloneURL, Branch: o.Branch, Commit: o.Commit, Before: o.Before,
		Author: o.Author, Message: o.Message, Trigger: o.Trigger, Event: o.Event, Tag: o.Tag,
		PullRequest: o.PullRequest, Changed: o.Changed,
		Matrix: combo, Group: group, GPUs: p.GPUs, Sidecars: p.Sidecars,
	}
}
