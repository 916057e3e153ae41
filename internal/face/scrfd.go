package face

import (
	"fmt"

	"github.com/facestream/facestream/pkg/onnx"
)

// scrfdLayout is how an SCRFD export arranges its heads, decided from the
// number of outputs exactly as InsightFace's scrfd.py does:
//
//	 6 outputs: scores, boxes          for strides 8, 16, 32; 2 anchors per cell
//	 9 outputs: scores, boxes, kps     for strides 8, 16, 32; 2 anchors per cell
//	10 outputs: scores, boxes          for strides 8 … 128;   1 anchor per cell
//	15 outputs: scores, boxes, kps     for strides 8 … 128;   1 anchor per cell
//
// Outputs come grouped by kind (all score maps, then all box maps, then all
// keypoint maps), each group in stride order. A map may be [N,C] or carry a
// leading batch dimension, [1,N,C]; only its length matters.
type scrfdLayout struct {
	strides []int
	anchors int
	kps     bool
}

func newSCRFDLayout(outputs int) (scrfdLayout, error) {
	switch outputs {
	case 6:
		return scrfdLayout{strides: []int{8, 16, 32}, anchors: 2}, nil
	case 9:
		return scrfdLayout{strides: []int{8, 16, 32}, anchors: 2, kps: true}, nil
	case 10:
		return scrfdLayout{strides: []int{8, 16, 32, 64, 128}, anchors: 1}, nil
	case 15:
		return scrfdLayout{strides: []int{8, 16, 32, 64, 128}, anchors: 1, kps: true}, nil
	}
	return scrfdLayout{}, fmt.Errorf("scrfd: %d outputs; want 6, 9, 10 or 15", outputs)
}

func (l scrfdLayout) outputs() int {
	if l.kps {
		return 3 * len(l.strides)
	}
	return 2 * len(l.strides)
}

// gridSize is the feature-map size of one stride for a w×h input. scrfd.py
// floors (input // stride); when the input is not a multiple of the stride
// the network itself rounds up, so the map length n decides between the two.
func gridSize(w, h, stride, anchors, n int) (gw, gh int, err error) {
	gw, gh = w/stride, h/stride
	if gw*gh*anchors == n {
		return gw, gh, nil
	}
	cw, ch := (w+stride-1)/stride, (h+stride-1)/stride
	if cw*ch*anchors == n {
		return cw, ch, nil
	}
	return 0, 0, fmt.Errorf("stride %d: map of %d entries fits neither %dx%d nor %dx%d cells × %d anchors", stride, n, gw, gh, cw, ch, anchors)
}

// decode turns the raw outputs for a w×h input into candidates, in input
// coordinates, whose score is at least thresh (scrfd.py's forward): each
// anchor sits at (column·stride, row·stride), repeated once per anchor of
// the cell; boxes are the anchor minus/plus the predicted distances × stride
// (left, top, right, bottom), keypoints the anchor plus offsets × stride.
func (l scrfdLayout) decode(outs []onnx.Tensor, w, h int, thresh float32, dst []candidate) ([]candidate, error) {
	if len(outs) != l.outputs() {
		return dst, fmt.Errorf("scrfd decode: %d outputs, layout needs %d", len(outs), l.outputs())
	}
	fmc := len(l.strides)
	for i, stride := range l.strides {
		scores := outs[i].Data
		boxes := outs[i+fmc].Data
		n := len(scores)
		if len(boxes) != 4*n {
			return dst, fmt.Errorf("scrfd decode: stride %d: %d scores but %d box values", stride, n, len(boxes))
		}
		var kps []float32
		if l.kps {
			kps = outs[i+2*fmc].Data
			if len(kps) != 10*n {
				return dst, fmt.Errorf("scrfd decode: stride %d: %d scores but %d keypoint values", stride, n, len(kps))
			}
		}
		gw, _, err := gridSize(w, h, stride, l.anchors, n)
		if err != nil {
			return dst, fmt.Errorf("scrfd decode: %w", err)
		}
		s := float32(stride)
		for k, score := range scores {
			if !(score >= thresh) {
				continue
			}
			cell := k / l.anchors
			ax, ay := float32(cell%gw)*s, float32(cell/gw)*s
			b := boxes[4*k : 4*k+4 : 4*k+4]
			c := candidate{
				box:   [4]float32{ax - b[0]*s, ay - b[1]*s, ax + b[2]*s, ay + b[3]*s},
				score: score,
			}
			if l.kps {
				p := kps[10*k : 10*k+10 : 10*k+10]
				for j := 0; j < 5; j++ {
					c.kps[j] = [2]float32{ax + p[2*j]*s, ay + p[2*j+1]*s}
				}
			}
			dst = append(dst, c)
		}
	}
	return dst, nil
}
