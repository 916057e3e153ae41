package events_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/facestream/facestream/pkg/events"
)

func newKey(t *testing.T, id string) events.BlobKey {
	t.Helper()
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	k, err := events.ParseBlobKey(id + ":" + base64.StdEncoding.EncodeToString(raw))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func keyring(t *testing.T, current events.BlobKey, previous ...events.BlobKey) *events.Keyring {
	t.Helper()
	kr, err := events.NewKeyring(current, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// TestBlobStoreEncryption: objects are sealed at rest with AES-256-GCM under
// the current key id, open with the current or a previous key after a
// rotation, refuse an unknown key or tampering (permanently), and plaintext
// uploads of external producers still read.
func TestBlobStoreEncryption(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	ctx := testCtx(t)
	obs, err := srv.JS.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "blobs", Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	k1, k2 := newKey(t, "k1"), newKey(t, "k2")
	old := events.NewBlobStore(srv.JS, events.WithKeyring(keyring(t, k1)))
	data := bytes.Repeat([]byte("face pixels "), 50_000)

	ref, err := old.Put(ctx, "blobs", "img-1", "image/jpeg", data)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := obs.GetBytes(ctx, "img-1")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("face pixels")) || len(raw) != len(data)+12+16 {
		t.Errorf("object at rest is not sealed: %d bytes for %d", len(raw), len(data))
	}
	info, err := obs.GetInfo(ctx, "img-1")
	if err != nil {
		t.Fatal(err)
	}
	if info.Headers.Get(events.HeaderBlobKeyID) != "k1" || info.Headers.Get(events.HeaderBlobEncryption) != "AES-256-GCM" {
		t.Errorf("headers %v", info.Headers)
	}
	if got, err := old.Get(ctx, ref); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get: %d bytes, %v", len(got), err)
	}

	// Rotation: k2 is current, k1 previous: old objects open, new ones use k2.
	rotated := events.NewBlobStore(srv.JS, events.WithKeyring(keyring(t, k2, k1)))
	if got, err := rotated.Get(ctx, ref); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get after rotation: %d bytes, %v", len(got), err)
	}
	ref2, err := rotated.Put(ctx, "blobs", "img-2", "", []byte("new"))
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := obs.GetInfo(ctx, "img-2"); info == nil || info.Headers.Get(events.HeaderBlobKeyID) != "k2" {
		t.Errorf("new write not under k2: %+v", info)
	}
	// k1 retired: its objects no longer open, permanently.
	retired := events.NewBlobStore(srv.JS, events.WithKeyring(keyring(t, k2)))
	if _, err := retired.Get(ctx, ref); !errors.Is(err, events.ErrBlobKeyUnknown) || !errors.Is(err, events.ErrPermanent) {
		t.Errorf("retired key: %v", err)
	}
	if _, err := events.NewBlobStore(srv.JS).Get(ctx, ref2); !errors.Is(err, events.ErrBlobKeyUnknown) {
		t.Errorf("no keyring: %v", err)
	}
	// A sealed object under another name does not open (the name is bound).
	if _, err := obs.PutBytes(ctx, "moved", raw); err != nil {
		t.Fatal(err)
	}
	moved := ref
	moved.Key = "moved"
	if err := obs.UpdateMeta(ctx, "moved", jetstream.ObjectMeta{Name: "moved", Headers: info.Headers}); err != nil {
		t.Fatal(err)
	}
	if _, err := rotated.Get(ctx, moved); !errors.Is(err, events.ErrBlobCorrupt) {
		t.Errorf("moved object: %v", err)
	}
	// An external producer's plaintext upload reads as it is.
	plain, err := events.NewBlobStore(srv.JS).Put(ctx, "blobs", "submitted/x", "", []byte("plain"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rotated.Get(ctx, plain); err != nil || string(got) != "plain" {
		t.Errorf("plaintext object: %q, %v", got, err)
	}
}

func TestParseBlobKey(t *testing.T) {
	t.Parallel()
	secret := strings.Repeat("ab", 32)
	k, err := events.ParseBlobKey("2026-11:" + secret)
	if err != nil || k.ID != "2026-11" {
		t.Fatalf("hex key: %v %v", k, err)
	}
	if s := fmt.Sprint(k); strings.Contains(s, secret) || strings.Contains(fmt.Sprintf("%+v", k), "171 171") {
		t.Errorf("key printed: %s", s)
	}
	for _, bad := range []string{"", "nokey", ":" + secret, "id:short", "id with space:" + secret, "id:" + secret[:62]} {
		_, err := events.ParseBlobKey(bad)
		if err == nil {
			t.Errorf("ParseBlobKey(%q) accepted", bad)
		} else if strings.Contains(err.Error(), secret[:16]) {
			t.Errorf("error repeats the key: %v", err)
		}
	}
	if _, err := events.NewKeyring(k, k); err == nil {
		t.Error("duplicate key ids accepted")
	}
}
