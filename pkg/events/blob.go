package events

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// BlobStore reads and writes the payloads that travel by BlobRef, in
// JetStream object store buckets. It caches bucket handles and is safe for
// concurrent use.
type BlobStore struct {
	js   jetstream.JetStream
	keys *Keyring // nil: objects in the clear

	mu      sync.Mutex
	buckets map[string]jetstream.ObjectStore
}

// NewBlobStore returns a BlobStore over js. The buckets must exist (they are
// declared in the nats package and created at start-up).
func NewBlobStore(js jetstream.JetStream, opts ...BlobOption) *BlobStore {
	s := &BlobStore{js: js, buckets: map[string]jetstream.ObjectStore{}}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Put stores data in bucket under key and returns its reference, with size
// and sha256 filled in.
func (s *BlobStore) Put(ctx context.Context, bucket, key, contentType string, data []byte) (BlobRef, error) {
	store, err := s.bucket(ctx, bucket)
	if err != nil {
		return BlobRef{}, err
	}
	meta := jetstream.ObjectMeta{Name: key, Headers: map[string][]string{}}
	if contentType != "" {
		meta.Headers["Content-Type"] = []string{contentType}
	}
	stored := data
	if s.keys != nil {
		if stored, err = s.keys.seal(bucket, key, data); err != nil {
			return BlobRef{}, fmt.Errorf("put blob %s/%s: %w", bucket, key, err)
		}
		meta.Headers[HeaderBlobEncryption] = []string{blobAlgorithm}
		meta.Headers[HeaderBlobKeyID] = []string{s.keys.CurrentID()}
	}
	if _, err := store.Put(ctx, meta, bytes.NewReader(stored)); err != nil {
		return BlobRef{}, fmt.Errorf("put blob %s/%s: %w", bucket, key, err)
	}
	sum := sha256.Sum256(data)
	return BlobRef{
		Bucket:      bucket,
		Key:         key,
		Size:        int64(len(data)),
		SHA256:      hex.EncodeToString(sum[:]),
		ContentType: contentType,
	}, nil
}

// Get returns the bytes ref points at, after checking its size and sha256
// when the reference carries them. A missing object is ErrBlobNotFound, a
// mismatch ErrBlobCorrupt; both are permanent.
func (s *BlobStore) Get(ctx context.Context, ref BlobRef) ([]byte, error) {
	store, err := s.bucket(ctx, ref.Bucket)
	if err != nil {
		return nil, err
	}
	data, err := s.read(ctx, store, ref)
	if err != nil {
		return nil, err
	}
	if ref.Size > 0 && int64(len(data)) != ref.Size {
		return nil, fmt.Errorf("get blob %s/%s: %d bytes, reference says %d: %w", ref.Bucket, ref.Key, len(data), ref.Size, ErrBlobCorrupt)
	}
	if ref.SHA256 != "" {
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != ref.SHA256 {
			return nil, fmt.Errorf("get blob %s/%s: sha256 %s, reference says %s: %w", ref.Bucket, ref.Key, got, ref.SHA256, ErrBlobCorrupt)
		}
	}
	return data, nil
}

// read returns the object's bytes, opened when it is sealed.
func (s *BlobStore) read(ctx context.Context, store jetstream.ObjectStore, ref BlobRef) ([]byte, error) {
	res, err := store.Get(ctx, ref.Key)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("get blob %s/%s: %w", ref.Bucket, ref.Key, ErrBlobNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get blob %s/%s: %w", ref.Bucket, ref.Key, err)
	}
	defer res.Close()
	info, err := res.Info()
	if err != nil {
		return nil, fmt.Errorf("get blob %s/%s: %w", ref.Bucket, ref.Key, err)
	}
	data, err := io.ReadAll(res)
	if err != nil {
		return nil, fmt.Errorf("get blob %s/%s: %w", ref.Bucket, ref.Key, err)
	}
	alg := info.Headers.Get(HeaderBlobEncryption)
	switch {
	case alg == "":
		return data, nil // in the clear (an external producer's upload)
	case alg != blobAlgorithm:
		return nil, fmt.Errorf("get blob %s/%s: encryption %q: %w", ref.Bucket, ref.Key, alg, ErrBlobCorrupt)
	case s.keys == nil:
		return nil, fmt.Errorf("get blob %s/%s: sealed, and this process has no blob key: %w", ref.Bucket, ref.Key, ErrBlobKeyUnknown)
	}
	data, err = s.keys.open(info.Headers.Get(HeaderBlobKeyID), ref.Bucket, ref.Key, data)
	if err != nil {
		return nil, fmt.Errorf("get blob %s/%s: %w", ref.Bucket, ref.Key, err)
	}
	return data, nil
}

// Load returns a Blob's bytes: its inline data, or the object it refers to.
func (s *BlobStore) Load(ctx context.Context, b Blob) ([]byte, error) {
	if b.Ref == nil {
		return b.Data, nil
	}
	return s.Get(ctx, *b.Ref)
}

// Delete removes the object ref points at. An object that is already gone
// is not an error: deleting is idempotent.
func (s *BlobStore) Delete(ctx context.Context, ref BlobRef) error {
	store, err := s.bucket(ctx, ref.Bucket)
	if err != nil {
		return err
	}
	if err := store.Delete(ctx, ref.Key); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("delete blob %s/%s: %w", ref.Bucket, ref.Key, err)
	}
	return nil
}

func (s *BlobStore) bucket(ctx context.Context, name string) (jetstream.ObjectStore, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if store, ok := s.buckets[name]; ok {
		return store, nil
	}
	store, err := s.js.ObjectStore(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", name, err)
	}
	s.buckets[name] = store
	return store, nil
}
