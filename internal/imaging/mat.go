package imaging

import (
	"fmt"
	"runtime"

	"gocv.io/x/gocv"
)

// toMat wraps the Image's pixels, without copying, in a Mat that the caller
// must Close before returning. The Mat must be treated as read-only.
func (m *Image) toMat() (gocv.Mat, error) {
	if m == nil || len(m.pix) == 0 {
		return gocv.Mat{}, ErrEmpty
	}
	mat, err := gocv.NewMatFromBytes(m.h, m.w, gocv.MatTypeCV8UC3, m.pix)
	if err != nil {
		return gocv.Mat{}, fmt.Errorf("wrap image: %w", err)
	}
	return mat, nil
}

// copyMat copies the Image's pixels into a new, writable Mat that the caller
// must Close.
func (m *Image) copyMat() (gocv.Mat, error) {
	if m == nil || len(m.pix) == 0 {
		return gocv.Mat{}, ErrEmpty
	}
	return gocv.NewMatFromBytes(m.h, m.w, gocv.MatTypeCV8UC3, append([]byte(nil), m.pix...))
}

// fromMat copies an 8-bit, 3-channel Mat into a new Go-owned Image. The
// caller still owns (and closes) mat.
func fromMat(mat gocv.Mat) (*Image, error) {
	if mat.Empty() {
		return nil, ErrEmpty
	}
	if mat.Type() != gocv.MatTypeCV8UC3 {
		return nil, fmt.Errorf("copy mat: type %v, want 8UC3", mat.Type())
	}
	w, h := mat.Cols(), mat.Rows()
	if !mat.IsContinuous() {
		c := mat.Clone()
		defer c.Close()
		mat = c
	}
	data, err := mat.DataPtrUint8()
	if err != nil {
		return nil, fmt.Errorf("copy mat: %w", err)
	}
	pix := make([]byte, 3*w*h)
	copy(pix, data)
	runtime.KeepAlive(mat)
	return &Image{w: w, h: h, pix: pix}, nil
}
