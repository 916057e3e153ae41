package face

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"sync"

	"github.com/facestream/facestream/internal/imaging"
	"github.com/facestream/facestream/internal/modelpack"
	"github.com/facestream/facestream/pkg/onnx"
)

// DetectorOptions tune a detector. The zero value takes everything from the
// model-pack entry and the architecture's defaults.
type DetectorOptions struct {
	// Session is passed to onnx.Runtime.NewSession (threads, execution
	// provider, CPU fallback). Its Inputs and Outputs come from the manifest.
	Session onnx.SessionConfig
	// InputWidth and InputHeight are the network input for models with a
	// dynamic input size; 0 uses the manifest's size, else 640×640. Models
	// with a fixed input always run at their own size (as scrfd.py does).
	InputWidth, InputHeight int
	// Threshold is the minimum detection score; 0 uses the manifest's
	// Threshold, else 0.5 for SCRFD and 0.6 for YuNet.
	Threshold float32
	// NMSThreshold is the IoU above which a lower-scoring box is suppressed;
	// 0 uses the manifest's, else 0.4 for SCRFD (scrfd.py) and 0.3 for YuNet
	// (OpenCV's default).
	NMSThreshold float32
	// MaxFaces keeps at most this many faces, chosen as scrfd.py's max_num
	// does: the largest and most central first (area − 2·squared distance
	// of the box centre from the image centre), or the largest when
	// MaxFacesByArea is set. 0 keeps all, ordered by score.
	MaxFaces       int
	MaxFacesByArea bool
	// MinFaceSize drops faces whose shorter box side is below this many
	// source pixels. 0 keeps all.
	MinFaceSize float32
	// SecondScale, when above 0 and the main scale found no convincing
	// face (one that looks upright and scores RotationAccept), runs the
	// network a second time with the image fitted into a
	// SecondScale×SecondScale square (aspect kept) and merges both scales'
	// candidates before NMS, so that faces too large for the anchors at the
	// main scale (close-ups, selfies) are found. A picture with a convincing
	// face at the main scale has no room left for a face that large, so the
	// second run is skipped there: it costs one more detector run per
	// image otherwise. On a model with a fixed input the smaller picture is
	// padded to that input.
	SecondScale int
	// TryRotations, when nothing convincing is found upright, also tries
	// the image turned 90°, 180° and 270° and returns the faces of the turn
	// with the most evidence, mapped back into the original image. Upright
	// is convincing when a face that looks upright (judged from its
	// landmarks: mouth below the eyes) scores at least RotationAccept.
	// Evidence is the summed score of the faces that look upright; the
	// upright result is kept unless a turn beats it.
	TryRotations bool
	// RotationAccept is the score at which an upright face stops the
	// rotation search; 0 means 0.9. Detectors score sideways and upside-down
	// faces too (lower), so this is well above the detection threshold.
	RotationAccept float32
}

// ErrDetectorClosed is returned by Detect after Close.
var ErrDetectorClosed = errors.New("face: detector closed")

// decoder turns a model's raw outputs into candidates in input coordinates.
type decoder interface {
	decode(outs []onnx.Tensor, w, h int, thresh float32, dst []candidate) ([]candidate, error)
}

// netDetector is the Detector for SCRFD and YuNet: one ONNX session, a
// letterbox preprocessor and an architecture-specific decoder and NMS.
// Everything but the buffer pool and the closed flag is fixed by
// NewDetector, so Detect may run on any number of goroutines at once.
type netDetector struct {
	sess       *onnx.Session
	arch       string
	dec        decoder
	norm       imaging.Normalize
	w, h       int  // network input
	fixed      bool // the model's input size is fixed
	align      int  // dynamic inputs are rounded up to a multiple of this
	thresh     float32
	nmsThresh  float32
	opts       DetectorOptions
	bufs       sync.Pool // *[]float32 input tensors
	closeMu    sync.Mutex
	closed     bool
	landmarks  bool
	secondSize [2]int // the box the picture is fitted into at the second scale; zero when off

	rotationAccept float32
}

// NewDetector loads the detector described by m (Arch scrfd or yunet; File
// relative to modelsDir). The detector is safe for concurrent use; Close it
// when done.
func NewDetector(rt *onnx.Runtime, modelsDir string, m modelpack.Model, opts DetectorOptions) (Detector, error) {
	if m.Kind != "" && m.Kind != modelpack.Detector {
		return nil, fmt.Errorf("new detector %s: kind %q is not a detector", m.Name, m.Kind)
	}
	d := &netDetector{arch: m.Arch, opts: opts, align: 32}
	var defThresh, defNMS float32
	var defNorm imaging.Normalize
	switch m.Arch {
	case modelpack.ArchSCRFD:
		defThresh, defNMS = 0.5, 0.4
		defNorm = imaging.Normalize{Order: imaging.RGB, Mean: [3]float32{127.5, 127.5, 127.5}, Std: [3]float32{128, 128, 128}}
	case modelpack.ArchYuNet:
		defThresh, defNMS = 0.6, 0.3
		defNorm = imaging.Normalize{Order: imaging.BGR, Std: [3]float32{1, 1, 1}}
	default:
		return nil, fmt.Errorf("new detector %s: unknown architecture %q (want %s or %s)", m.Name, m.Arch, modelpack.ArchSCRFD, modelpack.ArchYuNet)
	}
	d.thresh = firstNonZero(opts.Threshold, m.Threshold, defThresh)
	d.nmsThresh = firstNonZero(opts.NMSThreshold, m.NMSThreshold, defNMS)
	d.rotationAccept = firstNonZero(opts.RotationAccept, 0.9)
	d.norm = defNorm
	if m.Std != [3]float32{} {
		d.norm = imaging.Normalize{Order: imaging.ColorOrder(m.ColorOrder), Mean: m.Mean, Std: m.Std}
		if d.norm.Order == "" {
			d.norm.Order = defNorm.Order
		}
	}
	if opts.SecondScale < 0 || opts.MaxFaces < 0 || opts.MinFaceSize < 0 {
		return nil, fmt.Errorf("new detector %s: negative option", m.Name)
	}

	cfg := opts.Session
	cfg.Inputs, cfg.Outputs = m.Inputs, m.Outputs
	sess, err := rt.NewSession(filepath.Join(modelsDir, m.File), cfg)
	if err != nil {
		return nil, fmt.Errorf("new detector %s: %w", m.Name, err)
	}
	if err := d.configure(sess, m); err != nil {
		_ = sess.Close()
		return nil, fmt.Errorf("new detector %s: %w", m.Name, err)
	}
	d.sess = sess
	return d, nil
}

func firstNonZero(v ...float32) float32 {
	for _, x := range v {
		if x != 0 {
			return x
		}
	}
	return 0
}

func roundUp(v, m int) int { return (v + m - 1) / m * m }

// configure reads the session's tensors: the input size (fixed or chosen)
// and the output layout.
func (d *netDetector) configure(sess *onnx.Session, m modelpack.Model) error {
	ins, outs := sess.Inputs(), sess.Outputs()
	if len(ins) != 1 || len(ins[0].Shape) != 4 || (ins[0].Shape[1] != 3 && ins[0].Shape[1] > 0) {
		return fmt.Errorf("want one [1,3,H,W] input, model has %v", ins)
	}
	names := make([]string, len(outs))
	for i, o := range outs {
		names[i] = o.Name
	}
	switch d.arch {
	case modelpack.ArchSCRFD:
		l, err := newSCRFDLayout(len(outs))
		if err != nil {
			return err
		}
		d.dec, d.landmarks = l, l.kps
		if l.strides[len(l.strides)-1] > 32 {
			d.align = l.strides[len(l.strides)-1]
		}
	case modelpack.ArchYuNet:
		l, err := newYuNetLayout(names)
		if err != nil {
			return err
		}
		d.dec, d.landmarks = l, true
	}
	if h, w := ins[0].Shape[2], ins[0].Shape[3]; h > 0 && w > 0 {
		d.w, d.h, d.fixed = int(w), int(h), true
	} else {
		d.w = firstPositive(d.opts.InputWidth, m.InputWidth, 640)
		d.h = firstPositive(d.opts.InputHeight, m.InputHeight, 640)
		d.w, d.h = roundUp(d.w, d.align), roundUp(d.h, d.align)
	}
	if s := d.opts.SecondScale; s > 0 {
		if s > max(d.w, d.h) {
			return fmt.Errorf("second scale %d is larger than the %dx%d input", s, d.w, d.h)
		}
		d.secondSize = [2]int{min(s, d.w), min(s, d.h)}
	}
	return nil
}

func firstPositive(v ...int) int {
	for _, x := range v {
		if x > 0 {
			return x
		}
	}
	return 0
}

// Detect implements Detector.
func (d *netDetector) Detect(img *imaging.Image) ([]Face, error) {
	if img == nil || img.Width() == 0 || img.Height() == 0 {
		return nil, fmt.Errorf("detect: %w", imaging.ErrEmpty)
	}
	faces, err := d.detectUpright(img)
	if err != nil || !d.opts.TryRotations {
		return faces, err
	}
	sum, best := uprightEvidence(faces, d.landmarks)
	if best >= d.rotationAccept {
		return faces, nil
	}
	for k := 1; k <= 3; k++ {
		f, err := d.detectUpright(img.Rotate90(k))
		if err != nil {
			return nil, err
		}
		if s, _ := uprightEvidence(f, d.landmarks); s > sum {
			for i := range f {
				f[i] = unrotateFace(f[i], k, img.Width(), img.Height())
			}
			faces, sum = f, s
		}
	}
	return faces, nil
}

// uprightEvidence sums (and takes the best of) the scores of the faces that
// look upright. With landmarks a face looks upright when its mouth is below
// its eyes (the eye-to-mouth vector points down within 45°) and its left
// eye is left of its right eye: detectors also fire on faces turned
// sideways, but their landmarks then give the turn away. Without landmarks
// every face counts.
func uprightEvidence(faces []Face, landmarks bool) (sum, best float32) {
	for _, f := range faces {
		if landmarks && !looksUpright(f) {
			continue
		}
		sum += f.Score
		best = max(best, f.Score)
	}
	return sum, best
}

func looksUpright(f Face) bool {
	l := f.Landmarks
	dx := (l[LeftMouth][0]+l[RightMouth][0])/2 - (l[LeftEye][0]+l[RightEye][0])/2
	dy := (l[LeftMouth][1]+l[RightMouth][1])/2 - (l[LeftEye][1]+l[RightEye][1])/2
	return dy > 0 && dy >= max(dx, -dx) && l[RightEye][0] > l[LeftEye][0]
}

// scale is one pass of the network: a canvas of cw×ch with the picture
// fitted into fw×fh at its top-left.
type scale struct{ cw, ch, fw, fh int }

func (d *netDetector) scales() []scale {
	s := []scale{{d.w, d.h, d.w, d.h}}
	if d.secondSize[0] > 0 {
		fw, fh := d.secondSize[0], d.secondSize[1]
		if d.fixed {
			s = append(s, scale{d.w, d.h, fw, fh})
		} else {
			cw, ch := roundUp(fw, d.align), roundUp(fh, d.align)
			s = append(s, scale{cw, ch, fw, fh})
		}
	}
	return s
}

// detectUpright runs the main scale on img and, when that finds nothing
// convincing, the second scale too (merging the candidates), then applies
// NMS, the minimum size and the max-faces selection.
func (d *netDetector) detectUpright(img *imaging.Image) ([]Face, error) {
	scales := d.scales()
	cands, err := d.runScale(img, scales[0], nil)
	if err != nil {
		return nil, err
	}
	if len(scales) == 1 {
		return d.finish(img, cands), nil
	}
	// finish reorders and filters in place: keep the candidates for the
	// merge with the second scale.
	faces := d.finish(img, slices.Clone(cands))
	if _, best := uprightEvidence(faces, d.landmarks); best >= d.rotationAccept {
		return faces, nil
	}
	if cands, err = d.runScale(img, scales[1], cands); err != nil {
		return nil, err
	}
	return d.finish(img, cands), nil
}

// finish applies NMS to the candidates of img (reordering them), the
// minimum size and the max-faces selection.
func (d *netDetector) finish(img *imaging.Image, cands []candidate) []Face {
	sortByScore(cands)
	if d.arch == modelpack.ArchYuNet {
		cands = nmsIntRects(cands, d.thresh, d.nmsThresh)
	} else {
		cands = nmsInclusive(cands, d.nmsThresh)
	}
	faces := make([]Face, 0, len(cands))
	for _, c := range cands {
		f := Face{Box: c.box, Score: c.score}
		if d.landmarks {
			f.Landmarks = c.kps
		}
		if d.opts.MinFaceSize > 0 && min(f.Width(), f.Height()) < d.opts.MinFaceSize {
			continue
		}
		faces = append(faces, f)
	}
	return selectFaces(faces, d.opts.MaxFaces, d.opts.MaxFacesByArea, img.Width(), img.Height())
}

// runScale letterboxes img for one scale, runs the network, decodes and
// maps the candidates to source coordinates, appending them to dst.
func (d *netDetector) runScale(img *imaging.Image, sc scale, dst []candidate) ([]candidate, error) {
	n := 3 * sc.cw * sc.ch
	bp, _ := d.bufs.Get().(*[]float32)
	if bp == nil || cap(*bp) < n {
		b := make([]float32, n)
		bp = &b
	}
	buf := (*bp)[:n]
	defer d.bufs.Put(bp)
	lb, err := img.LetterboxTensorFit(buf, sc.cw, sc.ch, sc.fw, sc.fh, d.norm)
	if err != nil {
		return dst, fmt.Errorf("detect: %w", err)
	}
	outs, err := d.run(onnx.Tensor{Shape: []int64{1, 3, int64(sc.ch), int64(sc.cw)}, Data: buf})
	if err != nil {
		return dst, err
	}
	first := len(dst)
	dst, err = d.dec.decode(outs, sc.cw, sc.ch, d.thresh, dst)
	if err != nil {
		return dst, fmt.Errorf("detect: %w", err)
	}
	if s := float32(lb.Scale); s != 0 {
		for i := first; i < len(dst); i++ {
			c := &dst[i]
			for j := range c.box {
				c.box[j] /= s
			}
			for j := range c.kps {
				c.kps[j][0] /= s
				c.kps[j][1] /= s
			}
		}
	}
	return dst, nil
}

func (d *netDetector) run(in onnx.Tensor) ([]onnx.Tensor, error) {
	outs, err := d.sess.Run(in)
	if errors.Is(err, onnx.ErrClosed) {
		return nil, ErrDetectorClosed
	}
	if err != nil {
		return nil, fmt.Errorf("detect: %w", err)
	}
	return outs, nil
}

// Close implements Detector.
func (d *netDetector) Close() error {
	d.closeMu.Lock()
	defer d.closeMu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	if err := d.sess.Close(); err != nil {
		return fmt.Errorf("close detector: %w", err)
	}
	return nil
}

// selectFaces is scrfd.py's max_num: when there are more than maxFaces
// faces, keep the maxFaces with the highest area − 2·(squared distance of
// the box centre from the image centre), or the highest area when byArea,
// in that order. The image centre is (w//2, h//2) as in scrfd.py.
func selectFaces(f []Face, maxFaces int, byArea bool, w, h int) []Face {
	if maxFaces <= 0 || len(f) <= maxFaces {
		return f
	}
	cx, cy := float32(w/2), float32(h/2)
	value := make([]float32, len(f))
	for i, x := range f {
		area := x.Width() * x.Height()
		if byArea {
			value[i] = area
			continue
		}
		ox := (x.Box[0]+x.Box[2])/2 - cx
		oy := (x.Box[1]+x.Box[3])/2 - cy
		value[i] = area - (ox*ox+oy*oy)*2
	}
	idx := make([]int, len(f))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return value[idx[a]] > value[idx[b]] })
	out := make([]Face, maxFaces)
	for i := range out {
		out[i] = f[idx[i]]
	}
	return out
}
