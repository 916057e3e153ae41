package imaging_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/facestream/facestream/internal/imaging"
)

func testdata(t testing.TB, rel string) []byte {
	t.Helper()
	dir := os.Getenv("FACESTREAM_TESTDATA")
	if dir == "" {
		t.Fatal("FACESTREAM_TESTDATA is not set (the Makefile sets it to ../shared/testdata)")
	}
	b, err := os.ReadFile(filepath.Join(dir, rel))
	if err != nil {
		t.Fatalf("read test image: %v", err)
	}
	return b
}

// synthetic returns a w×h image whose pixel (x, y) is B=x, G=y, R=x+y (mod 256).
func synthetic(t testing.TB, w, h int) *imaging.Image {
	t.Helper()
	pix := make([]byte, 3*w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			i := 3 * (y*w + x)
			pix[i], pix[i+1], pix[i+2] = byte(x), byte(y), byte(x+y)
		}
	}
	img, err := imaging.FromBGR(w, h, pix)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestDecodeRealImages(t *testing.T) {
	for _, tc := range []struct {
		file   string
		format imaging.Format
		w, h   int
	}{
		{"insightface/images/t1.jpg", imaging.JPEG, 0, 0},
		{"insightface/inspireface/data/rotate/rot_90.jpg", imaging.PNG, 402, 325}, // a PNG named .jpg
		{"insightface/images/Tom_Hanks_54745.png", imaging.PNG, 0, 0},
	} {
		data := testdata(t, tc.file)
		cfg, err := imaging.DecodeConfig(data)
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if cfg.Format != tc.format {
			t.Errorf("%s: format %s, want %s", tc.file, cfg.Format, tc.format)
		}
		img, err := imaging.Decode(data, imaging.DefaultLimits)
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if img.Width() != cfg.Width || img.Height() != cfg.Height {
			t.Errorf("%s: decoded %dx%d, header says %dx%d", tc.file, img.Width(), img.Height(), cfg.Width, cfg.Height)
		}
		if tc.w != 0 && (img.Width() != tc.w || img.Height() != tc.h) {
			t.Errorf("%s: %dx%d, want %dx%d", tc.file, img.Width(), img.Height(), tc.w, tc.h)
		}
	}
}

// pngHeader is a PNG signature and a valid IHDR chunk declaring w×h RGB, with
// no pixel data: what a decompression bomb's header looks like.
func pngHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := make([]byte, 0, 17)
	chunk = append(chunk, "IHDR"...)
	chunk = binary.BigEndian.AppendUint32(chunk, w)
	chunk = binary.BigEndian.AppendUint32(chunk, h)
	chunk = append(chunk, 8, 2, 0, 0, 0)
	_ = binary.Write(&b, binary.BigEndian, uint32(13))
	b.Write(chunk)
	_ = binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.Bytes()
}

func encodePNG(t *testing.T, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDecodeRejects(t *testing.T) {
	small := encodePNG(t, 64, 48)
	jpegData := testdata(t, "insightface/images/t1.jpg")
	for _, tc := range []struct {
		name string
		data []byte
		lim  imaging.Limits
		want error
	}{
		{"empty", nil, imaging.DefaultLimits, imaging.ErrUnsupportedFormat},
		{"text", []byte("hello, world"), imaging.DefaultLimits, imaging.ErrUnsupportedFormat},
		{"gif", []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;"), imaging.DefaultLimits, imaging.ErrUnsupportedFormat},
		{"bomb header", pngHeader(100000, 100000), imaging.DefaultLimits, imaging.ErrTooLarge},
		{"wide header", pngHeader(20000, 10), imaging.DefaultLimits, imaging.ErrTooLarge},
		{"zero size header", pngHeader(0, 10), imaging.DefaultLimits, imaging.ErrCorrupt},
		{"header only", pngHeader(640, 480), imaging.DefaultLimits, imaging.ErrCorrupt},
		{"truncated jpeg header", jpegData[:20], imaging.DefaultLimits, imaging.ErrCorrupt},
		{"pixel budget", small, imaging.Limits{MaxPixels: 1000}, imaging.ErrTooLarge},
		{"decoded byte budget", small, imaging.Limits{MaxDecodedBytes: 64 * 48 * 2}, imaging.ErrTooLarge},
		{"byte budget", small, imaging.Limits{MaxBytes: 10}, imaging.ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, err := imaging.Decode(tc.data, tc.lim)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode = %v, %v; want %v", img, err, tc.want)
			}
		})
	}
	if _, err := imaging.Decode(small, imaging.Limits{MaxPixels: 64 * 48}); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
}

func TestOrientAndRotate(t *testing.T) {
	img := synthetic(t, 5, 3)
	naive := func(tag, x, y int) (int, int) { // destination pixel -> source pixel
		w, h := img.Width(), img.Height()
		switch tag {
		case 2:
			return w - 1 - x, y
		case 3:
			return w - 1 - x, h - 1 - y
		case 4:
			return x, h - 1 - y
		case 5:
			return y, x
		case 6:
			return y, h - 1 - x
		case 7:
			return w - 1 - y, h - 1 - x
		case 8:
			return w - 1 - y, x
		}
		return x, y
	}
	for tag := 1; tag <= 8; tag++ {
		out := img.Orient(tag)
		for y := 0; y < out.Height(); y++ {
			for x := 0; x < out.Width(); x++ {
				sx, sy := naive(tag, x, y)
				r1, g1, b1 := out.At(x, y)
				r2, g2, b2 := img.At(sx, sy)
				if r1 != r2 || g1 != g2 || b1 != b2 {
					t.Fatalf("tag %d: pixel (%d,%d) should come from (%d,%d)", tag, x, y, sx, sy)
				}
			}
		}
	}
	// Four quarter turns are the identity, and -1 is 3.
	r := img
	for i := 0; i < 4; i++ {
		r = r.Rotate90(1)
	}
	if !bytes.Equal(r.BGR(), img.BGR()) {
		t.Error("four quarter turns changed the image")
	}
	if !bytes.Equal(img.Rotate90(-1).BGR(), img.Rotate90(3).BGR()) {
		t.Error("Rotate90(-1) != Rotate90(3)")
	}
	// Clockwise: the top-left pixel moves to the top-right corner.
	cw := img.Rotate90(1)
	if cw.Width() != 3 || cw.Height() != 5 {
		t.Fatalf("rotated size %dx%d", cw.Width(), cw.Height())
	}
	r1, g1, b1 := cw.At(2, 0)
	r2, g2, b2 := img.At(0, 0)
	if r1 != r2 || g1 != g2 || b1 != b2 {
		t.Error("Rotate90(1) is not clockwise")
	}
}

func TestLetterboxSize(t *testing.T) {
	// Values computed by hand with scrfd.py's formula.
	for _, tc := range []struct {
		sw, sh, nw, nh int
		scale          float64
	}{
		{1280, 720, 640, 360, 0.5},
		{720, 1280, 360, 640, 0.5},
		{325, 402, 517, 640, 640.0 / 402},  // int(640 / (402/325)) = int(517.41)
		{1000, 667, 640, 426, 426.0 / 667}, // int(640 * 0.667) = int(426.88)
		{640, 640, 640, 640, 1},
	} {
		lb := imaging.LetterboxSize(tc.sw, tc.sh, 640, 640)
		if lb.ResizedWidth != tc.nw || lb.ResizedHeight != tc.nh || math.Abs(lb.Scale-tc.scale) > 1e-12 {
			t.Errorf("%dx%d: got %+v, want %dx%d scale %v", tc.sw, tc.sh, lb, tc.nw, tc.nh, tc.scale)
		}
	}
}

func TestLetterboxTensor(t *testing.T) {
	img := synthetic(t, 200, 100)
	norm := imaging.Normalize{Order: imaging.RGB, Mean: [3]float32{127.5, 127.5, 127.5}, Std: [3]float32{128, 128, 128}}
	const w, h = 64, 64
	dst := make([]float32, 3*w*h)
	lb, err := img.LetterboxTensor(dst, w, h, norm)
	if err != nil {
		t.Fatal(err)
	}
	if lb.ResizedWidth != 64 || lb.ResizedHeight != 32 || lb.Scale != 0.32 {
		t.Fatalf("letterbox %+v", lb)
	}
	// Reference: resize, then normalise each pixel one by one.
	small, err := img.Resize(64, 32)
	if err != nil {
		t.Fatal(err)
	}
	pad := float32(-127.5 / 128)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			want := [3]float32{pad, pad, pad}
			if x < 64 && y < 32 {
				r, g, b := small.At(x, y)
				want = [3]float32{(float32(r) - 127.5) / 128, (float32(g) - 127.5) / 128, (float32(b) - 127.5) / 128}
			}
			for c := 0; c < 3; c++ {
				if got := dst[c*w*h+y*w+x]; got != want[c] {
					t.Fatalf("(%d,%d) channel %d = %v, want %v", x, y, c, got, want[c])
				}
			}
		}
	}
	// BGR order and the no-resize path.
	bgr := imaging.Normalize{Order: imaging.BGR, Std: [3]float32{1, 1, 1}}
	full := make([]float32, 3*200*100)
	if err := img.Tensor(full, bgr); err != nil {
		t.Fatal(err)
	}
	if full[0*20000+10*200+7] != 7 || full[1*20000+10*200+7] != 10 || full[2*20000+10*200+7] != 17 {
		t.Error("BGR tensor has the wrong channel order")
	}
	// Fitted into 32×32 at the top-left of the 64×64 canvas: the same
	// picture at half the size, the rest padding.
	fit := make([]float32, 3*w*h)
	lbf, err := img.LetterboxTensorFit(fit, w, h, 32, 32, norm)
	if err != nil {
		t.Fatal(err)
	}
	if lbf.ResizedWidth != 32 || lbf.ResizedHeight != 16 || lbf.Scale != 0.16 {
		t.Fatalf("fit letterbox %+v", lbf)
	}
	half, _ := img.Resize(32, 16)
	r, _, _ := half.At(31, 15)
	if fit[31+15*w] != (float32(r)-127.5)/128 || fit[32+15*w] != pad || fit[31+16*w] != pad {
		t.Error("fitted letterbox misplaced")
	}
	if _, err := img.LetterboxTensorFit(fit, w, h, 65, 32, norm); err == nil {
		t.Error("fit larger than the canvas accepted")
	}
	if _, err := img.LetterboxTensor(make([]float32, 5), w, h, norm); err == nil {
		t.Error("short destination accepted")
	}
	if _, err := img.LetterboxTensor(dst, w, h, imaging.Normalize{Order: imaging.RGB}); err == nil {
		t.Error("zero std accepted")
	}
}

func TestWarpAffine(t *testing.T) {
	img := synthetic(t, 40, 30)
	// An integer translation moves pixels exactly and fills the rest with black.
	out, err := img.WarpAffine(imaging.Affine{{1, 0, 5}, {0, 1, 3}}, 40, 30)
	if err != nil {
		t.Fatal(err)
	}
	for y := 0; y < 30; y++ {
		for x := 0; x < 40; x++ {
			r, g, b := out.At(x, y)
			var wr, wg, wb uint8
			if x >= 5 && y >= 3 {
				wr, wg, wb = img.At(x-5, y-3)
			}
			if r != wr || g != wg || b != wb {
				t.Fatalf("(%d,%d) = %d,%d,%d want %d,%d,%d", x, y, r, g, b, wr, wg, wb)
			}
		}
	}
	// Bilinear: half a pixel between two columns averages them.
	two, _ := imaging.FromBGR(2, 1, []byte{0, 0, 0, 100, 100, 100})
	half, err := two.WarpAffine(imaging.Affine{{1, 0, -0.5}, {0, 1, 0}}, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if r, _, _ := half.At(0, 0); r != 50 {
		t.Errorf("bilinear midpoint = %d, want 50", r)
	}
	if _, err := img.WarpAffine(imaging.Affine{}, 0, 10); !errors.Is(err, imaging.ErrEmpty) {
		t.Errorf("zero-size warp: %v", err)
	}
}

func TestCenteredTransform(t *testing.T) {
	// InsightFace transform(center=(50,40), output_size=96, scale=0.5, rotation=0):
	// M = [[0.5, 0, 48-25], [0, 0.5, 48-20]].
	a := imaging.CenteredTransform(50, 40, 0.5, 0, 96)
	want := imaging.Affine{{0.5, 0, 23}, {0, 0.5, 28}}
	for r := 0; r < 2; r++ {
		for c := 0; c < 3; c++ {
			if math.Abs(a[r][c]-want[r][c]) > 1e-12 {
				t.Fatalf("M = %v, want %v", a, want)
			}
		}
	}
	// With rotation the centre still lands on the output centre, and distances scale.
	a = imaging.CenteredTransform(50, 40, 2, 30, 96)
	if x, y := a.Apply(50, 40); math.Abs(x-48) > 1e-9 || math.Abs(y-48) > 1e-9 {
		t.Errorf("centre maps to %v,%v", x, y)
	}
	x0, y0 := a.Apply(50, 40)
	x1, y1 := a.Apply(53, 44)
	if d := math.Hypot(x1-x0, y1-y0); math.Abs(d-10) > 1e-9 {
		t.Errorf("distance 5 became %v, want 10", d)
	}
	inv, ok := a.Invert()
	if !ok {
		t.Fatal("not invertible")
	}
	if x, y := inv.Apply(a.Apply(7, 9)); math.Abs(x-7) > 1e-9 || math.Abs(y-9) > 1e-9 {
		t.Errorf("inverse gives %v,%v", x, y)
	}
	img := synthetic(t, 100, 80)
	crop, _, err := img.CenteredCrop(50, 40, 1, 0, 20)
	if err != nil {
		t.Fatal(err)
	}
	// Scale 1, no rotation: the crop is the 20×20 window from (40,30).
	r1, g1, b1 := crop.At(3, 4)
	r2, g2, b2 := img.At(43, 34)
	if r1 != r2 || g1 != g2 || b1 != b2 {
		t.Error("centred crop is misplaced")
	}
}

func TestSharpnessAndBrightness(t *testing.T) {
	flat, _ := imaging.FromBGR(20, 20, bytes.Repeat([]byte{100}, 3*20*20))
	if s, err := flat.Sharpness(flat.Bounds()); err != nil || s != 0 {
		t.Errorf("flat sharpness = %v, %v", s, err)
	}
	if b, err := flat.Brightness(image.Rect(-5, -5, 10, 10)); err != nil || b != 100 {
		t.Errorf("flat brightness = %v, %v", b, err)
	}
	// A checkerboard is sharp; the same board blurred (downscale, upscale) is less so.
	board := image.NewGray(image.Rect(0, 0, 64, 64))
	for y := 0; y < 64; y++ {
		for x := 0; x < 64; x++ {
			if (x/4+y/4)%2 == 0 {
				board.Pix[y*64+x] = 255
			}
		}
	}
	sharp, err := imaging.FromStd(board)
	if err != nil {
		t.Fatal(err)
	}
	small, _ := sharp.Resize(16, 16)
	blurred, _ := small.Resize(64, 64)
	s1, _ := sharp.Sharpness(sharp.Bounds())
	s2, _ := blurred.Sharpness(blurred.Bounds())
	if !(s1 > s2 && s2 > 0) {
		t.Errorf("sharpness sharp=%v blurred=%v", s1, s2)
	}
	if b, _ := sharp.Brightness(sharp.Bounds()); math.Abs(b-127.5) > 0.01 {
		t.Errorf("board brightness = %v", b)
	}
	if _, err := flat.Sharpness(image.Rect(30, 30, 40, 40)); !errors.Is(err, imaging.ErrEmpty) {
		t.Errorf("region outside the image: %v", err)
	}
}

func TestDrawAndEncode(t *testing.T) {
	black, _ := imaging.FromBGR(50, 40, make([]byte, 3*50*40))
	red := color.RGBA{R: 255, A: 255}
	out, err := black.Draw(
		imaging.Rect{X0: 10, Y0: 10, X1: 30, Y1: 30, Color: red, Thickness: 1},
		imaging.Dot{X: 40, Y: 5, Radius: 2, Color: color.RGBA{G: 255, A: 255}},
		imaging.Text{X: 2, Y: 38, Text: "0.99", Color: color.RGBA{B: 255, A: 255}},
	)
	if err != nil {
		t.Fatal(err)
	}
	if r, g, b := out.At(10, 20); r != 255 || g != 0 || b != 0 {
		t.Errorf("rectangle edge = %d,%d,%d, want red", r, g, b)
	}
	if r, g, b := out.At(40, 5); r != 0 || g != 255 || b != 0 {
		t.Errorf("dot = %d,%d,%d, want green", r, g, b)
	}
	if r, _, _ := black.At(10, 20); r != 0 {
		t.Error("Draw modified its receiver")
	}
	pngData, err := out.EncodePNG()
	if err != nil {
		t.Fatal(err)
	}
	back, err := imaging.Decode(pngData, imaging.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.BGR(), out.BGR()) {
		t.Error("PNG round trip changed pixels")
	}
	jpg, err := out.EncodeJPEG(0)
	if err != nil {
		t.Fatal(err)
	}
	if f, _ := imaging.Sniff(jpg); f != imaging.JPEG {
		t.Errorf("EncodeJPEG gave %s", f)
	}
	if _, err := out.EncodeJPEG(101); err == nil {
		t.Error("quality 101 accepted")
	}
}

func TestFromRGBAndStd(t *testing.T) {
	img, err := imaging.FromRGB(2, 1, []byte{1, 2, 3, 4, 5, 6})
	if err != nil {
		t.Fatal(err)
	}
	if r, g, b := img.At(1, 0); r != 4 || g != 5 || b != 6 {
		t.Errorf("At = %d,%d,%d", r, g, b)
	}
	if !bytes.Equal(img.RGB(), []byte{1, 2, 3, 4, 5, 6}) {
		t.Error("RGB round trip")
	}
	std := img.Std()
	if c := std.RGBAAt(0, 0); c.R != 1 || c.G != 2 || c.B != 3 || c.A != 255 {
		t.Errorf("Std = %v", c)
	}
	if _, err := imaging.FromBGR(2, 2, make([]byte, 5)); err == nil {
		t.Error("short buffer accepted")
	}
}
