// Package face is facestream's face engine: detection (SCRFD, YuNet) with
// five landmarks, 5-point similarity alignment, recognition, age and gender,
// emotion, head pose and quality. It is pure Go over pkg/onnx (model
// sessions) and internal/imaging (pixels); it never sees a native type.
//
// Detectors implement [Detector] and are safe for concurrent use: one
// detector (one ONNX session) serves every goroutine of a stage. Build one
// from a model-pack entry with [NewDetector].
//
// Alignment follows InsightFace's face_align.estimate_norm: [AlignTransform]
// estimates the least-squares similarity transform (Umeyama) from the five
// detected landmarks to the ArcFace template, and [AlignedCrop] warps the
// face into a size×size crop.
//
// docs/face-engine.md describes the algorithms, the reference decoder the
// tests check against, and measured results.
package face
