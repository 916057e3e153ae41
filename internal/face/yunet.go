package face

import (
	"fmt"
	"math"
	"strings"

	"github.com/facestream/facestream/pkg/onnx"
)

// yunetStrides are the feature strides of YuNet (OpenCV FaceDetectorYN).
var yunetStrides = []int{8, 16, 32}

// yunetLayout says which output holds each YuNet head. OpenCV fetches
// cls_8, cls_16, cls_32, obj_*, bbox_*, kps_*; when the manifest names them
// so, they are found by name, otherwise that order is assumed.
type yunetLayout struct {
	cls, obj, bbox, kps [3]int
}

func newYuNetLayout(names []string) (yunetLayout, error) {
	if len(names) != 12 {
		return yunetLayout{}, fmt.Errorf("yunet: %d outputs; want 12 (cls, obj, bbox, kps for strides 8, 16, 32)", len(names))
	}
	var l yunetLayout
	byName := make(map[string]int, len(names))
	for i, n := range names {
		byName[strings.ToLower(n)] = i
	}
	named := true
	for i, s := range yunetStrides {
		for _, h := range []struct {
			prefix string
			dst    *[3]int
		}{{"cls", &l.cls}, {"obj", &l.obj}, {"bbox", &l.bbox}, {"kps", &l.kps}} {
			j, ok := byName[fmt.Sprintf("%s_%d", h.prefix, s)]
			if !ok {
				named = false
			}
			h.dst[i] = j
		}
	}
	if !named {
		for i := range yunetStrides {
			l.cls[i], l.obj[i], l.bbox[i], l.kps[i] = i, 3+i, 6+i, 9+i
		}
	}
	return l, nil
}

// decode is FaceDetectorYN's postProcess for a w×h input (w and h multiples
// of 32): score = √(clamp(cls)·clamp(obj)); the box centre is (column +
// dx, row + dy)·stride and its size exp(dw)·stride × exp(dh)·stride; the
// landmarks are (column + kx, row + ky)·stride. Candidates scoring below
// thresh are skipped.
func (l yunetLayout) decode(outs []onnx.Tensor, w, h int, thresh float32, dst []candidate) ([]candidate, error) {
	if len(outs) != 12 {
		return dst, fmt.Errorf("yunet decode: %d outputs, want 12", len(outs))
	}
	for i, stride := range yunetStrides {
		cols, rows := w/stride, h/stride
		n := cols * rows
		cls, obj, bbox, kps := outs[l.cls[i]].Data, outs[l.obj[i]].Data, outs[l.bbox[i]].Data, outs[l.kps[i]].Data
		if len(cls) != n || len(obj) != n || len(bbox) != 4*n || len(kps) != 10*n {
			return dst, fmt.Errorf("yunet decode: stride %d: maps of %d/%d/%d/%d values for %dx%d cells", stride, len(cls), len(obj), len(bbox), len(kps), cols, rows)
		}
		s := float32(stride)
		for idx := 0; idx < n; idx++ {
			cs := min(max(cls[idx], 0), 1)
			os := min(max(obj[idx], 0), 1)
			score := float32(math.Sqrt(float64(cs * os)))
			if score < thresh {
				continue
			}
			r, c := float32(idx/cols), float32(idx%cols)
			b := bbox[4*idx : 4*idx+4 : 4*idx+4]
			cx, cy := (c+b[0])*s, (r+b[1])*s
			bw := float32(math.Exp(float64(b[2]))) * s
			bh := float32(math.Exp(float64(b[3]))) * s
			x1, y1 := cx-bw/2, cy-bh/2
			cand := candidate{box: [4]float32{x1, y1, x1 + bw, y1 + bh}, score: score}
			k := kps[10*idx : 10*idx+10 : 10*idx+10]
			for j := 0; j < 5; j++ {
				cand.kps[j] = [2]float32{(k[2*j] + c) * s, (k[2*j+1] + r) * s}
			}
			dst = append(dst, cand)
		}
	}
	return dst, nil
}
