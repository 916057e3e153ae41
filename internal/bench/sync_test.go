package bench

import (
	"math"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"
)

func TestPoissonArrivals(t *testing.T) {
	const rate, d = 12.0, 100 * time.Second
	at := poissonArrivals(rand.New(rand.NewPCG(1, 2)), rate, d)
	// A Poisson count of mean 1200 has a standard deviation of ≈ 35.
	if n := float64(len(at)); math.Abs(n-rate*d.Seconds()) > 5*math.Sqrt(rate*d.Seconds()) {
		t.Errorf("%d arrivals at %v/s over %v", len(at), rate, d)
	}
	var gaps []float64
	for i, a := range at {
		if a >= d || (i > 0 && a < at[i-1]) {
			t.Fatalf("arrival %d at %v: not increasing within %v", i, a, d)
		}
		if i > 0 {
			gaps = append(gaps, (a - at[i-1]).Seconds())
		}
	}
	// Exponential gaps: the standard deviation equals the mean.
	mean, sq := 0.0, 0.0
	for _, g := range gaps {
		mean += g
	}
	mean /= float64(len(gaps))
	for _, g := range gaps {
		sq += (g - mean) * (g - mean)
	}
	if sd := math.Sqrt(sq / float64(len(gaps))); math.Abs(sd/mean-1) > 0.15 {
		t.Errorf("gap mean %.4f s, standard deviation %.4f s: not exponential", mean, sd)
	}
	if poissonArrivals(rand.New(rand.NewPCG(1, 2)), 0, d) != nil {
		t.Error("arrivals at rate 0")
	}
}

func TestModelTimeOfAnImage(t *testing.T) {
	m := ModelTime{SecondScale: 320, PerRunMS: map[string]float64{
		"detector": 10, "detector@320": 3, "recognizer": 2, "genderage": 1, "emotion": 4,
	}}
	for _, c := range []struct {
		passes, second, faces int
		model, strict         float64
	}{
		{1, 0, 0, 10, 10},
		{1, 1, 0, 13, 10},
		{1, 1, 2, 13 + 2*7, 10 + 2*7},
		{4, 2, 1, 4*10 + 2*3 + 7, 10 + 7}, // the rotation search: four passes, two with the second scale
	} {
		if got := m.imageMS(c.passes, c.second, c.faces); got != c.model {
			t.Errorf("%d + %d runs, %d faces: %.1f ms, want %.1f", c.passes, c.second, c.faces, got, c.model)
		}
		if got := m.strictMS(c.faces); got != c.strict {
			t.Errorf("strict, %d faces: %.1f ms, want %.1f", c.faces, got, c.strict)
		}
	}
}

func TestScoreAgainstBounds(t *testing.T) {
	r := &SyncResult{Model: ModelTime{SecondScale: 320, PerRunMS: map[string]float64{
		"detector": 10, "detector@320": 5, "recognizer": 5, // 15 ms a pass, 5 ms a face
	}}}
	infos := []imageInfo{{passes: 1, second: 1, faces: 1}, {passes: 4, second: 4, faces: 0}}
	// Bounds: image 0 → 2 × 20 + 20 = 60 ms; image 1 (rejected, 4 passes) → 2 × 60 + 20 = 140 ms.
	for range 98 {
		r.PerRequest = append(r.PerRequest, SyncRequest{Status: http.StatusOK, Faces: 1, LatencyMS: 50, img: 0})
	}
	r.PerRequest = append(r.PerRequest,
		SyncRequest{Status: http.StatusUnprocessableEntity, Reason: "no_face", LatencyMS: 130, img: 1}, // within
		SyncRequest{Status: http.StatusOK, Faces: 1, LatencyMS: 80, OpenAtArrival: 2, img: 0})          // 20 ms over, behind two others
	r.score(infos)
	if q := r.PerRequest[98]; q.BoundMS != 140 || q.ModelMS != 60 || q.StrictBoundMS != 40 {
		t.Errorf("rejected request: model %.0f, bound %.0f, strict bound %.0f; want 60, 140, 40", q.ModelMS, q.BoundMS, q.StrictBoundMS)
	}
	if r.Target.Within != 0.99 || !r.Target.Pass || r.Target.OverP99MS != -10 {
		t.Errorf("one of 100 over: within %.2f, p99 over %.0f ms, pass %v; want 0.99, -10, true", r.Target.Within, r.Target.OverP99MS, r.Target.Pass)
	}
	if r.Target.OverBound.N != 1 || r.Target.InBound.N != 99 {
		t.Errorf("groups %d within, %d over", r.Target.InBound.N, r.Target.OverBound.N)
	}
	if a, q := r.Target.Alone, r.Target.Queued; a.N != 99 || a.Within != 1 || q.N != 1 || q.Within != 0 || q.OverP99MS != 20 {
		t.Errorf("alone %+v, queued %+v", a, q)
	}
	// The strict bound of the rejected request is 40 ms: now two are over.
	if r.Strict.Pass || r.Strict.Within != 0.98 {
		t.Errorf("strict: within %.2f, pass %v; want 0.98, false", r.Strict.Within, r.Strict.Pass)
	}
	// A failed request is outside any bound (+Inf over it): with it, the
	// 99th of 100 is the request 20 ms over.
	r.PerRequest[0] = SyncRequest{Status: http.StatusGatewayTimeout, LatencyMS: 1, img: 0}
	r.score(infos)
	if r.Target.Pass || r.Target.Within != 0.98 || r.Target.OverP99MS != 20 || !math.IsInf(quantileOver(r), 1) {
		t.Errorf("with a 504: within %.2f, p99 over %v, pass %v; want 0.98, 20, false", r.Target.Within, r.Target.OverP99MS, r.Target.Pass)
	}
	if r.FaceMismatch != 0 {
		t.Errorf("face mismatch %d", r.FaceMismatch)
	}
}

// quantileOver is the largest latency − bound of r's requests.
func quantileOver(r *SyncResult) float64 {
	worst := math.Inf(-1)
	for _, q := range r.PerRequest {
		o := q.LatencyMS - q.BoundMS
		if !q.answered() {
			o = math.Inf(1)
		}
		worst = max(worst, o)
	}
	return worst
}
