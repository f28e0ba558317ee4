package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/forge/gitea"
	"github.com/raibid-labs/raibid-ci/internal/jobs"
	"github.com/raibid-labs/raibid-ci/internal/pipeline"
)

// plan makes the run's job what its pipeline asks before a step runs (see
// jobs.Plan): the server queued it without reading the pipeline, so this
// agent, holding the checkout, is the first to know that it is a matrix
// (it becomes the first combination, the others are queued beside it), or
// needs a GPU or a pod with the pipeline's image services (it is handed
// to an agent that has them). It reports whether the job runs here.
func (a *Agent) plan(ctx context.Context, run *jobs.Claimed, p *pipeline.Pipeline, sink *logSink) bool {
	job := run.Job
	plan := jobs.Plan{GPUs: job.GPUs, Sidecars: job.Sidecars}
	changed := false
	if p.Matrix != nil && job.Group == "" {
		plan.Matrix = p.Matrix.Combinations()
		changed = true
	}
	if g := p.GPUs(); g > 0 && job.GPUs == 0 {
		plan.GPUs, changed = g, true
		if to, ok := a.opts.GPUJobs.(*jobs.Lifecycle); ok && to != nil {
			plan.To = to
		}
	}
	if a.opts.ShapedPod {
		// A pod the executor made for this job has the sidecars the job
		// named when it was launched; a pipeline with others needs a pod
		// of its own.
		if want := imageServices(p); !slices.Equal(want, job.Sidecars) {
			plan.Sidecars, plan.Handoff, changed = want, true, true
		}
	}
	if !changed {
		return true
	}
	planned, err := run.Plan(ctx, plan)
	switch {
	case errors.Is(err, jobs.ErrLeaseLost), errors.Is(err, ci.ErrConflict):
		a.log.Warn("plan dropped", "job_id", job.ID, "err", err)
		return false
	case errors.Is(err, ci.ErrInvalid):
		// What the pipeline asks cannot be queued: no retry will change it.
		msg := "plan: " + err.Error()
		sink.Line("pipeline", "system", msg)
		sink.Flush()
		a.finish(run, ci.StatusError, msg, nil, nil)
		return false
	case err != nil:
		msg := "plan: " + err.Error()
		sink.Line("pipeline", "system", msg)
		sink.Flush()
		a.retry(run, msg)
		return false
	}
	if len(plan.Matrix) > 0 {
		sink.Line("pipeline", "system", fmt.Sprintf("matrix of %s: this job is %s; queued %s", ci.Plural(len(plan.Matrix), "combination"),
			ci.MatrixLabel(plan.Matrix[0]), siblingLabels(planned.Siblings)))
		a.postPlanned(run.Job, planned)
	}
	if planned.HandedOff {
		why := "a pod with the pipeline's services"
		if plan.To != nil {
			why = fmt.Sprintf("an agent with %s", ci.Plural(plan.GPUs, "GPU"))
		}
		sink.Line("pipeline", "system", "handed over: the pipeline needs "+why)
		sink.Flush()
		a.log.Info("job handed over", "job_id", job.ID, "needs", why)
		return false
	}
	return true
}

// postPlanned posts the pending statuses of a matrix just planned: the
// aggregate's (the plain context, which the server's pending status for
// the event already holds), this job's combination and its siblings'.
func (a *Agent) postPlanned(first *ci.Job, planned jobs.Planned) {
	if a.opts.Status == nil || first.Commit == "" {
		return
	}
	target := ""
	if a.opts.PublicURL != "" {
		target = strings.TrimRight(a.opts.PublicURL, "/") + "/ui/?group=" + first.Group
	}
	sts := []gitea.CommitStatus{{State: gitea.StatePending, TargetURL: target,
		Description: fmt.Sprintf("matrix of %d jobs queued", len(planned.Siblings)+1), Context: gitea.ContextOf(first.Event, "")}}
	for _, j := range append([]*ci.Job{first}, planned.Siblings...) {
		sts = append(sts, gitea.CommitStatus{State: gitea.StatePending, TargetURL: ci.PageURL(a.opts.PublicURL, j.ID),
			Description: "queued", Context: gitea.ContextOf(j.Event, ci.MatrixLabel(j.Matrix))})
	}
	ctx, cancel := final()
	defer cancel()
	for _, st := range sts {
		if err := a.opts.Status.PostStatus(ctx, first.Repo, first.Commit, st); err != nil {
			a.log.Warn("pending commit status not stored", "job_id", first.ID, "context", st.Context, "err", err)
		}
	}
}

// imageServices is what a pipeline's services with an image need beside
// the agent (the executor's sidecars).
func imageServices(p *pipeline.Pipeline) []ci.Sidecar {
	var out []ci.Sidecar
	for _, svc := range p.Services {
		if svc.Image != "" {
			out = append(out, ci.Sidecar{Name: svc.Name, Image: svc.Image, Port: svc.Port})
		}
	}
	return out
}

func siblingLabels(js []*ci.Job) string {
	if len(js) == 0 {
		return "nothing else"
	}
	l := make([]string, len(js))
	for i, j := range js {
		l[i] = ci.MatrixLabel(j.Matrix)
	}
	return strings.Join(l, " ")
}
