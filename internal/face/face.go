package face

import (
	"io"

	"github.com/facestream/facestream/internal/imaging"
)

// Landmark indices in Face.Landmarks, InsightFace's order. "Left" and
// "right" are as seen in the picture (the subject's right eye is LeftEye).
const (
	LeftEye = iota
	RightEye
	Nose
	LeftMouth
	RightMouth
)

// Face is one detected face, in the coordinates of the image given to the
// detector (pixels, origin top-left, x to the right).
type Face struct {
	// Box is x1, y1, x2, y2.
	Box [4]float32
	// Landmarks are the five points in the order LeftEye … RightMouth. They
	// are all zero when the detector has no landmark head (see HasLandmarks).
	Landmarks [5][2]float32
	// Score is the detector's confidence in 0..1.
	Score float32
}

// Width is the box width.
func (f Face) Width() float32 { return f.Box[2] - f.Box[0] }

// Height is the box height.
func (f Face) Height() float32 { return f.Box[3] - f.Box[1] }

// HasLandmarks reports whether the detector produced landmarks.
func (f Face) HasLandmarks() bool { return f.Landmarks != [5][2]float32{} }

// Detector finds faces in an image. Implementations are safe for concurrent
// use by multiple goroutines.
//
// Detect returns the faces found, highest score first (or as ordered by the
// detector's max-faces selection), with boxes and landmarks in the
// coordinates of img. No face is an empty result and a nil error; an error
// means the image could not be processed (for example the model failed), and
// nothing is returned with it.
type Detector interface {
	Detect(img *imaging.Image) ([]Face, error)
	// Close releases the model session. It is idempotent; Detect after
	// Close returns an error.
	io.Closer
}
