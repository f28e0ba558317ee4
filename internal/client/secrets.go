package client

import (
	"context"
	"net/url"
	"time"
)

// Secret is what the server tells of a pipeline secret: never its value.
type Secret struct {
	Name      string    `json:"name"`
	Scope     string    `json:"scope"`
	UpdatedAt time.Time `json:"updated_at"`
}

// SecretScope is a repository ("owner/name") or, with Org, an owner.
type SecretScope struct {
	Repo string
	Org  string
}

func (s SecretScope) path() string {
	if s.Org != "" {
		return "/orgs/" + url.PathEscape(s.Org) + "/secrets"
	}
	owner, name := splitRepo(s.Repo)
	return "/repos/" + url.PathEscape(owner) + "/" + url.PathEscape(name) + "/secrets"
}

func splitRepo(repo string) (string, string) {
	for i := range len(repo) {
		if repo[i] == '/' {
			return repo[:i], repo[i+1:]
		}
	}
	return repo, ""
}

// SetSecret stores a secret's value (sent in the body, never in the URL).
func (c *Client) SetSecret(ctx context.Context, sc SecretScope, name, value string) (*Secret, error) {
	var out Secret
	err := c.do(ctx, "PUT", sc.path()+"/"+url.PathEscape(name), map[string]string{"value": value}, &out)
	return &out, err
}

// Secrets lists a scope's secrets.
func (c *Client) Secrets(ctx context.Context, sc SecretScope) ([]Secret, error) {
	var out []Secret
	err := c.do(ctx, "GET", sc.path(), nil, &out)
	return out, err
}

// DeleteSecret removes a secret.
func (c *Client) DeleteSecret(ctx context.Context, sc SecretScope, name string) error {
	return c.do(ctx, "DELETE", sc.path()+"/"+url.PathEscape(name), nil, nil)
}

// RotateSecretsKey re-encrypts every secret under a new key.
func (c *Client) RotateSecretsKey(ctx context.Context) (reencrypted int, newKey bool, err error) {
	var out struct {
		Reencrypted int  `json:"reencrypted"`
		NewKey      bool `json:"new_key"`
	}
	err = c.do(ctx, "POST", "/secrets/rotate-key", nil, &out)
	return out.Reencrypted, out.NewKey, err
}
