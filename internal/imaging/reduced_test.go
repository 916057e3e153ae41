package imaging_test

import (
	"testing"

	"github.com/facestream/facestream/internal/imaging"
)

func TestReduction(t *testing.T) {
	jpeg := func(w, h int) imaging.Config { return imaging.Config{Format: imaging.JPEG, Width: w, Height: h} }
	tests := []struct {
		c       imaging.Config
		minSide int
		want    int
	}{
		{jpeg(640, 480), 640, 1},
		{jpeg(1279, 900), 640, 2}, // 640 after halving, rounded up: ceil(1279/2) = 640
		{jpeg(1278, 900), 640, 1}, // 639 after halving: too small
		{jpeg(1280, 960), 640, 2},
		{jpeg(900, 2600), 640, 4},  // the longer side counts
		{jpeg(4000, 3000), 640, 4}, // 1000 × 750; ÷8 would be 500
		{jpeg(6000, 4000), 640, 8}, // 750
		{jpeg(20000, 20000), 640, 8},
		{jpeg(4000, 3000), 0, 1},
		{imaging.Config{Format: imaging.PNG, Width: 4000, Height: 3000}, 640, 1},
	}
	for _, tt := range tests {
		if got := imaging.Reduction(tt.c, tt.minSide); got != tt.want {
			t.Errorf("Reduction(%s %dx%d, %d) = %d, want %d", tt.c.Format, tt.c.Width, tt.c.Height, tt.minSide, got, tt.want)
		}
	}
}

// TestDecodeReducedMatchesTheWholePicture: a JPEG decoded at ½, ¼ and ⅛ has
// the reduced size and the whole decode's r×r block averages, up to the
// scaled inverse DCT's rounding.
func TestDecodeReducedMatchesTheWholePicture(t *testing.T) {
	data := testdata(t, "deepface/img54.jpg") // 2000 × 2400
	whole, err := imaging.Decode(data, imaging.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []int{2, 4, 8} {
		red, err := imaging.DecodeReduced(data, imaging.DefaultLimits, r)
		if err != nil {
			t.Fatal(err)
		}
		if w, h := (whole.Width()+r-1)/r, (whole.Height()+r-1)/r; red.Width() != w || red.Height() != h {
			t.Fatalf("reduced by %d: %dx%d, want %dx%d", r, red.Width(), red.Height(), w, h)
		}
		var sum float64
		n := 0
		for y := 0; y+1 < red.Height(); y += 7 {
			for x := 0; x+1 < red.Width(); x += 7 {
				var acc [3]int
				for dy := range r {
					for dx := range r {
						cr, cg, cb := whole.At(x*r+dx, y*r+dy)
						acc[0], acc[1], acc[2] = acc[0]+int(cr), acc[1]+int(cg), acc[2]+int(cb)
					}
				}
				rr, rg, rb := red.At(x, y)
				for i, v := range []uint8{rr, rg, rb} {
					d := float64(v) - float64(acc[i])/float64(r*r)
					sum += d * d
					n++
				}
			}
		}
		if rms := sqrt(sum / float64(n)); rms > 6 {
			t.Errorf("reduced by %d: RMS difference from the whole picture's block means %.2f levels, want at most 6", r, rms)
		} else {
			t.Logf("reduced by %d: %dx%d, RMS difference %.2f levels", r, red.Width(), red.Height(), rms)
		}
	}
	if _, err := imaging.DecodeReduced(data, imaging.DefaultLimits, 3); err == nil {
		t.Error("a reduction by 3 was accepted")
	}
	// The limits apply to the stored size, not the reduced one.
	lim := imaging.DefaultLimits
	lim.MaxPixels = 1_000_000
	if _, err := imaging.DecodeReduced(data, lim, 8); err == nil {
		t.Error("a 4.8-megapixel picture passed a 1-megapixel limit when reduced")
	}
}

func sqrt(x float64) float64 {
	z := x / 2
	if z == 0 {
		return 0
	}
	for range 30 {
		z = (z + x/z) / 2
	}
	return z
}
