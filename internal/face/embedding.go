package face

import "math"

// Normalize scales v to unit L2 length in place and returns its original
// length. A zero vector is left as it is (and 0 is returned).
func Normalize(v []float32) float32 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	n := math.Sqrt(s)
	if n == 0 {
		return 0
	}
	inv := float32(1 / n)
	for i := range v {
		v[i] *= inv
	}
	return float32(n)
}

// Cosine is the cosine similarity of a and b, in [-1, 1]. For the
// L2-normalised embeddings a Recognizer returns it equals their dot product.
// It returns 0 when the lengths differ or either vector is zero: embeddings
// of different models (different dimensions) must never be compared.
func Cosine(a, b []float32) float32 {
	if len(a) != len(b) || len(a) == 0 {
		return 0
	}
	var dot, na, nb float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		dot += x * y
		na += x * x
		nb += y * y
	}
	if na == 0 || nb == 0 {
		return 0
	}
	return float32(dot / math.Sqrt(na*nb))
}
