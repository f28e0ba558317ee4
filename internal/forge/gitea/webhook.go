// Package gitea understands Gitea: push webhook payloads and their headers,
// and the REST calls raibid makes (commit statuses, mirror migration and sync).
// It turns a delivery into a decision (build this commit, or ignore it and
// why) and knows nothing of queues or HTTP servers.
package gitea

import (
	"encoding/json"
	"errors"
	"fmt"
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
	ID      string `json:"id"`
	Message string `json:"message"`
	Author  user   `json:"author"`
}

type pushPayload struct {
	Ref        string   `json:"ref"`
	Before     string   `json:"before"`
	After      string   `json:"after"`
	Commits    []commit `json:"commits"`
	HeadCommit *commit  `json:"head_commit"`
	Repository *struct {
		FullName string `json:"full_name"`
		CloneURL string `json:"clone_url"`
		HTMLURL  string `json:"html_url"`
	} `json:"repository"`
	Pusher *user `json:"pusher"`
	Sender *user `json:"sender"`
}

// Push is a branch push that should build.
type Push struct {
	Repo     string // owner/name
	CloneURL string
	Branch   string
	Commit   string
	Author   string
	Message  string
}

// Decision is what to do with one delivery: build Push, or ignore for Ignored.
type Decision struct {
	Push    *Push
	Ignored string
}

// ParsePush reads a push payload. Tag pushes, branch deletions and pushes to
// refs other than branches are ignored with a reason; a payload that is not
// JSON or lacks what a build needs is ErrMalformed.
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
	switch {
	case strings.HasPrefix(p.Ref, "refs/tags/"):
		return Decision{Ignored: "tag push " + strings.TrimPrefix(p.Ref, "refs/tags/")}, nil
	case !strings.HasPrefix(p.Ref, "refs/heads/"):
		return Decision{Ignored: "push to " + p.Ref + " is not a branch"}, nil
	}
	branch := strings.TrimPrefix(p.Ref, "refs/heads/")
	if isZeroSHA(p.After) {
		return Decision{Ignored: "branch " + branch + " deleted"}, nil
	}
	if !ci.ValidCommit(p.After) {
		return Decision{}, fmt.Errorf("%w: after %q is not a commit id", ErrMalformed, ci.Truncate(p.After, 80))
	}
	if p.Repository.CloneURL == "" {
		return Decision{}, fmt.Errorf("%w: repository.clone_url is missing", ErrMalformed)
	}
	push := &Push{Repo: p.Repository.FullName, CloneURL: p.Repository.CloneURL, Branch: branch, Commit: p.After}
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
