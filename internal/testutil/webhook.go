package testutil

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/forge"
)

// GiteaPushBody is a Gitea push webhook's body: commit pushed to branch of
// repo, which agents clone from cloneURL (the fields raibid reads, in
// Gitea's shape).
func GiteaPushBody(repo, cloneURL, branch, commit string) []byte {
	author := map[string]string{"name": "Ann", "username": "ann"}
	b, _ := json.Marshal(map[string]any{
		"ref": "refs/heads/" + branch, "before": strings.Repeat("0", 39) + "1", "after": commit,
		"commits":     []map[string]any{{"id": commit, "message": "change\n", "author": author}},
		"head_commit": map[string]any{"id": commit, "message": "change\n", "author": author},
		"repository":  map[string]any{"full_name": repo, "clone_url": cloneURL, "html_url": "http://gitea.local/" + repo},
		"pusher":      map[string]any{"login": "ann"},
	})
	return b
}

var deliveries atomic.Int64

// SendPush posts body to base's Gitea webhook as Gitea would (signed with
// secret, a delivery id of its own) and returns the queued job's id; any
// answer but 202 fails the test.
func SendPush(t testing.TB, base, secret string, body []byte) string {
	t.Helper()
	return SendEvent(t, base, secret, "push", body)
}

// SendEvent is SendPush for any Gitea event (pull_request, create).
func SendEvent(t testing.TB, base, secret, event string, body []byte) string {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/webhook/gitea", bytes.NewReader(body))
	req.Header.Set("X-Gitea-Event", event)
	req.Header.Set("X-Gitea-Delivery", fmt.Sprintf("test-%d-%d", time.Now().UnixNano(), deliveries.Add(1)))
	req.Header.Set("X-Gitea-Signature", forge.SignHex([]byte(secret), body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook: %d %v", resp.StatusCode, out)
	}
	id, _ := out["job_id"].(string)
	return id
}
