package face

// unrotate maps a point of img.Rotate90(k) (k quarter turns clockwise, k in
// 0..3) back to img, whose size is w×h. Coordinates are continuous (pixel i
// spans [i, i+1)), so a clockwise turn sends (x, y) to (h-y, x).
func unrotate(x, y float32, k, w, h int) (float32, float32) {
	switch k {
	case 1:
		return y, float32(h) - x
	case 2:
		return float32(w) - x, float32(h) - y
	case 3:
		return float32(w) - y, x
	}
	return x, y
}

// unrotateFace maps a face found in img.Rotate90(k) back to img (w×h): the
// landmarks point by point, the box as the bounding box of its mapped
// corners.
func unrotateFace(f Face, k, w, h int) Face {
	if k == 0 {
		return f
	}
	x1, y1 := unrotate(f.Box[0], f.Box[1], k, w, h)
	x2, y2 := unrotate(f.Box[2], f.Box[3], k, w, h)
	out := Face{Box: [4]float32{min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)}, Score: f.Score}
	if f.HasLandmarks() {
		for i, p := range f.Landmarks {
			out.Landmarks[i][0], out.Landmarks[i][1] = unrotate(p[0], p[1], k, w, h)
		}
	}
	return out
}
