package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// CookieName is the login session cookie.
const CookieName = "raibid_session"

// SessionTTL is how long a login lasts.
const SessionTTL = 7 * 24 * time.Hour

// Sessions signs login cookies and CSRF tokens with a key derived from the
// API token: no session store, and changing the token logs everyone out.
// The cookie holds an expiry and its MAC, never the token.
type Sessions struct {
	key   []byte
	token string
}

// NewSessions derives the keys from the API token. With no token the API is
// open, so are the pages; a random key still binds CSRF tokens to a browser.
func NewSessions(apiToken string) *Sessions {
	var key []byte
	if apiToken == "" {
		key = make([]byte, 32)
		_, _ = rand.Read(key)
	} else {
		sum := sha256.Sum256([]byte("raibid web session key\x00" + apiToken))
		key = sum[:]
	}
	return &Sessions{key: key, token: apiToken}
}

// Open reports whether no token is configured (everyone may act).
func (s *Sessions) Open() bool { return s.token == "" }

// CheckToken compares a token typed into the login form with the API token.
func (s *Sessions) CheckToken(typed string) bool {
	return s.token != "" && subtle.ConstantTimeCompare([]byte(typed), []byte(s.token)) == 1
}

func (s *Sessions) mac(parts ...string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(m.Sum(nil))
}

// Issue returns a cookie value valid until now+SessionTTL: its expiry, a
// random session id (what logout revokes) and their MAC.
func (s *Sessions) Issue(now time.Time) string {
	exp := strconv.FormatInt(now.Add(SessionTTL).Unix(), 10)
	id := make([]byte, 12)
	_, _ = rand.Read(id)
	sid := hex.EncodeToString(id)
	return exp + "." + sid + "." + s.mac("session", exp, sid)
}

// Valid reports whether a cookie value is one this server issued and not
// expired; revocation (logout) is the caller's to check with ID.
func (s *Sessions) Valid(value string, now time.Time) bool {
	exp, sid, sig, ok := s.parse(value)
	if !ok {
		return false
	}
	n, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || now.Unix() > n {
		return false
	}
	return hmac.Equal([]byte(sig), []byte(s.mac("session", exp, sid)))
}

// ID returns a session's id and expiry, for revoking it on logout.
func (s *Sessions) ID(value string) (id string, expires time.Time, ok bool) {
	exp, sid, _, ok := s.parse(value)
	if !ok {
		return "", time.Time{}, false
	}
	n, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return "", time.Time{}, false
	}
	return sid, time.Unix(n, 0), true
}

func (s *Sessions) parse(value string) (exp, sid, sig string, ok bool) {
	parts := strings.Split(value, ".")
	if len(parts) != 3 || len(parts[1]) != 24 {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// CSRF is the form token of a session: a page of another site cannot know
// it, so a form it submits with the viewer's cookie is refused.
func (s *Sessions) CSRF(session string) string {
	return s.mac("csrf", session)[:32]
}

// CheckCSRF compares a submitted form token with the session's.
func (s *Sessions) CheckCSRF(session, submitted string) bool {
	return session != "" && subtle.ConstantTimeCompare([]byte(submitted), []byte(s.CSRF(session))) == 1
}

// Cookie builds the session cookie: HttpOnly, SameSite=Strict, and Secure
// when secure (the page was reached over TLS, directly or through a proxy).
func Cookie(value string, secure bool, maxAge time.Duration) *http.Cookie {
	return &http.Cookie{Name: CookieName, Value: value, Path: "/ui/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: secure, MaxAge: int(maxAge.Seconds())}
}

// Secure reports whether a request reached the server over TLS: directly,
// through a proxy that says so (X-Forwarded-Proto: https), or because the
// server's public URL is https. A client can only add Secure this way, which
// never weakens a cookie.
func Secure(r *http.Request, publicURL string) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") ||
		strings.HasPrefix(strings.ToLower(publicURL), "https://")
}
