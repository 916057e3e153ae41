package face

import "sort"

// candidate is one decoded detection before NMS.
type candidate struct {
	box   [4]float32 // x1, y1, x2, y2
	kps   [5][2]float32
	score float32
}

// sortByScore orders candidates by descending score; equal scores keep
// their decoding order.
func sortByScore(c []candidate) {
	sort.SliceStable(c, func(i, j int) bool { return c[i].score > c[j].score })
}

// nmsInclusive is the greedy NMS of InsightFace's scrfd.py: c must be sorted
// by descending score; areas and intersections count pixels inclusively
// (+1), and a box is dropped when its IoU with a kept box is above thresh.
// It compacts c in place and returns the kept prefix.
func nmsInclusive(c []candidate, thresh float32) []candidate {
	areas := make([]float32, len(c))
	for i := range c {
		areas[i] = (c[i].box[2] - c[i].box[0] + 1) * (c[i].box[3] - c[i].box[1] + 1)
	}
	suppressed := make([]bool, len(c))
	keep := c[:0]
	for i := range c {
		if suppressed[i] {
			continue
		}
		bi := c[i].box
		for j := i + 1; j < len(c); j++ {
			if suppressed[j] {
				continue
			}
			bj := c[j].box
			w := max(0, min(bi[2], bj[2])-max(bi[0], bj[0])+1)
			h := max(0, min(bi[3], bj[3])-max(bi[1], bj[1])+1)
			inter := w * h
			if inter/(areas[i]+areas[j]-inter) > thresh {
				suppressed[j] = true
			}
		}
		keep = append(keep, c[i])
	}
	return keep
}

// nmsIntRects is OpenCV's dnn::NMSBoxes as FaceDetectorYN calls it: boxes
// are truncated to integer cv::Rect (x, y, width, height), IoU is the ratio
// of integer areas, only scores strictly above scoreThresh take part, and a
// box is kept when its IoU with every kept box is at most thresh. c must be
// sorted by descending score; it is compacted in place.
func nmsIntRects(c []candidate, scoreThresh, thresh float32) []candidate {
	type rect struct{ x, y, w, h int }
	r := func(b [4]float32) rect {
		x, y := int(b[0]), int(b[1])
		return rect{x, y, int(b[2] - b[0]), int(b[3] - b[1])}
	}
	keep := c[:0]
	var kept []rect
	for i := range c {
		if !(c[i].score > scoreThresh) {
			continue
		}
		a := r(c[i].box)
		ok := true
		for _, b := range kept {
			aa, ab := a.w*a.h, b.w*b.h
			var iou float32 = 1
			if aa+ab > 0 {
				iw := min(a.x+a.w, b.x+b.w) - max(a.x, b.x)
				ih := min(a.y+a.h, b.y+b.h) - max(a.y, b.y)
				inter := 0
				if iw > 0 && ih > 0 {
					inter = iw * ih
				}
				iou = float32(inter) / float32(aa+ab-inter)
			}
			if iou > thresh {
				ok = false
				break
			}
		}
		if ok {
			kept = append(kept, a)
			keep = append(keep, c[i])
		}
	}
	return keep
}
