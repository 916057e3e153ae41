package face_test

import (
	"fmt"

	"github.com/facestream/facestream/internal/face"
)

func ExampleCosine() {
	a := []float32{3, 4}
	b := []float32{4, 3}
	face.Normalize(a)
	face.Normalize(b)
	fmt.Printf("%.2f\n", face.Cosine(a, b))
	// Output: 0.96
}

func ExampleEstimatePose() {
	// Landmarks with the nose pushed towards the image's right edge: the
	// face is turned to the right (yaw > 0).
	lm := [5][2]float32{{37.6, 52.6}, {74.4, 52.6}, {64, 74.3}, {39.4, 90}, {72.6, 90}}
	p := face.EstimatePose(lm)
	fmt.Println(p.Yaw > 10, p.Pitch > -10 && p.Pitch < 10)
	// Output: true true
}

func ExampleQualityThresholds_Assess() {
	q := face.DefaultQualityThresholds().Assess(face.QualityMeasures{
		Sharpness: 12, Brightness: 120, FaceSize: 24, Score: 0.8,
	})
	fmt.Println(q.Usable, q.Reason)
	// Output: false blurry: sharpness 12.0 < 50; too small: face size 24 px < 32
}
