// Package forge holds what raibid shares with the code forges it talks to:
// webhook signature checks and reading their API errors. Each forge has its own sub-package (gitea, github)
// for payloads and API clients.
package forge

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// ValidHMACSHA256 reports whether sigHex is the hex HMAC-SHA256 of body under
// secret. The comparison takes the same time wherever the first difference is,
// so the signature cannot be guessed byte by byte.
func ValidHMACSHA256(secret, body []byte, sigHex string) bool {
	if len(secret) == 0 || sigHex == "" {
		return false
	}
	got, err := hex.DecodeString(sigHex)
	if err != nil {
		return false
	}
	return hmac.Equal(got, SignHMACSHA256(secret, body))
}

// SignHMACSHA256 returns the HMAC-SHA256 of body under secret.
func SignHMACSHA256(secret, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return m.Sum(nil)
}

// SignHex is SignHMACSHA256 as lower-case hex, the form Gitea sends.
func SignHex(secret, body []byte) string {
	return hex.EncodeToString(SignHMACSHA256(secret, body))
}

// APIMessage is the "message" of a forge's JSON error body (GitHub and Gitea
// both use that field), or a short excerpt of the body.
func APIMessage(body []byte) string {
	var e struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil && e.Message != "" {
		return e.Message
	}
	s := string(bytes.TrimSpace(body))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
