package face

import (
	"cmp"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/facestream/facestream/internal/imaging"
	"github.com/facestream/facestream/internal/modelpack"
	"github.com/facestream/facestream/pkg/onnx"
)

// ModelOptions tune how one model of a pack is loaded and run.
type ModelOptions struct {
	// Session is passed to onnx.Runtime.NewSession (threads, execution
	// provider, CPU fallback). Its Inputs and Outputs are taken from the
	// manifest and need not be set.
	Session onnx.SessionConfig
	// MaxBatch is the largest number of crops fed to one Run of a model with a
	// dynamic batch dimension; larger requests are split. 0 means
	// DefaultMaxBatch. Models with a fixed batch dimension always run at
	// their own batch size.
	MaxBatch int
}

// DefaultMaxBatch bounds one Run of a dynamic-batch model when
// ModelOptions.MaxBatch is zero: 32 crops of 112×112 are 4.8 MB of input.
const DefaultMaxBatch = 32

// ErrCropSize means a crop's byte length does not match the model's input
// size (width × height × 3 RGB bytes).
var ErrCropSize = errors.New("crop size does not match model input")

// pixelNorm turns interleaved 8-bit pixels into one planar model channel
// each, in the model's colour order, as (v - mean) / std. It holds a
// 256-entry lookup table per channel, so preparing a crop is a copy, not
// arithmetic.
type pixelNorm struct {
	src [3]int // which byte of an RGB pixel feeds model channel c
	lut [3][256]float32
}

func newPixelNorm(order string, mean, std [3]float32) (*pixelNorm, error) {
	p := &pixelNorm{}
	switch strings.ToUpper(order) {
	case "", "RGB":
		p.src = [3]int{0, 1, 2}
	case "BGR":
		p.src = [3]int{2, 1, 0}
	default:
		return nil, fmt.Errorf("colour order %q: want RGB or BGR", order)
	}
	for c := range 3 {
		s := std[c]
		if s == 0 {
			return nil, fmt.Errorf("std[%d] is 0", c)
		}
		for v := range 256 {
			p.lut[c][v] = (float32(v) - mean[c]) / s
		}
	}
	return p, nil
}

// fill writes one crop (h×w interleaved RGB, or BGR when bgr is set) into
// dst as 3 planes of w×h.
func (p *pixelNorm) fill(dst []float32, pix []byte, bgr bool) {
	n := len(pix) / 3
	d0, d1, d2 := dst[:n:n], dst[n:2*n:2*n], dst[2*n:3*n:3*n]
	l0, l1, l2 := &p.lut[0], &p.lut[1], &p.lut[2]
	if (p.src[0] == 0) != bgr { // model channel 0 is the first byte of a pixel
		for i, j := 0, 0; i < n; i, j = i+1, j+3 {
			px := pix[j : j+3 : j+3]
			d0[i], d1[i], d2[i] = l0[px[0]], l1[px[1]], l2[px[2]]
		}
		return
	}
	for i, j := 0, 0; i < n; i, j = i+1, j+3 {
		px := pix[j : j+3 : j+3]
		d0[i], d1[i], d2[i] = l0[px[2]], l1[px[1]], l2[px[0]]
	}
}

// cropRunner runs a model whose single input is a batch of fixed-size image
// crops, NCHW float32, and whose first fetched output has one row per crop.
// It is safe for concurrent use: the session is, and the rest is read-only
// after construction.
type cropRunner struct {
	sess     *onnx.Session
	name     string
	w, h     int
	batch    int // the model's fixed batch size; 0 when dynamic
	maxBatch int
	norm     *pixelNorm
	bufs     sync.Pool // *[]float32 input buffers, grown on demand
}

// newCropRunner loads m's file from modelsDir and checks that its input is
// [N,3,H,W] with H and W matching the manifest (or taken from the model when
// the manifest leaves them 0, or defaultSize when both are dynamic).
func newCropRunner(rt *onnx.Runtime, modelsDir string, m modelpack.Model, opts ModelOptions, defaultSize int) (*cropRunner, error) {
	if rt == nil {
		return nil, fmt.Errorf("load %s: nil onnx runtime", m.Name)
	}
	if m.File == "" {
		return nil, fmt.Errorf("load %s: manifest names no file", m.Name)
	}
	path := m.Path(modelsDir)
	cfg := opts.Session
	cfg.Inputs, cfg.Outputs = m.Inputs, m.Outputs
	sess, err := rt.NewSession(path, cfg)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", m.Name, err)
	}
	r, err := configureCropRunner(sess, m, opts, defaultSize)
	if err != nil {
		_ = sess.Close()
		return nil, fmt.Errorf("load %s: %w", m.Name, err)
	}
	return r, nil
}

func configureCropRunner(sess *onnx.Session, m modelpack.Model, opts ModelOptions, defaultSize int) (*cropRunner, error) {
	ins := sess.Inputs()
	if len(ins) != 1 {
		return nil, fmt.Errorf("model has %d inputs, want 1 image input", len(ins))
	}
	if len(sess.Outputs()) == 0 {
		return nil, errors.New("model has no outputs")
	}
	shape := ins[0].Shape
	if len(shape) != 4 || (shape[1] != 3 && shape[1] > 0) {
		return nil, fmt.Errorf("input %s has shape %v, want [N,3,H,W]", ins[0].Name, shape)
	}
	w, h := m.InputWidth, m.InputHeight
	if w == 0 {
		w = int(shape[3])
	}
	if h == 0 {
		h = int(shape[2])
	}
	if w <= 0 {
		w = defaultSize
	}
	if h <= 0 {
		h = defaultSize
	}
	if (shape[3] > 0 && int(shape[3]) != w) || (shape[2] > 0 && int(shape[2]) != h) {
		return nil, fmt.Errorf("manifest input %dx%d, model takes %dx%d", w, h, shape[3], shape[2])
	}
	norm, err := newPixelNorm(m.ColorOrder, m.Mean, m.Std)
	if err != nil {
		return nil, err
	}
	r := &cropRunner{sess: sess, name: m.Name, w: w, h: h, norm: norm, maxBatch: opts.MaxBatch}
	if shape[0] > 0 {
		r.batch = int(shape[0])
		r.maxBatch = r.batch
	}
	if r.maxBatch <= 0 {
		r.maxBatch = DefaultMaxBatch
	}
	r.bufs.New = func() any { return new([]float32) }
	return r, nil
}

// cropBytes is the byte length of one RGB crop the model takes.
func (r *cropRunner) cropBytes() int { return 3 * r.w * r.h }

// checkCrops verifies every crop's length before any work is done.
func (r *cropRunner) checkCrops(crops [][]byte) error {
	want := r.cropBytes()
	for i, c := range crops {
		if len(c) != want {
			return fmt.Errorf("%s: crop %d has %d bytes, want %d (%dx%d RGB): %w", r.name, i, len(c), want, r.w, r.h, ErrCropSize)
		}
	}
	return nil
}

// run prepares the crops (interleaved RGB, or BGR when bgr is set) and runs
// them in as few Runs as the batch limits allow. It returns one row of the
// first output per crop; rows are fresh slices the caller owns.
func (r *cropRunner) run(crops [][]byte, bgr bool) ([][]float32, error) {
	if err := r.checkCrops(crops); err != nil {
		return nil, err
	}
	out := make([][]float32, 0, len(crops))
	per := r.cropBytes()
	bp := r.bufs.Get().(*[]float32)
	defer r.bufs.Put(bp)
	for start := 0; start < len(crops); start += r.maxBatch {
		chunk := crops[start:min(start+r.maxBatch, len(crops))]
		n := len(chunk)
		if r.batch > 0 {
			n = r.batch // fixed batch: pad with zeros
		}
		if cap(*bp) < n*per {
			*bp = make([]float32, n*per)
		}
		in := onnx.Tensor{Shape: []int64{int64(n), 3, int64(r.h), int64(r.w)}, Data: (*bp)[:n*per]}
		for i, c := range chunk {
			r.norm.fill(in.Data[i*per:(i+1)*per], c, bgr)
		}
		clear(in.Data[len(chunk)*per:])
		res, err := r.sess.Run(in)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.name, err)
		}
		rows, err := splitRows(res[0], n)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.name, err)
		}
		out = append(out, rows[:len(chunk)]...)
	}
	return out, nil
}

// splitRows cuts a [n, ...] output into n rows that share its backing array
// (which is Go-owned and fresh from Session.Run).
func splitRows(t onnx.Tensor, n int) ([][]float32, error) {
	if n == 0 || len(t.Data)%n != 0 || (len(t.Shape) > 0 && t.Shape[0] != int64(n)) {
		return nil, fmt.Errorf("output shape %v does not hold %d rows", t.Shape, n)
	}
	k := len(t.Data) / n
	rows := make([][]float32, n)
	for i := range rows {
		rows[i] = t.Data[i*k : (i+1)*k : (i+1)*k]
	}
	return rows, nil
}

// images checks that every crop is InputSize and returns their BGR buffers.
func (r *cropRunner) images(crops []*imaging.Image) ([][]byte, error) {
	pix := make([][]byte, len(crops))
	for i, c := range crops {
		if c == nil || c.Width() != r.w || c.Height() != r.h {
			w, h := 0, 0
			if c != nil {
				w, h = c.Width(), c.Height()
			}
			return nil, fmt.Errorf("%s: crop %d is %dx%d, want %dx%d: %w", r.name, i, w, h, r.w, r.h, ErrCropSize)
		}
		pix[i] = c.BGR()
	}
	return pix, nil
}

func (r *cropRunner) close() error {
	if r == nil || r.sess == nil {
		return nil
	}
	return r.sess.Close()
}

// CropTensor is the [1,3,H,W] input a per-face model m takes for one
// aligned crop, normalised as the engine normalises it (colour order, mean,
// std of the manifest). The crop must already have the model's input size
// (m.InputWidth × m.InputHeight, 112×112 when the manifest gives none). It
// lets a benchmark replay m's bare run on a real face.
func CropTensor(m modelpack.Model, crop *imaging.Image) (onnx.Tensor, error) {
	w, h := cmp.Or(m.InputWidth, 112), cmp.Or(m.InputHeight, 112)
	if crop == nil || crop.Width() != w || crop.Height() != h {
		return onnx.Tensor{}, fmt.Errorf("%s: crop is not %dx%d", m.Name, w, h)
	}
	norm, err := newPixelNorm(m.ColorOrder, m.Mean, m.Std)
	if err != nil {
		return onnx.Tensor{}, fmt.Errorf("%s: %w", m.Name, err)
	}
	t := onnx.NewTensor(1, 3, int64(h), int64(w))
	norm.fill(t.Data, crop.BGR(), true)
	return t, nil
}
