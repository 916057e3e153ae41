package face

import (
	"math"
	"testing"
)

func TestDecodeGenderAgeBuffalo(t *testing.T) {
	cases := []struct {
		out    []float32
		gender Gender
		age    int
	}{
		{[]float32{2.1, -1.3, 0.274}, Female, 27},
		{[]float32{-0.5, 3.0, 0.615}, Male, 62}, // 61.5 rounds half away from zero
		{[]float32{0.2, 0.1, 0.004}, Female, 0},
		{[]float32{0.1, 0.2, -0.03}, Male, 0}, // negative regression clamps to 0
		{[]float32{1, 1, 0.5}, Female, 50},    // a tie is argmax's first index
	}
	for _, c := range cases {
		got, err := DecodeGenderAgeBuffalo(c.out)
		if err != nil {
			t.Fatal(err)
		}
		if got.Gender != c.gender || got.Age != c.age {
			t.Errorf("%v: got %+v, want %s %d", c.out, got, c.gender, c.age)
		}
		d := float64(c.out[0] - c.out[1])
		want := 1 / (1 + math.Exp(-math.Abs(d)))
		if math.Abs(float64(got.GenderScore)-want) > 1e-6 {
			t.Errorf("%v: gender score %v, want %v", c.out, got.GenderScore, want)
		}
	}
	if _, err := DecodeGenderAgeBuffalo(make([]float32, 202)); err == nil {
		t.Error("202 values accepted as buffalo output")
	}
}

func TestDecodeGenderAge2018(t *testing.T) {
	mk := func(f, m float32, age int) []float32 {
		out := make([]float32, 202)
		out[0], out[1] = f, m
		for k := range 100 {
			if k < age {
				out[2+2*k], out[3+2*k] = -1, 1 // "older than k"
			} else {
				out[2+2*k], out[3+2*k] = 1, -1
			}
		}
		return out
	}
	for _, c := range []struct {
		f, m   float32
		age    int
		gender Gender
	}{{5, -5, 29, Female}, {-2, 4, 53, Male}, {0, 1, 0, Male}, {1, 0, 100, Female}} {
		got, err := DecodeGenderAge2018(mk(c.f, c.m, c.age))
		if err != nil {
			t.Fatal(err)
		}
		if got.Gender != c.gender || got.Age != c.age || got.GenderScore < 0.5 {
			t.Errorf("%+v: got %+v", c, got)
		}
	}
	// The count does not need the rows to be ordered: it is a count.
	out := mk(0, 1, 0)
	out[2+2*70+1] = 3
	out[2+2*3+1] = 3
	if got, _ := DecodeGenderAge2018(out); got.Age != 2 {
		t.Errorf("two scattered positive rows: age %d, want 2", got.Age)
	}
	if _, err := DecodeGenderAge2018(make([]float32, 3)); err == nil {
		t.Error("3 values accepted as 2018 output")
	}
}

// TestBBoxCropTransform checks the buffalo crop against InsightFace's own
// construction: face_align.transform composes scale s, translation
// (−cx·s, −cy·s), rotation 0 and translation (size/2, size/2), with
// s = size / (1.5·max(w, h)) from attribute.py.
func TestBBoxCropTransform(t *testing.T) {
	type m3 = [3][3]float64
	mul := func(a, b m3) (c m3) {
		for i := range 3 {
			for j := range 3 {
				for k := range 3 {
					c[i][j] += a[i][k] * b[k][j]
				}
			}
		}
		return c
	}
	for _, box := range [][4]float32{{100, 50, 200, 250}, {10.5, 20.25, 90.75, 70}, {0, 0, 40, 40}} {
		const size = 96
		w, h := float64(box[2]-box[0]), float64(box[3]-box[1])
		cx, cy := float64(box[0]+box[2])/2, float64(box[1]+box[3])/2
		s := size / (math.Max(w, h) * 1.5)
		t1 := m3{{s, 0, 0}, {0, s, 0}, {0, 0, 1}}
		t2 := m3{{1, 0, -cx * s}, {0, 1, -cy * s}, {0, 0, 1}}
		t3 := m3{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}
		t4 := m3{{1, 0, size / 2}, {0, 1, size / 2}, {0, 0, 1}}
		want := mul(t4, mul(t3, mul(t2, t1))) // skimage: t1 + t2 + t3 + t4 applies t1 first
		got := BBoxCropTransform(box, size)
		for r := range 2 {
			for c := range 3 {
				if math.Abs(got[r][c]-want[r][c]) > 1e-9 {
					t.Fatalf("box %v: M = %v, want %v", box, got, want[:2])
				}
			}
		}
		// The box centre lands on the crop centre, and its longer side spans size/1.5.
		x := got[0][0]*cx + got[0][2]
		y := got[1][1]*cy + got[1][2]
		if math.Abs(x-48) > 1e-9 || math.Abs(y-48) > 1e-9 || math.Abs(got[0][0]*math.Max(w, h)-64) > 1e-9 {
			t.Errorf("box %v: centre → (%v,%v), long side → %v", box, x, y, got[0][0]*math.Max(w, h))
		}
	}
}
