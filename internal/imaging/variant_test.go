package imaging_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"image"
	_ "image/jpeg"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/facestream/facestream/internal/imaging"
)

// TestVariantSamePicture checks that every test image's variants are new
// bytes (a new SHA-256, so not a result-cache hit) that both OpenCV and Go's
// own decoders read as the very same picture, with the same header.
func TestVariantSamePicture(t *testing.T) {
	dir := os.Getenv("FACESTREAM_TESTDATA")
	if dir == "" {
		t.Fatal("FACESTREAM_TESTDATA is not set (the Makefile sets it to ../shared/testdata)")
	}
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".jpg", ".jpeg", ".png":
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < 100 {
		t.Fatalf("only %d test images under %s", len(paths), dir)
	}
	formats := map[imaging.Format]int{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		orig, err := imaging.Decode(data, imaging.DefaultLimits)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		head, err := imaging.DecodeConfig(data)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		formats[head.Format]++
		_, _, goErr := image.Decode(bytes.NewReader(data))
		seen := map[[32]byte]bool{sha256.Sum256(data): true}
		for n := 1; n <= 2; n++ {
			v, err := imaging.Variant(data, fmt.Sprintf("round %d", n))
			if err != nil {
				t.Fatalf("%s: variant %d: %v", p, n, err)
			}
			if sum := sha256.Sum256(v); seen[sum] {
				t.Errorf("%s: variant %d repeats earlier bytes", p, n)
			} else {
				seen[sum] = true
			}
			if h, err := imaging.DecodeConfig(v); err != nil || h != head {
				t.Errorf("%s: variant %d: header %+v, %v; want %+v", p, n, h, err, head)
			}
			got, err := imaging.Decode(v, imaging.DefaultLimits)
			if err != nil {
				t.Fatalf("%s: variant %d: OpenCV: %v", p, n, err)
			}
			if got.Width() != orig.Width() || got.Height() != orig.Height() || !bytes.Equal(got.BGR(), orig.BGR()) {
				t.Errorf("%s: variant %d decodes to a different picture", p, n)
			}
			if _, _, err := image.Decode(bytes.NewReader(v)); err != nil && goErr == nil {
				t.Errorf("%s: variant %d: Go's decoder: %v", p, n, err)
			}
		}
	}
	if formats[imaging.JPEG] == 0 || formats[imaging.PNG] == 0 || formats[imaging.WebP] == 0 {
		t.Errorf("formats covered %v, want JPEG, PNG and WebP", formats)
	}
	if _, err := imaging.Variant([]byte("GIF89a...."), "x"); err == nil {
		t.Error("a GIF got a variant; want an error")
	}
}
