package imaging

import (
	"fmt"
	"image"
	"runtime"

	"gocv.io/x/gocv"
)

// greyRegion converts the part of the image inside r (clipped to the bounds)
// to an 8-bit grey Mat that the caller must Close.
func (m *Image) greyRegion(r image.Rectangle) (gocv.Mat, error) {
	r = r.Intersect(m.Bounds())
	if r.Empty() {
		return gocv.Mat{}, ErrEmpty
	}
	src, err := m.toMat()
	if err != nil {
		return gocv.Mat{}, err
	}
	defer src.Close()
	roi := src.Region(r)
	defer roi.Close()
	grey := gocv.NewMat()
	gocv.CvtColor(roi, &grey, gocv.ColorBGRToGray)
	runtime.KeepAlive(m)
	return grey, nil
}

// Sharpness is the variance of the Laplacian (3-tap kernel, as
// cv2.Laplacian's default ksize=1) of the grey image inside r, clipped to
// the bounds. Higher is sharper; blurred faces score low.
func (m *Image) Sharpness(r image.Rectangle) (float64, error) {
	grey, err := m.greyRegion(r)
	if err != nil {
		return 0, fmt.Errorf("sharpness: %w", err)
	}
	defer grey.Close()
	lap := gocv.NewMat()
	defer lap.Close()
	gocv.Laplacian(grey, &lap, gocv.MatTypeCV64F, 1, 1, 0, gocv.BorderDefault)
	mean, std := gocv.NewMat(), gocv.NewMat()
	defer mean.Close()
	defer std.Close()
	gocv.MeanStdDev(lap, &mean, &std)
	s := std.GetDoubleAt(0, 0)
	return s * s, nil
}

// Brightness is the mean grey level (0..255) of the image inside r, clipped
// to the bounds.
func (m *Image) Brightness(r image.Rectangle) (float64, error) {
	grey, err := m.greyRegion(r)
	if err != nil {
		return 0, fmt.Errorf("brightness: %w", err)
	}
	defer grey.Close()
	return grey.Mean().Val1, nil
}
