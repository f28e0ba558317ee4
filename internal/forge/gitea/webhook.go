// Package gitea understands Gitea: webhook payloads (push, pull_request,
// create) and their headers, and the REST calls raibid makes (commit
// statuses, branches, mirror migration and sync). It turns a delivery into a
// decision (build this commit, cancel this pull request's jobs, or ignore it
// and why) and knows nothing of queues or HTTP servers.
package gitea

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/raibid-labs/raibid-ci/internal/ci"
)

// Webhook headers Gitea sends.
const (
	HeaderEvent     = "X-Gitea-Event"
	HeaderDelivery  = "X-Gitea-Delivery"
	HeaderSignature = "X-Gitea-Signature"
)

// ErrMalformed wraps every reason a payload cannot be used.
var ErrMalformed = errors.New("gitea: malformed push payload")

// zeroSHA is the "after" of a branch deletion (SHA-1 and SHA-256 repositories).
func isZeroSHA(s string) bool { return s != "" && strings.Trim(s, "0") == "" }

type user struct {
	Name     string `json:"name"`
	Email    string `json:"email"`
	Username string `json:"username"`
	Login    string `json:"login"`
}

type commit struct {
	ID       string   `json:"id"`
	Message  string   `json:"message"`
	Author   user     `json:"author"`
	Added    []string `json:"added"`
	Removed  []string `json:"removed"`
	Modified []string `json:"modified"`
}

type repository struct {
	FullName string `json:"full_name"`
	CloneURL string `json:"clone_url"`
	HTMLURL  string `json:"html_url"`
}

type pushPayload struct {
	Ref          string      `json:"ref"`
	Before       string      `json:"before"`
	After        string      `json:"after"`
	Commits      []commit    `json:"commits"`
	TotalCommits int         `json:"total_commits"`
	HeadCommit   *commit     `json:"head_commit"`
	Repository   *repository `json:"repository"`
	Pusher       *user       `json:"pusher"`
	Sender       *user       `json:"sender"`
}

// Push is a push to a branch, or of a tag (Tag set, Branch empty), that
// should build.
type Push struct {
	Repo     string // owner/name
	CloneURL string
	Branch   string
	Tag      string
	Commit   string
	Before   string // the branch's commit before the push ("" for a new branch)
	// Changed is every file the push's commits added, removed or changed,
	// when the payload listed all of its commits; nil otherwise.
	Changed []string
	Author  string
	Message string
}

// Decision is what to do with one delivery: build Push or PullRequest,
// cancel the builds of Closed, or ignore it for Ignored.
type Decision struct {
	Push        *Push
	PullRequest *PullRequest
	Closed      *PullRequest
	Ignored     string
}

// ParsePush reads a push payload. A branch push or a tag push builds; branch
// and tag deletions and pushes to other refs are ignored with a reason; a
// payload that is not JSON or lacks what a build needs is ErrMalformed.
func ParsePush(body []byte) (Decision, error) {
	var p pushPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return Decision{}, fmt.Errorf("%w: %v", ErrMalformed, jsonError(err))
	}
	if p.Repository == nil || p.Repository.FullName == "" {
		return Decision{}, fmt.Errorf("%w: repository.full_name is missing", ErrMalformed)
	}
	if p.Ref == "" {
		return Decision{}, fmt.Errorf("%w: ref is missing", ErrMalformed)
	}
	var branch, tag string
	switch {
	case strings.HasPrefix(p.Ref, "refs/tags/"):
		tag = strings.TrimPrefix(p.Ref, "refs/tags/")
		if isZeroSHA(p.After) {
			return Decision{Ignored: "tag " + tag + " deleted"}, nil
		}
	case strings.HasPrefix(p.Ref, "refs/heads/"):
		branch = strings.TrimPrefix(p.Ref, "refs/heads/")
		if isZeroSHA(p.After) {
			return Decision{Ignored: "branch " + branch + " deleted"}, nil
		}
	default:
		return Decision{Ignored: "push to " + p.Ref + " is not a branch or a tag"}, nil
	}
	if !ci.ValidCommit(p.After) {
		return Decision{}, fmt.Errorf("%w: after %q is not a commit id", ErrMalformed, ci.Truncate(p.After, 80))
	}
	if p.Repository.CloneURL == "" {
		return Decision{}, fmt.Errorf("%w: repository.clone_url is missing", ErrMalformed)
	}
	push := &Push{Repo: p.Repository.FullName, CloneURL: p.Repository.CloneURL, Branch: branch, Tag: tag, Commit: p.After}
	if branch != "" && ci.ValidCommit(p.Before) && !isZeroSHA(p.Before) {
		push.Before = p.Before
		// Gitea lists at most a few commits of a big push; only a complete
		// list says every file that changed.
		if len(p.Commits) > 0 && p.TotalCommits == len(p.Commits) {
			push.Changed = changedFiles(p.Commits)
		}
	}
	head := p.HeadCommit
	if head == nil {
		for i := range p.Commits {
			if p.Commits[i].ID == p.After {
				head = &p.Commits[i]
			}
		}
	}
	if head != nil {
		push.Message = head.Message
		push.Author = firstNonEmpty(head.Author.Username, head.Author.Name)
	}
	if push.Author == "" && p.Pusher != nil {
		push.Author = firstNonEmpty(p.Pusher.Login, p.Pusher.Username, p.Pusher.Name)
	}
	return Decision{Push: push}, nil
}

// changedFiles is the sorted union of the files the commits touched.
func changedFiles(commits []commit) []string {
	seen := map[string]bool{}
	for _, c := range commits {
		for _, list := range [][]string{c.Added, c.Removed, c.Modified} {
			for _, f := range list {
				seen[f] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for f := range seen {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

type prBranch struct {
	Ref  string      `json:"ref"`
	SHA  string      `json:"sha"`
	Repo *repository `json:"repo"`
}

type pullRequestPayload struct {
	Action      string `json:"action"`
	Number      int    `json:"number"`
	PullRequest *struct {
		Number int       `json:"number"`
		Title  string    `json:"title"`
		User   *user     `json:"user"`
		Base   *prBranch `json:"base"`
		Head   *prBranch `json:"head"`
	} `json:"pull_request"`
	Repository *repository `json:"repository"`
}

// PullRequest is a pull request to build (its head commit, cloned from the
// head repository, in the base repository's name) or whose builds to cancel.
type PullRequest struct {
	Repo       string // the base repository, owner/name
	CloneURL   string // the head repository's
	Number     int
	BaseBranch string
	HeadBranch string
	Commit     string // the head commit
	BaseCommit string
	FromFork   bool
	Author     string
	Title      string
}

// ParsePullRequest reads a pull_request payload: opened, reopened and
// synchronized build the head commit; closed (merged or not) cancels the
// pull request's builds; other actions (edited, labelled, …) are ignored.
func ParsePullRequest(body []byte) (Decision, error) {
	var p pullRequestPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return Decision{}, fmt.Errorf("%w: %v", ErrMalformed, jsonError(err))
	}
	pr := p.PullRequest
	switch {
	case pr == nil || pr.Base == nil || pr.Head == nil:
		return Decision{}, fmt.Errorf("%w: pull_request.base and .head are needed", ErrMalformed)
	case pr.Base.Repo == nil || pr.Base.Repo.FullName == "":
		return Decision{}, fmt.Errorf("%w: pull_request.base.repo.full_name is missing", ErrMalformed)
	case pr.Number < 1:
		return Decision{}, fmt.Errorf("%w: pull_request.number is missing", ErrMalformed)
	}
	out := &PullRequest{Repo: pr.Base.Repo.FullName, Number: pr.Number, BaseBranch: pr.Base.Ref,
		HeadBranch: pr.Head.Ref, Commit: pr.Head.SHA, BaseCommit: pr.Base.SHA, Title: pr.Title}
	if pr.User != nil {
		out.Author = firstNonEmpty(pr.User.Login, pr.User.Username, pr.User.Name)
	}
	switch p.Action {
	case "closed":
		return Decision{Closed: out}, nil
	case "opened", "reopened", "synchronized":
	default:
		return Decision{Ignored: fmt.Sprintf("pull request #%d %s", pr.Number, p.Action)}, nil
	}
	if pr.Head.Repo == nil || pr.Head.Repo.CloneURL == "" {
		// Gitea sends no head repository when the fork was deleted.
		return Decision{Ignored: fmt.Sprintf("pull request #%d has no head repository", pr.Number)}, nil
	}
	if !ci.ValidCommit(pr.Head.SHA) {
		return Decision{}, fmt.Errorf("%w: pull_request.head.sha %q is not a commit id", ErrMalformed, ci.Truncate(pr.Head.SHA, 80))
	}
	out.CloneURL = pr.Head.Repo.CloneURL
	out.FromFork = !strings.EqualFold(pr.Head.Repo.FullName, pr.Base.Repo.FullName)
	if !ci.ValidCommit(out.BaseCommit) {
		out.BaseCommit = ""
	}
	return Decision{PullRequest: out}, nil
}

type createPayload struct {
	SHA        string      `json:"sha"`
	Ref        string      `json:"ref"`
	RefType    string      `json:"ref_type"`
	Repository *repository `json:"repository"`
}

// ParseCreate reads a create payload: a new tag builds (the same build its
// tag push asks for: the server dedupes the two); a new branch is ignored,
// its push builds it.
func ParseCreate(body []byte) (Decision, error) {
	var p createPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return Decision{}, fmt.Errorf("%w: %v", ErrMalformed, jsonError(err))
	}
	if p.Repository == nil || p.Repository.FullName == "" || p.Repository.CloneURL == "" {
		return Decision{}, fmt.Errorf("%w: repository.full_name and clone_url are needed", ErrMalformed)
	}
	if p.RefType != "tag" {
		return Decision{Ignored: "created " + p.RefType + " " + p.Ref + " (its push builds it)"}, nil
	}
	if !ci.ValidCommit(p.SHA) {
		return Decision{}, fmt.Errorf("%w: sha %q is not a commit id", ErrMalformed, ci.Truncate(p.SHA, 80))
	}
	tag := strings.TrimPrefix(p.Ref, "refs/tags/")
	return Decision{Push: &Push{Repo: p.Repository.FullName, CloneURL: p.Repository.CloneURL, Tag: tag, Commit: p.SHA}}, nil
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// jsonError says where JSON went wrong without echoing the payload.
func jsonError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %s has the wrong type (%s)", typ.Field, typ.Value)
	}
	return "invalid JSON"
}
