// Package secrets keeps pipeline secrets: values an operator sets for a
// repository or an organisation, stored in Redis encrypted with AES-256-GCM
// under a key that lives outside Redis (a 0600 file, or a Kubernetes Secret
// mounted as one). The server sets, lists and removes them and never returns
// a value; agents decrypt the ones a step names. It knows nothing of HTTP,
// jobs or pipelines.
package secrets

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrNoKey means a value was encrypted with a key the keyring does not hold.
var ErrNoKey = errors.New("secrets: encryption key not in the keyring")

// Keyring holds the encryption keys: the first encrypts, every one
// decrypts (so a rotation can re-encrypt while agents still hold the old
// key). Each key is 32 random bytes, written as 64 hex digits, one per line.
type Keyring struct {
	keys []key
}

type key struct {
	id   string // first 8 hex digits of the key's SHA-256: names it in ciphertexts
	aead cipher.AEAD
}

// ParseKeyring reads keys written one per line as 64 hex digits.
func ParseKeyring(text string) (*Keyring, error) {
	k := &Keyring{}
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		raw, err := hex.DecodeString(line)
		if err != nil || len(raw) != 32 {
			return nil, fmt.Errorf("secrets: key on line %d is not 64 hex digits", i+1)
		}
		kk, err := newKey(raw)
		if err != nil {
			return nil, err
		}
		k.keys = append(k.keys, kk)
	}
	if len(k.keys) == 0 {
		return nil, errors.New("secrets: no key in the keyring")
	}
	return k, nil
}

func newKey(raw []byte) (key, error) {
	block, err := aes.NewCipher(raw)
	if err != nil {
		return key{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return key{}, err
	}
	sum := sha256.Sum256(raw)
	return key{id: hex.EncodeToString(sum[:4]), aead: aead}, nil
}

// NewKeyText returns a new random key as a keyring line.
func NewKeyText() string {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		panic("secrets: random source failed: " + err.Error())
	}
	return hex.EncodeToString(raw)
}

// LoadOrCreateKeyring reads the keyring at path, creating it (0600) with a
// new key when it does not exist.
func LoadOrCreateKeyring(path string) (*Keyring, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		text := NewKeyText() + "\n"
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			return nil, fmt.Errorf("secrets: write key: %w", err)
		}
		return ParseKeyring(text)
	}
	if err != nil {
		return nil, fmt.Errorf("secrets: read key: %w", err)
	}
	return ParseKeyring(string(b))
}

// CurrentID names the key that encrypts.
func (k *Keyring) CurrentID() string { return k.keys[0].id }

// seal encrypts value for the secret named by aad; the result names its key.
func (k *Keyring) seal(value, aad string) string {
	cur := k.keys[0]
	nonce := make([]byte, cur.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic("secrets: random source failed: " + err.Error())
	}
	ct := cur.aead.Seal(nonce, nonce, []byte(value), []byte(aad))
	return cur.id + ":" + base64.StdEncoding.EncodeToString(ct)
}

// open decrypts what seal made for the same aad: a value moved to another
// secret's name or scope does not decrypt.
func (k *Keyring) open(sealed, aad string) (string, error) {
	id, b64, ok := strings.Cut(sealed, ":")
	if !ok {
		return "", errors.New("secrets: malformed stored value")
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", errors.New("secrets: malformed stored value")
	}
	for _, kk := range k.keys {
		if kk.id != id {
			continue
		}
		n := kk.aead.NonceSize()
		if len(raw) < n {
			return "", errors.New("secrets: malformed stored value")
		}
		pt, err := kk.aead.Open(nil, raw[:n], raw[n:], []byte(aad))
		if err != nil {
			return "", errors.New("secrets: stored value does not decrypt (tampered, or moved from another secret)")
		}
		return string(pt), nil
	}
	return "", fmt.Errorf("%w (key %s)", ErrNoKey, id)
}

// FileKeys returns a loader of the keyring at path, read at every call so a
// rotated file is seen by agents in other processes without a restart.
func FileKeys(path string) func() (*Keyring, error) {
	return func() (*Keyring, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("secrets: read key: %w", err)
		}
		return ParseKeyring(string(b))
	}
}

// AddKey puts a new key at the top of the key file (it encrypts from now
// on) and keeps the old ones after it (they still decrypt). It fails when
// the file is not writable, e.g. a Kubernetes Secret mount.
func AddKey(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("secrets: read key: %w", err)
	}
	return writeKeyFile(path, NewKeyText()+"\n"+string(b))
}

// DropOldKeys keeps only the first (current) key of the key file.
func DropOldKeys(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("secrets: read key: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			return writeKeyFile(path, l+"\n")
		}
	}
	return errors.New("secrets: no key in the key file")
}

// writeKeyFile replaces path atomically with a 0600 file.
func writeKeyFile(path, text string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".secrets-key-*")
	if err != nil {
		return fmt.Errorf("secrets: write key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.WriteString(text); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Rotate makes a new key and re-encrypts every secret with it: add the key
// (old ones still decrypt), re-encrypt, then drop the old keys. When the key
// file cannot be written (a mounted Kubernetes Secret), the operator puts the
// new key first in the Secret and Rotate only re-encrypts with it.
func Rotate(ctx context.Context, path string, st *Store) (changed int, newKey bool, err error) {
	if err := AddKey(path); err == nil {
		newKey = true
	}
	changed, err = st.Reencrypt(ctx)
	if err != nil {
		return changed, newKey, err
	}
	if newKey {
		err = DropOldKeys(path)
	}
	return changed, newKey, err
}
