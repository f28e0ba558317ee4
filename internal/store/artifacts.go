package store

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/raibid-labs/raibid-ci/internal/ci"
)

// addArtifactScript records an artifact on its job, replacing one of the
// same name. KEYS: job hash. ARGV: artifact JSON, name.
var addArtifactScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local cur = redis.call('HGET', KEYS[1], 'artifacts')
local list = {}
if cur then list = cjson.decode(cur) end
local out = {}
for _, a in ipairs(list) do if a.name ~= ARGV[2] then out[#out + 1] = a end end
out[#out + 1] = cjson.decode(ARGV[1])
redis.call('HSET', KEYS[1], 'artifacts', cjson.encode(out))
return 1
`)

// AddArtifact records an uploaded artifact on the job.
func (s *Store) AddArtifact(ctx context.Context, jobID string, a ci.Artifact) error {
	b, _ := json.Marshal(a)
	n, err := addArtifactScript.Run(ctx, s.rdb, []string{s.keys.Job(jobID)}, string(b), a.Name).Int()
	if err != nil {
		return Wrap("record artifact", err)
	}
	if n == 0 {
		return fmt.Errorf("job %s: %w", jobID, ci.ErrNotFound)
	}
	return nil
}

// HashUploadToken is what the job hash keeps of an agent's upload token.
func HashUploadToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// UploadAllowed reports whether token is the upload token of the agent
// running the job now: artifacts come only from a running job's agent.
func (s *Store) UploadAllowed(ctx context.Context, jobID, token string) (bool, error) {
	vals, err := s.rdb.HMGet(ctx, s.keys.Job(jobID), "status", "upload_token").Result()
	if err != nil {
		return false, Wrap("check upload", err)
	}
	status, _ := vals[0].(string)
	want, _ := vals[1].(string)
	got := HashUploadToken(token)
	return status == string(ci.StatusRunning) && want != "" && token != "" &&
		subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1, nil
}
