package face

import (
	"math"
	"testing"

	"github.com/facestream/facestream/pkg/onnx"
)

// scrfdFake builds the raw outputs of an SCRFD head layout for a w×h input,
// all scores zero except one anchor, with a leading batch dimension or not.
func scrfdFake(l scrfdLayout, w, h, strideIdx, col, row, anchor int, score float32, dist [4]float32, kps [10]float32, batch bool) []onnx.Tensor {
	fmc := len(l.strides)
	outs := make([]onnx.Tensor, l.outputs())
	for i, s := range l.strides {
		n := (w / s) * (h / s) * l.anchors
		shape := func(c int) []int64 {
			if batch {
				return []int64{1, int64(n), int64(c)}
			}
			return []int64{int64(n), int64(c)}
		}
		outs[i] = onnx.Tensor{Shape: shape(1), Data: make([]float32, n)}
		outs[i+fmc] = onnx.Tensor{Shape: shape(4), Data: make([]float32, 4*n)}
		if l.kps {
			outs[i+2*fmc] = onnx.Tensor{Shape: shape(10), Data: make([]float32, 10*n)}
		}
		if i == strideIdx {
			k := (row*(w/s)+col)*l.anchors + anchor
			outs[i].Data[k] = score
			copy(outs[i+fmc].Data[4*k:], dist[:])
			if l.kps {
				copy(outs[i+2*fmc].Data[10*k:], kps[:])
			}
		}
	}
	return outs
}

func TestSCRFDLayouts(t *testing.T) {
	dist := [4]float32{1, 2, 3, 4}
	kps := [10]float32{0.5, -0.5, 1, -1, 1.5, -1.5, 2, -2, 2.5, -2.5}
	for _, tc := range []struct {
		outputs   int
		strideIdx int
		batch     bool
	}{
		{6, 0, false}, {9, 1, false}, {9, 2, true}, {10, 3, true}, {15, 4, false}, {15, 0, true},
	} {
		l, err := newSCRFDLayout(tc.outputs)
		if err != nil {
			t.Fatal(err)
		}
		const w, h = 256, 128
		stride := l.strides[tc.strideIdx]
		col, row := (w/stride)-1, (h/stride)-1
		anchor := l.anchors - 1
		outs := scrfdFake(l, w, h, tc.strideIdx, col, row, anchor, 0.7, dist, kps, tc.batch)
		got, err := l.decode(outs, w, h, 0.5, nil)
		if err != nil {
			t.Fatalf("%d outputs: %v", tc.outputs, err)
		}
		if len(got) != 1 {
			t.Fatalf("%d outputs: %d candidates, want 1", tc.outputs, len(got))
		}
		s := float32(stride)
		ax, ay := float32(col)*s, float32(row)*s
		want := candidate{box: [4]float32{ax - 1*s, ay - 2*s, ax + 3*s, ay + 4*s}, score: 0.7}
		if l.kps {
			for j := 0; j < 5; j++ {
				want.kps[j] = [2]float32{ax + kps[2*j]*s, ay + kps[2*j+1]*s}
			}
		}
		if got[0] != want {
			t.Errorf("%d outputs, stride %d: got %+v, want %+v", tc.outputs, stride, got[0], want)
		}
		// Below the threshold nothing comes out.
		if got, _ := l.decode(outs, w, h, 0.75, nil); len(got) != 0 {
			t.Errorf("%d outputs: %d candidates above 0.75", tc.outputs, len(got))
		}
		// A wrong input size is caught, not misread.
		if _, err := l.decode(outs, w*2, h, 0.5, nil); err == nil {
			t.Errorf("%d outputs: decoding for the wrong input size succeeded", tc.outputs)
		}
	}
	if _, err := newSCRFDLayout(12); err == nil {
		t.Error("12 outputs accepted")
	}
}

func TestYuNetDecode(t *testing.T) {
	names := []string{"cls_8", "cls_16", "cls_32", "obj_8", "obj_16", "obj_32", "bbox_8", "bbox_16", "bbox_32", "kps_8", "kps_16", "kps_32"}
	// Feed them shuffled: the layout finds heads by name.
	order := []int{6, 0, 9, 3, 7, 1, 10, 4, 8, 2, 11, 5}
	shuffled := make([]string, 12)
	for i, j := range order {
		shuffled[i] = names[j]
	}
	l, err := newYuNetLayout(shuffled)
	if err != nil {
		t.Fatal(err)
	}
	const w, h = 64, 32
	outs := make([]onnx.Tensor, 12)
	for i, j := range order {
		s := yunetStrides[j%3]
		n := (w / s) * (h / s)
		c := []int{1, 1, 4, 10}[j/3]
		outs[i] = onnx.Tensor{Shape: []int64{1, int64(n), int64(c)}, Data: make([]float32, n*c)}
	}
	at := func(name string) []float32 {
		for i, n := range shuffled {
			if n == name {
				return outs[i].Data
			}
		}
		t.Fatalf("no %s", name)
		return nil
	}
	// One face at stride 16, row 1, column 2 (idx 1*4+2 = 6).
	at("cls_16")[6], at("obj_16")[6] = 0.81, 1.2 // obj is clamped to 1: score √0.81 = 0.9
	copy(at("bbox_16")[24:], []float32{0.5, 0.25, float32(math.Log(2)), 0})
	copy(at("kps_16")[60:], []float32{0, 0, 1, 0, 0.5, 0.5, 0, 1, 1, 1})
	got, err := l.decode(outs, w, h, 0.6, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("%d candidates", len(got))
	}
	c := got[0]
	// Centre ((2+0.5)·16, (1+0.25)·16) = (40, 20); size 32×16.
	want := [4]float32{24, 12, 56, 28}
	for i := range want {
		if math.Abs(float64(c.box[i]-want[i])) > 1e-4 {
			t.Fatalf("box %v, want %v", c.box, want)
		}
	}
	if math.Abs(float64(c.score-0.9)) > 1e-6 || c.kps[0] != [2]float32{32, 16} || c.kps[4] != [2]float32{48, 32} {
		t.Errorf("candidate %+v", c)
	}
}

func TestNMS(t *testing.T) {
	c := []candidate{
		{box: [4]float32{0, 0, 9, 9}, score: 0.9},
		{box: [4]float32{1, 1, 10, 10}, score: 0.8},   // IoU (inclusive) 81/119 = 0.68: dropped
		{box: [4]float32{20, 20, 29, 29}, score: 0.7}, // apart: kept
		{box: [4]float32{5, 0, 14, 9}, score: 0.6},    // IoU 50/150 = 0.33 with the first: kept at 0.4
	}
	got := nmsInclusive(append([]candidate(nil), c...), 0.4)
	if len(got) != 3 || got[0].score != 0.9 || got[1].score != 0.7 || got[2].score != 0.6 {
		t.Errorf("nmsInclusive: %+v", got)
	}
	// OpenCV's integer rects: IoU of the 4th with the 1st is 36/126 = 0.29 (9-wide rects);
	// scores must be strictly above the score threshold.
	got = nmsIntRects(append([]candidate(nil), c...), 0.6, 0.3)
	if len(got) != 2 || got[0].score != 0.9 || got[1].score != 0.7 {
		t.Errorf("nmsIntRects: %+v", got)
	}
}

func TestSelectFacesAndUnrotate(t *testing.T) {
	faces := []Face{
		{Box: [4]float32{0, 0, 50, 50}, Score: 0.9},     // large, far from the centre
		{Box: [4]float32{90, 90, 110, 110}, Score: 0.8}, // small, central
		{Box: [4]float32{80, 80, 120, 120}, Score: 0.7}, // medium, central
	}
	got := selectFaces(faces, 2, false, 200, 200)
	if len(got) != 2 || got[0].Score != 0.7 || got[1].Score != 0.8 {
		t.Errorf("central: %+v", got)
	}
	got = selectFaces(faces, 1, true, 200, 200)
	if len(got) != 1 || got[0].Score != 0.9 {
		t.Errorf("largest: %+v", got)
	}
	// A point carried into each turn and back returns to itself.
	for k := 0; k < 4; k++ {
		x, y := rotateForward(30, 7, k, 100, 60)
		if bx, by := unrotate(x, y, k, 100, 60); bx != 30 || by != 7 {
			t.Errorf("k=%d: (30,7) -> (%v,%v) -> (%v,%v)", k, x, y, bx, by)
		}
	}
	// Upright landmarks look upright; turned ones do not.
	var f Face
	for i, p := range ArcFaceTemplate {
		f.Landmarks[i] = [2]float32{float32(p[0]), float32(p[1])}
	}
	if !looksUpright(f) {
		t.Error("template does not look upright")
	}
	for k := 1; k < 4; k++ {
		g := f
		for i, p := range f.Landmarks {
			g.Landmarks[i][0], g.Landmarks[i][1] = rotateForward(p[0], p[1], k, 112, 112)
		}
		if looksUpright(g) {
			t.Errorf("template turned %d° looks upright", 90*k)
		}
	}
}
