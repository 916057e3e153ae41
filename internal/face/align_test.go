package face

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/facestream/facestream/internal/imaging"
)

func alignClose(t *testing.T, got, want imaging.Affine, tol float64) {
	t.Helper()
	for r := 0; r < 2; r++ {
		for c := 0; c < 3; c++ {
			if math.Abs(got[r][c]-want[r][c]) > tol {
				t.Fatalf("transform\n got %v\nwant %v", got, want)
			}
		}
	}
}

func TestEstimateSimilarityRecoversKnownTransform(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 100; i++ {
		scale := 0.05 + 5*rng.Float64()
		theta := (rng.Float64()*2 - 1) * math.Pi
		tx, ty := rng.Float64()*1000-500, rng.Float64()*1000-500
		want := imaging.Affine{
			{scale * math.Cos(theta), -scale * math.Sin(theta), tx},
			{scale * math.Sin(theta), scale * math.Cos(theta), ty},
		}
		src := make([][2]float64, 5)
		dst := make([][2]float64, 5)
		for j := range src {
			src[j] = [2]float64{rng.Float64() * 800, rng.Float64() * 600}
			x, y := want.Apply(src[j][0], src[j][1])
			dst[j] = [2]float64{x, y}
		}
		got, err := EstimateSimilarity(src, dst)
		if err != nil {
			t.Fatal(err)
		}
		alignClose(t, got, want, 1e-9*math.Max(1, math.Abs(tx)+math.Abs(ty)))
	}
}

// TestEstimateSimilarityByHand checks values worked out on paper.
func TestEstimateSimilarityByHand(t *testing.T) {
	// Two points: (0,0)->(0,0), (1,0)->(0,2) is a quarter turn with scale 2.
	got, err := EstimateSimilarity([][2]float64{{0, 0}, {1, 0}}, [][2]float64{{0, 0}, {0, 2}})
	if err != nil {
		t.Fatal(err)
	}
	alignClose(t, got, imaging.Affine{{0, -2, 0}, {2, 0, 0}}, 1e-12)

	// A stretch that no similarity reproduces: x doubles, y stays. With the
	// centred source (±1,0), (0,±1): A = [[1,0],[0,0.5]], var = 1, so the
	// least-squares similarity is a uniform scale of (1+0.5)/1 = 1.5, no
	// rotation; the translation carries the destination mean (10,20).
	got, err = EstimateSimilarity(
		[][2]float64{{1, 0}, {-1, 0}, {0, 1}, {0, -1}},
		[][2]float64{{12, 20}, {8, 20}, {10, 21}, {10, 19}},
	)
	if err != nil {
		t.Fatal(err)
	}
	alignClose(t, got, imaging.Affine{{1.5, 0, 10}, {0, 1.5, 20}}, 1e-12)

	// A mirrored destination: Umeyama never reflects. Source (±1,0),(0,±1)
	// onto (∓1,0),(0,±1): A = [[-0.5,0],[0,0.5]], det < 0; a+e = 0, c-b = 0,
	// so the best rotation-and-scale has scale 0 — degenerate.
	_, err = EstimateSimilarity(
		[][2]float64{{1, 0}, {-1, 0}, {0, 1}, {0, -1}},
		[][2]float64{{-1, 0}, {1, 0}, {0, 1}, {0, -1}},
	)
	if !errors.Is(err, ErrDegenerate) {
		t.Errorf("perfect mirror: %v, want ErrDegenerate", err)
	}
}

// TestEstimateSimilarityMatchesLeastSquares compares with an independent
// solution: a similarity is x' = a·x - b·y + tx, y' = b·x + a·y + ty, linear
// in (a, b, tx, ty), so the least-squares fit is the solution of 4×4 normal
// equations (solved here by Gaussian elimination). Umeyama's optimum over
// rotations × non-negative scales covers the same set, so they must agree.
func TestEstimateSimilarityMatchesLeastSquares(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 50; i++ {
		src := make([][2]float64, 5)
		dst := make([][2]float64, 5)
		for j := range src {
			src[j] = [2]float64{rng.Float64() * 300, rng.Float64() * 300}
			dst[j] = [2]float64{ArcFaceTemplate[j][0] + rng.NormFloat64()*3, ArcFaceTemplate[j][1] + rng.NormFloat64()*3}
		}
		got, err := EstimateSimilarity(src, dst)
		if err != nil {
			t.Fatal(err)
		}
		var m [4][5]float64 // augmented normal equations
		for j := range src {
			x, y := src[j][0], src[j][1]
			rows := [2][4]float64{{x, -y, 1, 0}, {y, x, 0, 1}}
			rhs := [2]float64{dst[j][0], dst[j][1]}
			for k := 0; k < 2; k++ {
				for r := 0; r < 4; r++ {
					for c := 0; c < 4; c++ {
						m[r][c] += rows[k][r] * rows[k][c]
					}
					m[r][4] += rows[k][r] * rhs[k]
				}
			}
		}
		for col := 0; col < 4; col++ {
			piv := col
			for r := col + 1; r < 4; r++ {
				if math.Abs(m[r][col]) > math.Abs(m[piv][col]) {
					piv = r
				}
			}
			m[col], m[piv] = m[piv], m[col]
			for r := 0; r < 4; r++ {
				if r != col {
					f := m[r][col] / m[col][col]
					for c := col; c < 5; c++ {
						m[r][c] -= f * m[col][c]
					}
				}
			}
		}
		a, b, tx, ty := m[0][4]/m[0][0], m[1][4]/m[1][1], m[2][4]/m[2][2], m[3][4]/m[3][3]
		alignClose(t, got, imaging.Affine{{a, -b, tx}, {b, a, ty}}, 1e-7)
	}
}

func TestEstimateSimilarityDegenerate(t *testing.T) {
	same := [][2]float64{{5, 5}, {5, 5}, {5, 5}, {5, 5}, {5, 5}}
	tmpl := ArcFaceTemplate[:]
	nan := [][2]float64{{math.NaN(), 1}, {2, 3}, {4, 5}, {6, 7}, {8, 9}}
	for name, tc := range map[string][2][][2]float64{
		"coincident source":      {same, tmpl},
		"coincident destination": {tmpl, same},
		"nan":                    {nan, tmpl},
		"one point":              {same[:1], tmpl[:1]},
		"length mismatch":        {same, tmpl[:4]},
	} {
		if _, err := EstimateSimilarity(tc[0], tc[1]); !errors.Is(err, ErrDegenerate) {
			t.Errorf("%s: %v, want ErrDegenerate", name, err)
		}
	}
	if _, err := AlignTransform([5][2]float32{}, 112); !errors.Is(err, ErrDegenerate) {
		t.Errorf("zero landmarks: %v", err)
	}
}

func TestTemplateSizes(t *testing.T) {
	for _, tc := range []struct {
		size   int
		x0, y0 float64
	}{
		{112, 38.2946, 51.6963},
		{224, 2 * 38.2946, 2 * 51.6963},
		{128, 38.2946 + 8, 51.6963},
		{256, 2*38.2946 + 16, 2 * 51.6963},
	} {
		tm, err := Template(tc.size)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(tm[0][0]-tc.x0) > 1e-9 || math.Abs(tm[0][1]-tc.y0) > 1e-9 {
			t.Errorf("size %d: first point %v, want %v,%v", tc.size, tm[0], tc.x0, tc.y0)
		}
	}
	if _, err := Template(100); err == nil {
		t.Error("size 100 accepted")
	}
	// Landmarks already on the template align with the identity.
	var lm [5][2]float32
	for i, p := range ArcFaceTemplate {
		lm[i] = [2]float32{float32(p[0]), float32(p[1])}
	}
	m, err := AlignTransform(lm, 112)
	if err != nil {
		t.Fatal(err)
	}
	alignClose(t, m, imaging.Affine{{1, 0, 0}, {0, 1, 0}}, 1e-5)
}

// TestAlignedCropPlacesLandmarks warps a synthetic picture with bright dots
// at known landmarks and checks the dots land on the template.
func TestAlignedCropPlacesLandmarks(t *testing.T) {
	const w, h = 400, 400
	pix := make([]byte, 3*w*h)
	// Landmarks: the template scaled by 2.5, turned 20°, moved to (150, 60).
	theta := 20 * math.Pi / 180
	var lm [5][2]float32
	for i, p := range ArcFaceTemplate {
		x := 2.5*(p[0]*math.Cos(theta)-p[1]*math.Sin(theta)) + 150
		y := 2.5*(p[0]*math.Sin(theta)+p[1]*math.Cos(theta)) + 60
		lm[i] = [2]float32{float32(x), float32(y)}
		for dy := -4; dy <= 4; dy++ {
			for dx := -4; dx <= 4; dx++ {
				px, py := int(math.Round(x))+dx, int(math.Round(y))+dy
				j := 3 * (py*w + px)
				pix[j], pix[j+1], pix[j+2] = 255, 255, 255
			}
		}
	}
	img, err := imaging.FromBGR(w, h, pix)
	if err != nil {
		t.Fatal(err)
	}
	crop, _, err := AlignedCrop(img, lm, 112)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range ArcFaceTemplate {
		// The dot (9 px across, scaled by 1/2.5) is bright around the template point.
		r, _, _ := crop.At(int(math.Round(p[0])), int(math.Round(p[1])))
		if r < 200 {
			t.Errorf("landmark %d: crop pixel at the template point is %d, want bright", i, r)
		}
	}
	if r, _, _ := crop.At(56, 20); r != 0 {
		t.Errorf("forehead pixel %d, want black", r)
	}
}
