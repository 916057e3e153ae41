package service

import (
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/facestream/facestream/internal/config"
	"github.com/facestream/facestream/pkg/events"
)

// newBlobStore returns the process's object-store access: objects sealed
// with AES-256-GCM when a blob key is configured (blob.key, or blob.key_file),
// opened with it or one of blob.previous_keys. Errors name the setting,
// never the key.
func newBlobStore(js jetstream.JetStream, cfg config.Config) (*events.BlobStore, error) {
	kr, err := blobKeyring(cfg.Blob)
	if err != nil || kr == nil {
		return events.NewBlobStore(js), err
	}
	return events.NewBlobStore(js, events.WithKeyring(kr)), nil
}

// blobKeyring reads the keys of c; nil when none is configured.
func blobKeyring(c config.Blob) (*events.Keyring, error) {
	cur := c.Key.Value()
	if cur == "" && c.KeyFile != "" {
		b, err := os.ReadFile(c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("blob.key_file: %w", err)
		}
		cur = strings.TrimSpace(string(b))
	}
	if cur == "" {
		if c.PreviousKeys.Value() != "" {
			return nil, fmt.Errorf("blob.previous_keys is set without a current key (blob.key or blob.key_file)")
		}
		return nil, nil
	}
	current, err := events.ParseBlobKey(cur)
	if err != nil {
		return nil, fmt.Errorf("blob.key: %w", err)
	}
	var previous []events.BlobKey
	for p := range strings.SplitSeq(c.PreviousKeys.Value(), ",") {
		if strings.TrimSpace(p) == "" {
			continue
		}
		k, err := events.ParseBlobKey(p)
		if err != nil {
			return nil, fmt.Errorf("blob.previous_keys: %w", err)
		}
		previous = append(previous, k)
	}
	kr, err := events.NewKeyring(current, previous...)
	if err != nil {
		return nil, fmt.Errorf("blob keys: %w", err)
	}
	return kr, nil
}
