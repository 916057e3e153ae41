package face

import (
	"fmt"
	"math"
	"strings"
)

// QualityMeasures are the raw numbers the quality decision is made from.
type QualityMeasures struct {
	// Sharpness is the variance of the Laplacian of the grey 112×112 aligned
	// crop. Blur and up-scaled small faces give low values.
	Sharpness float32 `json:"sharpness"`
	// Brightness is the mean grey level (0..255) of the aligned crop.
	Brightness float32 `json:"brightness"`
	// FaceSize is the shorter side of the detection box, in source pixels.
	FaceSize float32 `json:"face_size"`
	// Score is the detector's confidence.
	Score float32 `json:"det_score"`
	// Yaw and Pitch are the head pose in degrees (see Pose). They are left
	// out of JSON, where the face's pose already gives them.
	Yaw   float32 `json:"-"`
	Pitch float32 `json:"-"`
}

// Quality is a face's measures and the decision whether it is usable for
// recognition (enrolment and matching). Attributes are still computed for
// faces that are not usable.
type Quality struct {
	QualityMeasures
	Usable bool `json:"usable"`
	// Reason is "ok" for a usable face, else every failed rule, "; "-joined,
	// e.g. "blurry: sharpness 12.0 < 30".
	Reason string `json:"reason"`
}

// QualityThresholds decide usability. A zero field disables its rule.
type QualityThresholds struct {
	MinSharpness  float32 `json:"min_sharpness"`
	MinBrightness float32 `json:"min_brightness"`
	MaxBrightness float32 `json:"max_brightness"`
	MinFaceSize   float32 `json:"min_face_size"`
	MinScore      float32 `json:"min_det_score"`
	MaxAbsYaw     float32 `json:"max_abs_yaw"`
	MaxAbsPitch   float32 `json:"max_abs_pitch"`
}

// The default quality thresholds; docs/face-engine.md explains each.
const (
	// DefaultMinSharpness: aligned crops of in-focus faces in the test photos
	// measure 1,200–3,500; the same faces with their detail cut to that of a
	// 32 px face (scaled down and back up) 80–300, of a 20 px face 40–150,
	// of a 12 px face 17–60. Below 50 the crop holds little more than a
	// ~15 px face's detail.
	DefaultMinSharpness = 50
	// DefaultMinBrightness and DefaultMaxBrightness bound the mean grey
	// level of the crop: outside them the face is too dark or washed out for
	// its features to survive normalisation.
	DefaultMinBrightness = 40
	DefaultMaxBrightness = 220
	// DefaultMinFaceSize: below ~32 px between box edges (about 20 px between
	// the eyes) the 112×112 crop is mostly interpolation.
	DefaultMinFaceSize = 32
	// DefaultMinScore: detections under 0.6 are often partial or occluded
	// faces even when above the detector's own 0.5 keep threshold.
	DefaultMinScore = 0.6
	// DefaultMaxAbsYaw and DefaultMaxAbsPitch: beyond these the 5-point
	// alignment folds a half-profile onto a frontal template and recognition
	// degrades sharply. Pitch from 5 landmarks also moves with expression (a
	// wide-open mouth reads as 30–40° up), hence the wider pitch limit.
	DefaultMaxAbsYaw   = 45
	DefaultMaxAbsPitch = 45
)

// DefaultQualityThresholds returns the documented defaults.
func DefaultQualityThresholds() QualityThresholds {
	return QualityThresholds{
		MinSharpness:  DefaultMinSharpness,
		MinBrightness: DefaultMinBrightness,
		MaxBrightness: DefaultMaxBrightness,
		MinFaceSize:   DefaultMinFaceSize,
		MinScore:      DefaultMinScore,
		MaxAbsYaw:     DefaultMaxAbsYaw,
		MaxAbsPitch:   DefaultMaxAbsPitch,
	}
}

// Assess applies the thresholds to m.
func (t QualityThresholds) Assess(m QualityMeasures) Quality {
	var why []string
	fail := func(format string, args ...any) { why = append(why, fmt.Sprintf(format, args...)) }
	if t.MinSharpness > 0 && m.Sharpness < t.MinSharpness {
		fail("blurry: sharpness %.1f < %g", m.Sharpness, t.MinSharpness)
	}
	if t.MinBrightness > 0 && m.Brightness < t.MinBrightness {
		fail("too dark: brightness %.1f < %g", m.Brightness, t.MinBrightness)
	}
	if t.MaxBrightness > 0 && m.Brightness > t.MaxBrightness {
		fail("too bright: brightness %.1f > %g", m.Brightness, t.MaxBrightness)
	}
	if t.MinFaceSize > 0 && m.FaceSize < t.MinFaceSize {
		fail("too small: face size %.0f px < %g", m.FaceSize, t.MinFaceSize)
	}
	if t.MinScore > 0 && m.Score < t.MinScore {
		fail("low detection score: %.2f < %g", m.Score, t.MinScore)
	}
	if t.MaxAbsYaw > 0 && absDeg(m.Yaw) > t.MaxAbsYaw {
		fail("turned away: |yaw| %.0f° > %g°", absDeg(m.Yaw), t.MaxAbsYaw)
	}
	if t.MaxAbsPitch > 0 && absDeg(m.Pitch) > t.MaxAbsPitch {
		fail("tilted: |pitch| %.0f° > %g°", absDeg(m.Pitch), t.MaxAbsPitch)
	}
	q := Quality{QualityMeasures: m, Usable: len(why) == 0, Reason: "ok"}
	if !q.Usable {
		q.Reason = strings.Join(why, "; ")
	}
	return q
}

func absDeg(v float32) float32 { return float32(math.Abs(float64(v))) }

// faceBoxMinSide is the shorter side of an x1,y1,x2,y2 box.
func faceBoxMinSide(b [4]float32) float32 { return max(0, min(b[2]-b[0], b[3]-b[1])) }
