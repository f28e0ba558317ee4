package github

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/raibid-labs/raibid-ci/internal/forge"
)

// Webhook headers GitHub sends.
const (
	HeaderEvent     = "X-GitHub-Event"
	HeaderDelivery  = "X-GitHub-Delivery"
	HeaderSignature = "X-Hub-Signature-256"
)

// ErrMalformed wraps every reason a payload cannot be used.
var ErrMalformed = errors.New("github: malformed push payload")

// ValidSignature checks an X-Hub-Signature-256 header ("sha256=<hex>") of body.
func ValidSignature(secret, body []byte, header string) bool {
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	return ok && forge.ValidHMACSHA256(secret, body, hexSig)
}

// Sign is the X-Hub-Signature-256 value of body under secret.
func Sign(secret, body []byte) string {
	return "sha256=" + forge.SignHex(secret, body)
}

// Push is the part of a push event mirroring needs: which repository moved.
type Push struct {
	Repo  string // owner/name on GitHub
	Ref   string
	After string
}

// ParsePush reads a push event payload.
func ParsePush(body []byte) (*Push, error) {
	var p struct {
		Ref        string `json:"ref"`
		After      string `json:"after"`
		Repository *struct {
			FullName string `json:"full_name"`
		} `json:"repository"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if p.Repository == nil || !strings.Contains(p.Repository.FullName, "/") {
		return nil, fmt.Errorf("%w: repository.full_name is missing", ErrMalformed)
	}
	return &Push{Repo: p.Repository.FullName, Ref: p.Ref, After: p.After}, nil
}
