package events

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Object headers of an encrypted blob. The key id names the key that
// sealed it, so that keys can rotate: new writes use the current key, reads
// accept the current and the previous ones.
const (
	HeaderBlobEncryption = "Facestream-Encryption"
	HeaderBlobKeyID      = "Facestream-Key-Id"
	blobAlgorithm        = "AES-256-GCM"
)

// ErrBlobKeyUnknown means a blob was sealed with a key that is neither the
// current nor a previous one of the keyring (rotated out too early, or
// another deployment's). It is permanent.
var ErrBlobKeyUnknown error = permanentSentinel("blob sealed with an unknown key")

// BlobKey is one AES-256 key and its id. Its String never shows the key.
type BlobKey struct {
	// ID names the key in every object it seals (letters, digits, '-', '_', '.').
	ID  string
	key []byte
}

// String returns the id only.
func (k BlobKey) String() string { return "blob key " + k.ID }

// ParseBlobKey parses "id:key", the key being 32 bytes in base64 (standard
// or URL alphabet, padded or not) or 64 hex digits. The error never repeats
// the key.
func ParseBlobKey(s string) (BlobKey, error) {
	id, enc, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok || !validKeyID(id) {
		return BlobKey{}, errors.New("parse blob key: want id:key with an id of letters, digits, '-', '_' or '.'")
	}
	var key []byte
	if b, err := hex.DecodeString(enc); err == nil && len(b) == 32 {
		key = b
	} else {
		for _, e := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if b, err := e.DecodeString(enc); err == nil && len(b) == 32 {
				key = b
				break
			}
		}
	}
	if key == nil {
		return BlobKey{}, fmt.Errorf("parse blob key %s: the key is not 32 bytes in base64 or hex", id)
	}
	return BlobKey{ID: id, key: key}, nil
}

func validKeyID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// Keyring is the current blob key and the previous ones still accepted for
// reading. It is immutable and safe for concurrent use.
type Keyring struct {
	current string
	aeads   map[string]cipher.AEAD
}

// NewKeyring returns a keyring that seals with current and opens with
// current and previous.
func NewKeyring(current BlobKey, previous ...BlobKey) (*Keyring, error) {
	kr := &Keyring{current: current.ID, aeads: map[string]cipher.AEAD{}}
	for _, k := range append([]BlobKey{current}, previous...) {
		if len(k.key) != 32 || !validKeyID(k.ID) {
			return nil, errors.New("new keyring: every key needs an id and 32 bytes (use ParseBlobKey)")
		}
		if _, dup := kr.aeads[k.ID]; dup {
			return nil, fmt.Errorf("new keyring: key id %s appears twice", k.ID)
		}
		block, err := aes.NewCipher(k.key)
		if err != nil {
			return nil, fmt.Errorf("new keyring: %w", err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("new keyring: %w", err)
		}
		kr.aeads[k.ID] = aead
	}
	return kr, nil
}

// CurrentID is the id of the key new writes use.
func (kr *Keyring) CurrentID() string { return kr.current }

// seal encrypts data with the current key: a random 12-byte nonce, then the
// ciphertext and tag. The object's bucket and name are the additional data,
// so a sealed object copied under another name does not open.
func (kr *Keyring) seal(bucket, name string, data []byte) ([]byte, error) {
	aead := kr.aeads[kr.current]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(data)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal blob: %w", err)
	}
	return aead.Seal(nonce, nonce, data, blobAAD(bucket, name)), nil
}

// open decrypts an object sealed with key id.
func (kr *Keyring) open(id, bucket, name string, sealed []byte) ([]byte, error) {
	aead, ok := kr.aeads[id]
	if !ok {
		return nil, fmt.Errorf("key id %q: %w", id, ErrBlobKeyUnknown)
	}
	n := aead.NonceSize()
	if len(sealed) < n+aead.Overhead() {
		return nil, fmt.Errorf("sealed object of %d bytes: %w", len(sealed), ErrBlobCorrupt)
	}
	data, err := aead.Open(nil, sealed[:n], sealed[n:], blobAAD(bucket, name))
	if err != nil {
		return nil, fmt.Errorf("open sealed object: %w: %w", ErrBlobCorrupt, err)
	}
	return data, nil
}

func blobAAD(bucket, name string) []byte {
	return []byte("facestream-blob\x00" + bucket + "\x00" + name)
}

// BlobOption configures a BlobStore.
type BlobOption func(*BlobStore)

// WithKeyring makes the BlobStore encrypt every object it writes with the
// keyring's current key (AES-256-GCM) and decrypt what it reads. Objects
// without the encryption header (put by an external producer) are read as
// they are. A nil keyring leaves objects in the clear.
func WithKeyring(kr *Keyring) BlobOption { return func(s *BlobStore) { s.keys = kr } }
