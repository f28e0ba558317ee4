package web

import (
	"testing"
	"time"
)

func TestSessionsIssueValidateExpire(t *testing.T) {
	s := NewSessions("the-api-token")
	now := time.Unix(1_800_000_000, 0)
	c := s.Issue(now)
	if !s.Valid(c, now.Add(time.Hour)) {
		t.Fatal("fresh session invalid")
	}
	if s.Valid(c, now.Add(SessionTTL+time.Second)) {
		t.Fatal("expired session valid")
	}
	for _, bad := range []string{"", "x", c + "0", "9999999999." + c[len("1800604800."):]} {
		if s.Valid(bad, now) {
			t.Errorf("forged %q accepted", bad)
		}
	}
	if NewSessions("another-token").Valid(c, now) {
		t.Fatal("a session survived a token change")
	}
	if !s.CheckCSRF(c, s.CSRF(c)) || s.CheckCSRF(c, s.CSRF(s.Issue(now.Add(time.Second)))) || s.CheckCSRF("", "") {
		t.Fatal("CSRF tokens are not bound to their session")
	}
	if !s.CheckToken("the-api-token") || s.CheckToken("the-api-toke") || NewSessions("").CheckToken("") {
		t.Fatal("token check")
	}
}
