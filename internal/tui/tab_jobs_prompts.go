package tui

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	tea "charm.land/bubbletea/v2"

	"github.com/raibid-labs/raibid-ci/internal/api"
	"github.com/raibid-labs/raibid-ci/internal/ci"
)

// The Jobs tab's prompts: the one-line inputs (filter, log search), the
// cancel question (one job or a whole matrix) and the new-job prompt.

// editInput is what the one-line inputs (filter, log search) share: esc
// leaves the input, backspace deletes a character, text is typed.
func (t *jobsTab) editInput(k tea.KeyPressMsg) {
	switch k.String() {
	case "esc":
		t.mode = modeNormal
	case "backspace":
		if r := []rune(t.input); len(r) > 0 {
			t.input = string(r[:len(r)-1])
		}
	default:
		t.input += k.Text
	}
}

// cancelTarget is the job the cancel question is about.
func (t *jobsTab) cancelTarget() *ci.Job {
	if t.detail != nil {
		return t.detail
	}
	return t.selected()
}

func (t *jobsTab) confirmKey(key string) tea.Cmd {
	t.mode = modeNormal
	if key != "y" && key != "Y" {
		t.status = "not cancelled"
		return nil
	}
	target := t.cancelTarget()
	if target == nil {
		return nil
	}
	id, ctx, src := target.ID, t.ctx, t.src
	t.status = "cancelling " + id
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		defer cancel()
		j, err := src.CancelJob(ctx, id)
		if err != nil {
			return actionMsg{err: fmt.Errorf("cancel %s: %w", id, err)}
		}
		return actionMsg{text: "job " + j.ID + " " + string(j.Status)}
	}
}

func (t *jobsTab) newJobKey(k tea.KeyPressMsg) tea.Cmd {
	field := &t.newRepo
	if t.newField == 1 {
		field = &t.newBranch
	}
	switch k.String() {
	case "esc":
		t.mode = modeNormal
		t.status = "no job started"
	case "tab", "shift+tab":
		t.newField, t.newFresh = 1-t.newField, true
	case "enter":
		if t.newField == 0 {
			t.newField, t.newFresh = 1, true
			return nil
		}
		n, err := t.newJobRequest()
		if err != nil {
			t.status = err.Error()
			return nil
		}
		t.mode = modeNormal
		ctx, src := t.ctx, t.src
		t.status = "starting " + n.Repo + "@" + n.Branch
		return func() tea.Msg {
			ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
			defer cancel()
			j, err := src.CreateJob(ctx, n)
			if err != nil {
				return actionMsg{err: fmt.Errorf("start %s@%s: %w", n.Repo, n.Branch, err)}
			}
			return actionMsg{text: "started job " + j.ID}
		}
	case "backspace":
		if t.newFresh {
			*field, t.newFresh = "", false
		} else if r := []rune(*field); len(r) > 0 {
			*field = string(r[:len(r)-1])
		}
	default:
		if k.Text != "" {
			if t.newFresh {
				*field, t.newFresh = "", false
			}
			*field += k.Text
		}
	}
	return nil
}

// newJobRequest is the job the prompt asks for. The repo field takes
// owner/name (a repository seen in earlier jobs is cloned from where they
// were; others from the server's Gitea) or a local path, which raibid up
// builds directly.
func (t *jobsTab) newJobRequest() (api.NewJob, error) {
	repo, branch := strings.TrimSpace(t.newRepo), strings.TrimSpace(t.newBranch)
	if repo == "" || branch == "" {
		return api.NewJob{}, fmt.Errorf("repo and branch are both needed")
	}
	n := api.NewJob{Repo: repo, Branch: branch}
	if strings.HasPrefix(repo, "/") {
		path := filepath.Clean(repo)
		name := strings.Trim(unsafeNameChars.ReplaceAllString(filepath.Base(path), "-"), "-.")
		n.Repo, n.CloneURL = "local/"+name, path
		return n, nil
	}
	for _, j := range t.jobs {
		if j.Repo == repo && j.CloneURL != "" {
			n.CloneURL = j.CloneURL
			break
		}
	}
	return n, nil
}

func (t *jobsTab) prompt() string {
	switch t.mode {
	case modeFilter:
		return " filter: " + t.input + "▏" + faint.Render("  (a status — failed includes error — or repo text; enter, esc)")
	case modeConfirmCancel:
		id := ""
		if j := t.cancelTarget(); j != nil {
			id = j.ID
		}
		return yellow.Render(" cancel job " + id + "? y/n")
	case modeLogSearch:
		return " search log: " + t.input + "▏" + faint.Render("  (enter searches from the end, esc cancels)")
	case modeNewJob:
		repo, branch := t.newRepo, t.newBranch
		if t.newField == 0 {
			repo += "▏"
		} else {
			branch += "▏"
		}
		return " new job  repo: " + repo + "  branch: " + branch + faint.Render("  (owner/name or a local path; tab, enter, esc)")
	}
	return ""
}

// groupAction cancels a matrix's queued and running jobs, or retries what
// of it did not pass.
func (t *jobsTab) groupAction(group string, cancel bool) tea.Cmd {
	ctx, src := t.ctx, t.src
	if cancel {
		t.status = "cancelling the matrix"
	} else {
		t.status = "retrying the matrix"
	}
	return func() tea.Msg {
		ctx, stop := context.WithTimeout(ctx, fetchTimeout)
		defer stop()
		if cancel {
			ids, err := src.CancelGroup(ctx, group)
			if err != nil {
				return actionMsg{err: fmt.Errorf("cancel the matrix: %w", err)}
			}
			return actionMsg{text: fmt.Sprintf("cancelled %s of the matrix", ci.Plural(len(ids), "job"))}
		}
		jobs, err := src.RetryGroup(ctx, group)
		if err != nil {
			return actionMsg{err: fmt.Errorf("retry the matrix: %w", err)}
		}
		return actionMsg{text: fmt.Sprintf("retrying %s of the matrix", ci.Plural(len(jobs), "job"))}
	}
}
