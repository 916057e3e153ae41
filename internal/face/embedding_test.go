package face

import (
	"math"
	"testing"
)

func TestNormalizeAndCosine(t *testing.T) {
	v := []float32{3, 4}
	if n := Normalize(v); n != 5 || v[0] != 0.6 || v[1] != 0.8 {
		t.Errorf("normalize (3,4): length %v, %v", n, v)
	}
	z := []float32{0, 0}
	if n := Normalize(z); n != 0 || z[0] != 0 {
		t.Errorf("normalize 0: %v %v", n, z)
	}
	cases := []struct {
		a, b []float32
		want float32
	}{
		{[]float32{1, 0}, []float32{0, 1}, 0},
		{[]float32{1, 2, 3}, []float32{2, 4, 6}, 1},
		{[]float32{1, 2, 3}, []float32{-1, -2, -3}, -1},
		{[]float32{1, 1}, []float32{1, 0}, float32(1 / math.Sqrt2)},
		{[]float32{1, 1}, []float32{1, 1, 1}, 0}, // different models: never compared
		{[]float32{0, 0}, []float32{1, 1}, 0},
		{nil, nil, 0},
	}
	for _, c := range cases {
		if got := Cosine(c.a, c.b); math.Abs(float64(got-c.want)) > 1e-6 {
			t.Errorf("Cosine(%v, %v) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

func TestPixelNorm(t *testing.T) {
	// 2×1 crop: pixels (R,G,B) = (0,128,255) and (10,20,30).
	rgb := []byte{0, 128, 255, 10, 20, 30}
	p, err := newPixelNorm("BGR", [3]float32{1, 2, 3}, [3]float32{2, 4, 8})
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]float32, 6)
	p.fill(dst, rgb, false)
	// Planes in B, G, R order, each (v - mean[c]) / std[c].
	want := []float32{(255 - 1) / 2.0, (30 - 1) / 2.0, (128 - 2) / 4.0, (20 - 2) / 4.0, (0 - 3) / 8.0, (10 - 3) / 8.0}
	for i := range want {
		if dst[i] != want[i] {
			t.Fatalf("BGR planes %v, want %v", dst, want)
		}
	}
	// The same pixels given as BGR bytes give the same planes.
	bgr := []byte{255, 128, 0, 30, 20, 10}
	dst2 := make([]float32, 6)
	p.fill(dst2, bgr, true)
	for i := range want {
		if dst2[i] != want[i] {
			t.Fatalf("BGR input: planes %v, want %v", dst2, want)
		}
	}
	p, _ = newPixelNorm("RGB", [3]float32{127.5, 127.5, 127.5}, [3]float32{127.5, 127.5, 127.5})
	p.fill(dst, rgb, false)
	if dst[0] != -1 || dst[4] != 1 || dst[1] != (10-127.5)/127.5 {
		t.Errorf("RGB planes %v", dst)
	}
	for _, bad := range []string{"GRB", "rgba"} {
		if _, err := newPixelNorm(bad, [3]float32{}, [3]float32{1, 1, 1}); err == nil {
			t.Errorf("colour order %q accepted", bad)
		}
	}
	if _, err := newPixelNorm("RGB", [3]float32{}, [3]float32{1, 0, 1}); err == nil {
		t.Error("zero std accepted")
	}
}
