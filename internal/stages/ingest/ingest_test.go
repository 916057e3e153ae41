package ingest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/facestream/facestream/internal/natstest"
	"github.com/facestream/facestream/internal/resultcache"
	"github.com/facestream/facestream/internal/stages/ingest"
	fsnats "github.com/facestream/facestream/nats"
	"github.com/facestream/facestream/pkg/events"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, natstest.KnownClientGoroutines())
}

func testdata(t *testing.T, rel string) []byte {
	t.Helper()
	dir := os.Getenv("FACESTREAM_TESTDATA")
	if dir == "" {
		t.Fatal("FACESTREAM_TESTDATA is not set: run the tests with `make test`")
	}
	b, err := os.ReadFile(filepath.Join(dir, rel))
	if err != nil {
		t.Fatalf("read test image: %v", err)
	}
	return b
}

// pngChunk encodes one PNG chunk with its CRC.
func pngChunk(typ string, body []byte) []byte {
	var b bytes.Buffer
	_ = binary.Write(&b, binary.BigEndian, uint32(len(body)))
	b.WriteString(typ)
	b.Write(body)
	crc := crc32.ChecksumIEEE(append([]byte(typ), body...))
	_ = binary.Write(&b, binary.BigEndian, crc)
	return b.Bytes()
}

// pngClaiming is a complete, tiny PNG whose header claims w×h pixels.
func pngClaiming(w, h uint32) []byte {
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	out := []byte("\x89PNG\r\n\x1a\n")
	out = append(out, pngChunk("IHDR", ihdr)...)
	out = append(out, pngChunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})...)
	return append(out, pngChunk("IEND", nil)...)
}

// bomb is a real 1-bit PNG of 6000×6000 pixels of one colour: a few KB.
func bomb(t *testing.T) []byte {
	img := image.NewPaletted(image.Rect(0, 0, 6000, 6000), color.Palette{color.Black, color.White})
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func smallPNG(t *testing.T, w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = byte(i * 7)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// withOrientation inserts an EXIF APP1 segment with the given orientation
// right after the SOI of a JPEG.
func withOrientation(jpg []byte, o uint16, order binary.ByteOrder) []byte {
	var t bytes.Buffer
	if order == binary.LittleEndian {
		t.WriteString("II")
	} else {
		t.WriteString("MM")
	}
	w := func(v any) { _ = binary.Write(&t, order, v) }
	w(uint16(42))
	w(uint32(8))
	w(uint16(2)) // two entries
	w(uint16(0x010F))
	w(uint16(2))
	w(uint32(4))
	t.WriteString("Cam\x00")
	w(uint16(0x0112))
	w(uint16(3))
	w(uint32(1))
	w(o)
	w(uint16(0))
	w(uint32(0))
	body := append([]byte("Exif\x00\x00"), t.Bytes()...)
	seg := []byte{0xFF, 0xE1, 0, 0}
	binary.BigEndian.PutUint16(seg[2:], uint16(len(body)+2))
	seg = append(seg, body...)
	out := append([]byte{}, jpg[:2]...)
	out = append(out, seg...)
	return append(out, jpg[2:]...)
}

func TestValidateRejects(t *testing.T) {
	jpg := testdata(t, "insightface/images/t1.jpg")
	var gifBuf bytes.Buffer
	if err := gif.Encode(&gifBuf, image.NewPaletted(image.Rect(0, 0, 8, 8), color.Palette{color.Black, color.White}), nil); err != nil {
		t.Fatal(err)
	}
	okPNG := smallPNG(t, 40, 30)
	tests := []struct {
		name string
		data []byte
		lim  ingest.Limits
		want events.RejectReason
	}{
		{"empty", nil, ingest.DefaultLimits, events.RejectEmpty},
		{"truncated jpeg", jpg[:len(jpg)/2], ingest.DefaultLimits, events.RejectTruncated},
		{"jpeg without eoi", jpg[:len(jpg)-2], ingest.DefaultLimits, events.RejectTruncated},
		{"jpeg header only", jpg[:20], ingest.DefaultLimits, events.RejectTruncated},
		{"text named .jpg", []byte("this is not an image, it is a text file named photo.jpg\n"), ingest.DefaultLimits, events.RejectUnsupportedFormat},
		{"gif", gifBuf.Bytes(), ingest.DefaultLimits, events.RejectUnsupportedFormat},
		{"png without iend", okPNG[:len(okPNG)-12], ingest.DefaultLimits, events.RejectTruncated},
		{"png claiming 100000x100000", pngClaiming(100000, 100000), ingest.DefaultLimits, events.RejectTooManyPixels},
		{"png with a broken header", pngClaiming(0, 10), ingest.DefaultLimits, events.RejectCorrupt},
		{"decompression bomb", bomb(t), ingest.DefaultLimits, events.RejectDecompressionBomb},
		{"decoded bytes over budget", pngClaiming(6000, 6000), ingest.Limits{MaxPixels: 40_000_000, MaxDecodedBytes: 64 << 20}, events.RejectDecompressionBomb},
		{"oversized", jpg, ingest.Limits{MaxBytes: 1024}, events.RejectTooLarge},
		{"webp shorter than its header", []byte("RIFF\xff\x00\x00\x00WEBPVP8 "), ingest.DefaultLimits, events.RejectTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ingest.Validate(tt.data, tt.lim)
			r, ok := err.(*ingest.Rejection)
			if !ok || r.Reason != tt.want {
				t.Errorf("Validate = %v, want %s", err, tt.want)
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	jpg := testdata(t, "insightface/images/t1.jpg")
	h, err := ingest.Validate(jpg, ingest.DefaultLimits)
	if err != nil || h.Format != "jpeg" || h.Width <= 0 || h.Orientation != 0 {
		t.Fatalf("t1.jpg: %+v %v", h, err)
	}
	for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		h6, err := ingest.Validate(withOrientation(jpg, 6, order), ingest.DefaultLimits)
		if err != nil || h6.Orientation != 6 || h6.Width != h.Width {
			t.Errorf("orientation 6 (%v): %+v %v", order, h6, err)
		}
	}
	// Garbage in APP1 never fails an image: no orientation.
	garbage := append([]byte{0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x0C}, []byte("Exif\x00\x00MM\x00\x2a")...)
	garbage = append(garbage, jpg[2:]...)
	if h, err := ingest.Validate(garbage, ingest.DefaultLimits); err != nil || h.Orientation != 0 {
		t.Errorf("garbage exif: %+v %v", h, err)
	}
	if h, err := ingest.Validate(withOrientation(jpg, 99, binary.BigEndian), ingest.DefaultLimits); err != nil || h.Orientation != 0 {
		t.Errorf("orientation 99: %+v %v", h, err)
	}
	if h, err := ingest.Validate(smallPNG(t, 40, 30), ingest.DefaultLimits); err != nil || h.Format != "png" || h.Width != 40 || h.Height != 30 {
		t.Errorf("png: %+v %v", h, err)
	}
	// Every labelled JPEG of the test data passes.
	for _, rel := range []string{"deepface/img1.jpg", "deepface/img26.jpg", "deepface/img61.jpg", "insightface/images/mask_white.jpg", "insightface/images/Tom_Hanks_54745.png"} {
		if h, err := ingest.Validate(testdata(t, rel), ingest.DefaultLimits); err != nil {
			t.Errorf("%s: %+v %v", rel, h, err)
		}
	}
}

// harness is a JetStream server with the facestream definitions applied.
type harness struct {
	srv   *natstest.Server
	blobs *events.BlobStore
}

func newHarness(t *testing.T) harness {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv := natstest.Start(t)
	if _, err := fsnats.Apply(ctx, srv.JS, fsnats.WithMemoryStorage()); err != nil {
		t.Fatal(err)
	}
	return harness{srv: srv, blobs: events.NewBlobStore(srv.JS)}
}

func delivery(t *testing.T, s events.Submission) *events.Delivery {
	e, err := events.NewImageSubmitted(s)
	if err != nil {
		t.Fatal(err)
	}
	e.CloudEvent.SetID("ev-" + s.ImageID)
	e.CloudEvent.SetSource("/test")
	e.CloudEvent.SetTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	return &events.Delivery{Event: e, Stage: events.StageIngest, Attempt: 1}
}

func one(t *testing.T, outs []events.Event, err error, typ string) events.Event {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 1 || outs[0].CloudEvent.Type() != typ {
		t.Fatalf("outputs = %v, want one %s", outs, typ)
	}
	return outs[0]
}

func hexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestHandle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hs := newHarness(t)
	jpg := withOrientation(testdata(t, "insightface/images/t1.jpg"), 8, binary.LittleEndian)
	hdr, err := ingest.Validate(jpg, ingest.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	h, err := ingest.New(ingest.Config{DefaultPack: "dev", InlineMax: 1 << 30}, hs.blobs, nil)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("accepted inline", func(t *testing.T) {
		outs, err := h.Handle(ctx, delivery(t, events.Submission{ImageID: "a1", Tenant: "acme", Image: jpg, ContentType: "image/jpeg"}))
		var acc events.ImageAccepted
		if err := one(t, outs, err, events.TypeImageAccepted).Decode(&acc); err != nil {
			t.Fatal(err)
		}
		im := acc.Image
		if im.ImageID != "a1" || im.Tenant != "acme" || im.SHA256 != hexSHA(jpg) || im.Size != int64(len(jpg)) ||
			im.Format != "jpeg" || im.Orientation != 8 || im.Width != hdr.Height || im.Height != hdr.Width {
			t.Errorf("image info = %+v (header %+v)", im, hdr)
		}
		if !bytes.Equal(acc.Data.Data, jpg) || acc.Data.Ref != nil {
			t.Error("image not carried inline, byte for byte")
		}
	})

	t.Run("rejected", func(t *testing.T) {
		outs, err := h.Handle(ctx, delivery(t, events.Submission{ImageID: "a2", Image: jpg[:len(jpg)/3]}))
		var rej events.ImageRejected
		if err := one(t, outs, err, events.TypeImageRejected).Decode(&rej); err != nil {
			t.Fatal(err)
		}
		if rej.Reason != events.RejectTruncated || rej.Stage != events.StageIngest || rej.ImageID != "a2" || rej.Size != int64(len(jpg)/3) || rej.Message == "" {
			t.Errorf("rejection = %+v", rej)
		}
	})

	t.Run("claim check", func(t *testing.T) {
		small, err := ingest.New(ingest.Config{DefaultPack: "dev", InlineMax: 1024}, hs.blobs, nil)
		if err != nil {
			t.Fatal(err)
		}
		outs, err := small.Handle(ctx, delivery(t, events.Submission{ImageID: "a3", Image: jpg}))
		var acc events.ImageAccepted
		if err := one(t, outs, err, events.TypeImageAccepted).Decode(&acc); err != nil {
			t.Fatal(err)
		}
		if acc.Data.Ref == nil || acc.Data.Data != nil || acc.Data.Ref.Bucket != fsnats.BucketImages {
			t.Fatalf("data = %+v", acc.Data)
		}
		got, err := hs.blobs.Load(ctx, acc.Data)
		if err != nil || !bytes.Equal(got, jpg) {
			t.Errorf("stored blob: %v", err)
		}
	})

	t.Run("blob reference", func(t *testing.T) {
		ref, err := hs.blobs.Put(ctx, fsnats.BucketImages, "uploads/a4.jpg", "image/jpeg", jpg)
		if err != nil {
			t.Fatal(err)
		}
		outs, err := h.Handle(ctx, delivery(t, events.Submission{ImageID: "a4", Ref: &ref}))
		var acc events.ImageAccepted
		if err := one(t, outs, err, events.TypeImageAccepted).Decode(&acc); err != nil {
			t.Fatal(err)
		}
		if acc.Data.Ref == nil || acc.Data.Ref.Key != "uploads/a4.jpg" || acc.Image.SHA256 != hexSHA(jpg) {
			t.Errorf("accepted = %+v", acc)
		}
		// A reference to nothing, or into another bucket.
		missing := ref
		missing.Key = "uploads/gone.jpg"
		outs, err = h.Handle(ctx, delivery(t, events.Submission{ImageID: "a5", Ref: &missing}))
		var rej events.ImageRejected
		if err := one(t, outs, err, events.TypeImageRejected).Decode(&rej); err != nil || rej.Reason != events.RejectBlobMissing {
			t.Errorf("missing blob: %+v %v", rej, err)
		}
		other := ref
		other.Bucket = "secrets"
		outs, err = h.Handle(ctx, delivery(t, events.Submission{ImageID: "a6", Ref: &other}))
		if err := one(t, outs, err, events.TypeImageRejected).Decode(&rej); err != nil || rej.Reason != events.RejectInvalidRequest {
			t.Errorf("other bucket: %+v %v", rej, err)
		}
		// A rejected upload's blob is deleted.
		bad, err := hs.blobs.Put(ctx, fsnats.BucketImages, "uploads/bad.jpg", "image/jpeg", []byte("nope"))
		if err != nil {
			t.Fatal(err)
		}
		outs, err = h.Handle(ctx, delivery(t, events.Submission{ImageID: "a7", Ref: &bad}))
		one(t, outs, err, events.TypeImageRejected)
		if _, err := hs.blobs.Get(ctx, bad); err == nil {
			t.Error("rejected upload still stored")
		}
	})

	t.Run("cache hit", func(t *testing.T) {
		kv, err := hs.srv.JS.KeyValue(ctx, fsnats.BucketCache)
		if err != nil {
			t.Fatal(err)
		}
		cache := resultcache.New(resultcache.Config{KV: kv})
		cached, err := ingest.New(ingest.Config{DefaultPack: "dev"}, hs.blobs, cache)
		if err != nil {
			t.Fatal(err)
		}
		faces := []events.Face{{Index: 0, Box: events.Box{1, 2, 30, 40}, Score: 0.8, ID: "old",
			Embedding:  &events.Embedding{Model: "m", Dim: 2, Vector: events.Vector{0.6, 0.8}},
			Attributes: &events.Attributes{Pose: &events.Pose{Yaw: 3}}}}
		if err := cache.Put(ctx, resultcache.Key{Tenant: "acme", SHA256: hexSHA(jpg), Pack: "dev"},
			resultcache.Entry{ImageID: "first", Recognizer: "m", Faces: faces, AnalyzedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		outs, err := cached.Handle(ctx, delivery(t, events.Submission{ImageID: "b1", Tenant: "acme", Image: jpg}))
		ev := one(t, outs, err, events.TypeFacesAnalyzed)
		var fa events.FacesAnalyzed
		if err := ev.Decode(&fa); err != nil {
			t.Fatal(err)
		}
		if fa.Image.ImageID != "b1" || fa.Pack != "dev" || fa.Recognizer != "m" || len(fa.Faces) != 1 ||
			fa.Faces[0].ID != "" || fa.Faces[0].Embedding == nil || fa.Faces[0].Attributes == nil {
			t.Errorf("faces.analyzed = %+v", fa)
		}
		if got := ev.CloudEvent.Extensions()[resultcache.ExtCachedFrom]; got != "first" {
			t.Errorf("cachedfrom = %v", got)
		}
		// Another tenant, another pack, or skip_cache: analysed afresh.
		for _, s := range []events.Submission{
			{ImageID: "b2", Tenant: "other", Image: jpg},
			{ImageID: "b3", Tenant: "acme", Image: jpg, Options: events.RequestOptions{Pack: "buffalo_l"}},
			{ImageID: "b4", Tenant: "acme", Image: jpg, Options: events.RequestOptions{SkipCache: true}},
		} {
			outs, err := cached.Handle(ctx, delivery(t, s))
			one(t, outs, err, events.TypeImageAccepted)
		}
	})
}
