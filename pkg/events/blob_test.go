package events_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/facestream/facestream/pkg/events"
)

func TestBlobStore(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	ctx := testCtx(t)
	if _, err := srv.JS.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "blobs", Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	bs := events.NewBlobStore(srv.JS)
	data := bytes.Repeat([]byte("pixels"), 100_000) // 600 KB, several chunks

	ref, err := bs.Put(ctx, "blobs", "img-1/crops", "application/octet-stream", data)
	if err != nil {
		t.Fatal(err)
	}
	if ref.Size != int64(len(data)) || len(ref.SHA256) != 64 || ref.Bucket != "blobs" || ref.Key != "img-1/crops" {
		t.Errorf("ref = %+v", ref)
	}
	got, err := bs.Load(ctx, events.Blob{Ref: &ref})
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("load by ref: %d bytes, %v", len(got), err)
	}
	if got, err := bs.Load(ctx, events.Blob{Data: []byte("inline")}); err != nil || string(got) != "inline" {
		t.Errorf("load inline: %q, %v", got, err)
	}

	bad := ref
	bad.SHA256 = "00" + ref.SHA256[2:]
	if _, err := bs.Get(ctx, bad); !errors.Is(err, events.ErrBlobCorrupt) || !errors.Is(err, events.ErrPermanent) {
		t.Errorf("wrong sha256: err = %v, want ErrBlobCorrupt", err)
	}
	bad = ref
	bad.Size++
	if _, err := bs.Get(ctx, bad); !errors.Is(err, events.ErrBlobCorrupt) {
		t.Errorf("wrong size: err = %v, want ErrBlobCorrupt", err)
	}

	if err := bs.Delete(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if err := bs.Delete(ctx, ref); err != nil {
		t.Errorf("second delete: %v (deleting is idempotent)", err)
	}
	if _, err := bs.Get(ctx, ref); !errors.Is(err, events.ErrBlobNotFound) || !errors.Is(err, events.ErrPermanent) {
		t.Errorf("deleted: err = %v, want ErrBlobNotFound", err)
	}
	if _, err := bs.Get(ctx, events.BlobRef{Bucket: "nope", Key: "k"}); err == nil || errors.Is(err, events.ErrPermanent) {
		t.Errorf("missing bucket: err = %v, want a transient error", err)
	}
}
