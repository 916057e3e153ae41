package face

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/facestream/facestream/internal/imaging"
	"github.com/facestream/facestream/internal/modelpack"
	"github.com/facestream/facestream/pkg/onnx"
)

// detCountImages are the images with a known face count (MODELS.md: every
// detector export agrees on them at score 0.5 for SCRFD, 0.6 for YuNet).
var detCountImages = []struct {
	file  string
	faces int
}{
	{"insightface/images/t1.jpg", 6},
	{"deepface/couple.jpg", 2},
	{"deepface/selfie-many-people.jpg", 6},
	{"insightface/inspireface/data/bulk/view.jpg", 0},
}

func TestDetectCounts(t *testing.T) {
	for _, name := range []string{"det_500m", "yunet", "yunet_dynamic"} {
		d := detOpen(t, name, DetectorOptions{})
		for _, tc := range detCountImages {
			faces, err := d.Detect(detImage(t, tc.file))
			if err != nil {
				t.Fatalf("%s %s: %v", name, tc.file, err)
			}
			if len(faces) != tc.faces {
				t.Errorf("%s %s: %d faces, want %d", name, tc.file, len(faces), tc.faces)
			}
			for i, f := range faces {
				if !f.HasLandmarks() || f.Score < 0.5 || f.Width() < 10 || f.Height() < 10 {
					t.Errorf("%s %s face %d: implausible %+v", name, tc.file, i, f)
				}
				if i > 0 && f.Score > faces[i-1].Score {
					t.Errorf("%s %s: faces not ordered by score", name, tc.file)
				}
			}
		}
	}
}

// detMaxDiff is the largest coordinate difference between two face lists
// matched in order; it fails when the counts differ.
func detMaxDiff(t *testing.T, what string, a, b []Face) float64 {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: %d faces vs %d", what, len(a), len(b))
	}
	var worst float64
	for i := range a {
		for j := 0; j < 4; j++ {
			worst = math.Max(worst, math.Abs(float64(a[i].Box[j]-b[i].Box[j])))
		}
		for j := 0; j < 5; j++ {
			for k := 0; k < 2; k++ {
				worst = math.Max(worst, math.Abs(float64(a[i].Landmarks[j][k]-b[i].Landmarks[j][k])))
			}
		}
	}
	return worst
}

// TestSCRFDExportParity: exports of the same network (SCRFD-500M: 2 files,
// SCRFD-2.5G: 3 files, with different output names, a fixed or dynamic
// input, and [N,C] or [1,N,C] outputs) give the same faces within 1 px.
func TestSCRFDExportParity(t *testing.T) {
	for _, family := range [][]string{
		{"det_500m", "scrfd_500m_kps"},
		{"det_2.5g", "scrfd_2.5g_bnkps", "scrfd_2.5g_kps"},
	} {
		base := detOpen(t, family[0], DetectorOptions{})
		for _, other := range family[1:] {
			d := detOpen(t, other, DetectorOptions{})
			var worst float64
			for _, tc := range detCountImages {
				img := detImage(t, tc.file)
				a, err := base.Detect(img)
				if err != nil {
					t.Fatal(err)
				}
				b, err := d.Detect(img)
				if err != nil {
					t.Fatal(err)
				}
				worst = math.Max(worst, detMaxDiff(t, family[0]+" vs "+other+" on "+tc.file, a, b))
			}
			t.Logf("%s vs %s: max difference %.4f px", family[0], other, worst)
			if worst > 1 {
				t.Errorf("%s vs %s: max difference %.3f px, want ≤ 1", family[0], other, worst)
			}
		}
	}
}

// TestSCRFDMatchesReference compares every SCRFD export with the naive
// line-by-line port of scrfd.py in detect_reference_test.go.
func TestSCRFDMatchesReference(t *testing.T) {
	rt, models, _ := detEnv(t)
	for _, name := range detSCRFDExports {
		m := detModels[name]
		d := detOpen(t, name, DetectorOptions{})
		ref := newRefSCRFD(t, rt, models, m)
		var worst float64
		for _, tc := range detCountImages {
			img := detImage(t, tc.file)
			got, err := d.Detect(img)
			if err != nil {
				t.Fatal(err)
			}
			want := ref.detect(t, img, 0.5)
			worst = math.Max(worst, detMaxDiff(t, name+" vs reference on "+tc.file, got, want))
			for i := range got {
				if math.Abs(float64(got[i].Score-want[i].Score)) > 1e-6 {
					t.Errorf("%s %s face %d: score %v, reference %v", name, tc.file, i, got[i].Score, want[i].Score)
				}
			}
		}
		t.Logf("%s vs reference decode: max difference %.5f px", name, worst)
		if worst > 0.01 {
			t.Errorf("%s: max difference from the reference %.4f px, want ≤ 0.01", name, worst)
		}
	}
}

// detRotation finds k such that rotated equals upright turned k quarter
// turns clockwise, by the mean absolute pixel difference.
func detRotation(t *testing.T, upright, rotated *imaging.Image) int {
	t.Helper()
	best, bestDiff := -1, math.Inf(1)
	for k := 0; k < 4; k++ {
		r := upright.Rotate90(k)
		if r.Width() != rotated.Width() || r.Height() != rotated.Height() {
			continue
		}
		var sum float64
		a, b := r.BGR(), rotated.BGR()
		for i := range a {
			sum += math.Abs(float64(a[i]) - float64(b[i]))
		}
		if d := sum / float64(len(a)); d < bestDiff {
			best, bestDiff = k, d
		}
	}
	if bestDiff > 2 {
		t.Fatalf("no quarter turn matches (best %d, mean difference %.2f)", best, bestDiff)
	}
	return best
}

// rotateForward maps a point of a w×h image into the image turned k
// quarter turns clockwise (the inverse of unrotate).
func rotateForward(x, y float32, k, w, h int) (float32, float32) {
	switch k {
	case 1:
		return float32(h) - y, x
	case 2:
		return float32(w) - x, float32(h) - y
	case 3:
		return y, float32(w) - x
	}
	return x, y
}

func TestDetectRotated(t *testing.T) {
	const dir = "insightface/inspireface/data/rotate/"
	for _, name := range []string{"det_500m", "yunet"} {
		d := detOpen(t, name, DetectorOptions{TryRotations: true})
		upright := detImage(t, dir+"rot_0.jpg")
		ref, err := d.Detect(upright)
		if err != nil {
			t.Fatal(err)
		}
		if len(ref) != 1 {
			t.Fatalf("%s rot_0: %d faces, want 1", name, len(ref))
		}
		w, h := upright.Width(), upright.Height()
		for _, file := range []string{"rot_90.jpg", "rot_180.jpg", "rot_270.jpg"} {
			img := detImage(t, dir+file)
			k := detRotation(t, upright, img)
			faces, err := d.Detect(img)
			if err != nil {
				t.Fatal(err)
			}
			if len(faces) != 1 {
				t.Fatalf("%s %s: %d faces, want 1", name, file, len(faces))
			}
			// rot_0's box and landmarks carried into this frame by the known turn.
			x1, y1 := rotateForward(ref[0].Box[0], ref[0].Box[1], k, w, h)
			x2, y2 := rotateForward(ref[0].Box[2], ref[0].Box[3], k, w, h)
			want := Face{Box: [4]float32{min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)}}
			for i, p := range ref[0].Landmarks {
				want.Landmarks[i][0], want.Landmarks[i][1] = rotateForward(p[0], p[1], k, w, h)
			}
			diff := detMaxDiff(t, name+" "+file, faces, []Face{want})
			t.Logf("%s %s (turned %d° clockwise): box %v, max difference from rot_0's %.2f px", name, file, 90*k, faces[0].Box, diff)
			if diff > 3 {
				t.Errorf("%s %s: mapped-back face is %.1f px from rot_0's, want ≤ 3", name, file, diff)
			}
		}
	}
	// Without the option the upside-down and sideways pictures give nothing
	// to map, or at least no error.
	d := detOpen(t, "det_500m", DetectorOptions{})
	if _, err := d.Detect(detImage(t, dir+"rot_90.jpg")); err != nil {
		t.Fatal(err)
	}
}

// TestAlignedCropOnDetectedFaces aligns the detected faces of clear
// portraits and checks (1) that the transform puts the detected eyes on the
// template (the least-squares residual of a real face is not zero: faces
// turned from the camera do not fit a frontal template), and (2) that
// detecting again on the aligned face (placed in the middle of a 336×336
// canvas, so the detector sees some context) finds the eyes on the template
// and every landmark where the transform put it.
func TestAlignedCropOnDetectedFaces(t *testing.T) {
	d := detOpen(t, "det_500m", DetectorOptions{})
	var worstResidual, worstEyes, worstRedetect float64
	n := 0
	for _, file := range []string{
		"deepface/img1.jpg", "deepface/img2.jpg", "deepface/img3.jpg", "deepface/img4.jpg",
		"deepface/couple.jpg", "insightface/inspireface/data/bulk/Rob_Lowe_0001.jpg",
	} {
		img := detImage(t, file)
		faces, err := d.Detect(img)
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range faces {
			n++
			crop, m, err := AlignedCrop(img, f.Landmarks, 112)
			if err != nil {
				t.Fatal(err)
			}
			if crop.Width() != 112 || crop.Height() != 112 {
				t.Fatalf("crop %dx%d", crop.Width(), crop.Height())
			}
			var mapped [5][2]float64
			for j, p := range f.Landmarks {
				mapped[j][0], mapped[j][1] = m.Apply(float64(p[0]), float64(p[1]))
			}
			const pad = 112
			wide := m
			wide[0][2] += pad
			wide[1][2] += pad
			canvas, err := img.WarpAffine(wide, 3*pad, 3*pad)
			if err != nil {
				t.Fatal(err)
			}
			again, err := d.Detect(canvas)
			if err != nil {
				t.Fatal(err)
			}
			if len(again) == 0 {
				t.Fatalf("%s face %d: nothing found on the aligned crop", file, i)
			}
			for j := range mapped {
				ax, ay := float64(again[0].Landmarks[j][0])-pad, float64(again[0].Landmarks[j][1])-pad
				worstRedetect = math.Max(worstRedetect, math.Hypot(ax-mapped[j][0], ay-mapped[j][1]))
				if j == LeftEye || j == RightEye {
					worstResidual = math.Max(worstResidual, math.Hypot(mapped[j][0]-ArcFaceTemplate[j][0], mapped[j][1]-ArcFaceTemplate[j][1]))
					worstEyes = math.Max(worstEyes, math.Hypot(ax-ArcFaceTemplate[j][0], ay-ArcFaceTemplate[j][1]))
				}
			}
		}
	}
	t.Logf("alignment of %d faces into 112×112: eye residual of the transform ≤ %.2f px; re-detected eyes ≤ %.2f px from the template; re-detected landmarks ≤ %.2f px from the transformed ones", n, worstResidual, worstEyes, worstRedetect)
	if worstResidual > 6 {
		t.Errorf("eye residual %.2f px, want ≤ 6", worstResidual)
	}
	if worstEyes > 5 {
		t.Errorf("re-detected eyes %.2f px from the template, want ≤ 5", worstEyes)
	}
	if worstRedetect > 4.5 {
		t.Errorf("re-detected landmarks %.2f px from where the transform put them, want ≤ 4.5", worstRedetect)
	}
}

func TestDetectOptions(t *testing.T) {
	img := detImage(t, "insightface/images/t1.jpg")
	all, err := detOpen(t, "det_500m", DetectorOptions{}).Detect(img)
	if err != nil {
		t.Fatal(err)
	}

	// MaxFaces keeps the largest, most central faces (scrfd.py max_num).
	two, err := detOpen(t, "det_500m", DetectorOptions{MaxFaces: 2}).Detect(img)
	if err != nil {
		t.Fatal(err)
	}
	if want := selectFaces(append([]Face(nil), all...), 2, false, img.Width(), img.Height()); len(two) != 2 || detMaxDiff(t, "max faces", two, want) != 0 {
		t.Errorf("MaxFaces 2: %v", two)
	}
	largest, err := detOpen(t, "det_500m", DetectorOptions{MaxFaces: 1, MaxFacesByArea: true}).Detect(img)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range all {
		if f.Width()*f.Height() > largest[0].Width()*largest[0].Height() {
			t.Errorf("MaxFacesByArea kept %v, %v is larger", largest[0].Box, f.Box)
		}
	}

	// MinFaceSize drops small faces.
	minSide := float32(math.Inf(1))
	for _, f := range all {
		minSide = min(minSide, min(f.Width(), f.Height()))
	}
	bigger, err := detOpen(t, "det_500m", DetectorOptions{MinFaceSize: minSide + 0.5}).Detect(img)
	if err != nil {
		t.Fatal(err)
	}
	if len(bigger) != len(all)-1 {
		t.Errorf("MinFaceSize %.1f: %d faces, want %d", minSide+0.5, len(bigger), len(all)-1)
	}

	// A higher threshold finds fewer faces.
	strict, err := detOpen(t, "det_500m", DetectorOptions{Threshold: 0.85}).Detect(img)
	if err != nil {
		t.Fatal(err)
	}
	if len(strict) >= len(all) {
		t.Errorf("threshold 0.85: %d faces, 0.5 gave %d", len(strict), len(all))
	}
}

// TestDetectSecondScale: a close-up whose face fills the frame. At 640 the
// face is too large for SCRFD-500M's anchors; the second scale finds it,
// and on ordinary photos it changes nothing and is not even run (a
// convincing face at the main scale leaves no room for one that large).
func TestDetectSecondScale(t *testing.T) {
	img := detImage(t, "insightface/images/t1.jpg")
	plain := detOpen(t, "det_500m", DetectorOptions{})
	faces, err := plain.Detect(img)
	if err != nil {
		t.Fatal(err)
	}
	// A close-up: the largest face cut out tightly and blown up to 640×640.
	f := faces[0]
	side := float64(max(f.Width(), f.Height())) * 1.1
	cx, cy := float64(f.Box[0]+f.Box[2])/2, float64(f.Box[1]+f.Box[3])/2
	closeUp, _, err := img.CenteredCrop(cx, cy, 640/side, 0, 640)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"det_500m", "scrfd_500m_kps"} { // dynamic and fixed input
		var runs atomic.Int64
		count := onnx.SessionConfig{Observe: func(string, int, time.Duration) { runs.Add(1) }}
		two := detOpen(t, name, DetectorOptions{SecondScale: 256, RotationAccept: DefaultRotationAccept, Session: count})
		got, err := two.Detect(closeUp)
		if n := runs.Swap(0); n != 2 {
			t.Errorf("%s close-up: %d detector runs, want 2 (nothing convincing at 640, then the second scale)", name, n)
		}
		if err != nil {
			t.Fatal(err)
		}
		one, err := detOpen(t, name, DetectorOptions{}).Detect(closeUp)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s close-up: %d face(s) at 640 only, %d with a second scale of 256", name, len(one), len(got))
		for _, f := range got {
			t.Logf("  box %v (%.0f px wide), score %.2f", f.Box, f.Width(), f.Score)
		}
		if len(got) != 1 || got[0].Height() < 500 {
			t.Errorf("%s close-up with a second scale: %v, want one face about 580 px tall", name, got)
		}
		runs.Store(0)
		onPhoto, err := two.Detect(img)
		if err != nil {
			t.Fatal(err)
		}
		if n := runs.Load(); n != 1 {
			t.Errorf("%s t1.jpg: %d detector runs, want 1 (its faces are convincing at 640)", name, n)
		}
		if len(onPhoto) != len(faces) {
			t.Errorf("%s t1.jpg with a second scale: %d faces, want %d", name, len(onPhoto), len(faces))
		}
	}
}

func TestDetectConcurrent(t *testing.T) {
	d := detOpen(t, "det_500m", DetectorOptions{Session: onnx.SessionConfig{IntraOpThreads: 1}})
	img := detImage(t, "deepface/selfie-many-people.jpg")
	want, err := d.Detect(img)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 3; i++ {
				got, err := d.Detect(img)
				if err != nil {
					errs <- err
					return
				}
				if len(got) != len(want) || got[0] != want[0] {
					errs <- fmt.Errorf("concurrent result differs: %v", got)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestDetectorErrors(t *testing.T) {
	rt, models, _ := detEnv(t)
	m := detModels["det_500m"]
	for name, tc := range map[string]struct {
		m    modelpack.Model
		opts DetectorOptions
	}{
		"unknown arch":      {modelpack.Model{Name: "x", Arch: "retinaface", File: m.File}, DetectorOptions{}},
		"not a detector":    {modelpack.Model{Name: "x", Kind: modelpack.Recognizer, Arch: modelpack.ArchSCRFD, File: m.File}, DetectorOptions{}},
		"missing file":      {modelpack.Model{Name: "x", Arch: modelpack.ArchSCRFD, File: "nope.onnx"}, DetectorOptions{}},
		"yunet on scrfd":    {modelpack.Model{Name: "x", Arch: modelpack.ArchYuNet, File: m.File}, DetectorOptions{}},
		"second scale > in": {m, DetectorOptions{SecondScale: 1000}},
	} {
		if d, err := NewDetector(rt, models, tc.m, tc.opts); err == nil {
			_ = d.Close()
			t.Errorf("%s: no error", name)
		}
	}
	d, err := NewDetector(rt, models, m, DetectorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Detect(nil); !errors.Is(err, imaging.ErrEmpty) {
		t.Errorf("nil image: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := d.Detect(detImage(t, "deepface/couple.jpg")); !errors.Is(err, ErrDetectorClosed) {
		t.Errorf("Detect after Close: %v", err)
	}
}

// TestDetectReleasesMats proves that detection leaves no native OpenCV
// memory behind (counted only with -tags matprofile).
func TestDetectReleasesMats(t *testing.T) {
	before, ok := imaging.LiveMats()
	d := detOpen(t, "det_500m", DetectorOptions{TryRotations: true, SecondScale: 320})
	for _, tc := range detCountImages {
		if _, err := d.Detect(detImage(t, tc.file)); err != nil {
			t.Fatal(err)
		}
	}
	if after, _ := imaging.LiveMats(); ok && after != before {
		t.Errorf("%d gocv Mats leaked by detection", after-before)
	}
}
