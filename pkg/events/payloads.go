package events

import (
	"fmt"
	"time"
)

// Payload is the JSON data of a facestream event. Each payload type knows
// its CloudEvents type.
//
// Compatibility rule for every payload: fields are only ever added, and every
// added field is optional (omitempty, with a zero value that means "not
// known"). Consumers must ignore fields they do not know.
type Payload interface {
	EventType() string
}

// RequestOptions are per-request options a producer may attach to an
// image.submitted as the "options" extension (compact JSON in the
// ce-options header). Every stage carries them on to its outputs. The zero
// value means "service defaults".
type RequestOptions struct {
	// Pack names the model pack to analyse with (e.g. "buffalo_l"); empty
	// means the service's default pack.
	Pack string `json:"pack,omitempty"`
	// MaxFaces keeps at most this many faces, largest first; 0 means all.
	MaxFaces int `json:"max_faces,omitempty"`
	// MinFaceSize drops faces whose box is smaller than this many pixels on
	// its shorter side; 0 means the pack's default.
	MinFaceSize int `json:"min_face_size,omitempty"`
	// SkipCache analyses the image even when a result for the same image
	// bytes and model pack is cached.
	SkipCache bool `json:"skip_cache,omitempty"`
	// SkipMatch does not match the faces against enrolled subjects.
	SkipMatch bool `json:"skip_match,omitempty"`
}

// BlobRef points at an object in a JetStream object store bucket: the claim
// check for a payload too large to travel in an event. Objects live in the
// facestream-images bucket with a TTL and are deleted by the aggregate stage
// once the result is stored.
type BlobRef struct {
	// Bucket is the object store bucket, e.g. "facestream-images".
	Bucket string `json:"bucket"`
	// Key is the object name within the bucket.
	Key string `json:"key"`
	// Size is the object's size in bytes; 0 means unknown (not checked).
	Size int64 `json:"size,omitempty"`
	// SHA256 is the lower-case hex SHA-256 of the object's bytes; empty
	// means unknown (not checked). Readers verify it when set.
	SHA256 string `json:"sha256,omitempty"`
	// ContentType is the media type of the object, e.g. "image/jpeg".
	ContentType string `json:"content_type,omitempty"`
}

// Blob is bytes carried either inline (Data, base64 in JSON) or by reference
// (Ref). Exactly one of the two is set.
type Blob struct {
	Data []byte   `json:"data,omitempty"`
	Ref  *BlobRef `json:"ref,omitempty"`
}

// ImageInfo is what the ingest stage established about an image. It is
// carried, unchanged, by every later event of the image.
type ImageInfo struct {
	// ImageID is the producer's image id (the ce-subject of every event of
	// this image).
	ImageID string `json:"image_id"`
	// Tenant is the tenant the image belongs to, when the producer set one.
	Tenant string `json:"tenant,omitempty"`
	// SHA256 is the lower-case hex SHA-256 of the image bytes as submitted.
	SHA256 string `json:"sha256"`
	// Format is the detected encoding: "jpeg", "png", "webp", "bmp", "gif".
	Format string `json:"format"`
	// Width and Height are the pixel dimensions after the EXIF orientation
	// is applied; every box and landmark refers to this upright image.
	Width  int `json:"width"`
	Height int `json:"height"`
	// Size is the byte size of the image as submitted.
	Size int64 `json:"size"`
	// Orientation is the EXIF orientation (1..8) that was applied to make
	// the image upright; 0 or 1 means none.
	Orientation int `json:"orientation,omitempty"`
	// SubmittedAt is the time of the image.submitted event.
	SubmittedAt time.Time `json:"submitted_at"`
	// Source is the CloudEvents source of the image.submitted event (who
	// submitted the image, e.g. "/api/v1"); empty when not known.
	Source string `json:"source,omitempty"`
}

// Timings are the milliseconds each stage spent on an image, by stage name.
// Each stage adds its own entry and carries the others on.
type Timings map[string]float64

// With returns a copy of t with stage set to d.
func (t Timings) With(stage string, d time.Duration) Timings {
	out := make(Timings, len(t)+1)
	for k, v := range t {
		out[k] = v
	}
	out[stage] = float64(d.Microseconds()) / 1000
	return out
}

// ImageAccepted is the data of image.accepted: the ingest stage validated the
// image and hands it to detection.
type ImageAccepted struct {
	Image ImageInfo `json:"image"`
	// Data is the image as submitted (not re-encoded): inline when small,
	// otherwise a BlobRef into the object store.
	Data    Blob    `json:"data"`
	Timings Timings `json:"timings_ms,omitempty"`
}

// EventType implements Payload.
func (*ImageAccepted) EventType() string { return TypeImageAccepted }

// RejectReason is a machine-readable reason for rejecting an image.
type RejectReason string

// Reject reasons. New reasons may be added; consumers should treat an
// unknown reason like RejectCorrupt.
const (
	RejectEmpty             RejectReason = "empty"              // no image bytes
	RejectUnsupportedFormat RejectReason = "unsupported_format" // not a supported image encoding
	RejectTooLarge          RejectReason = "too_large"          // more bytes than allowed
	RejectTooManyPixels     RejectReason = "too_many_pixels"    // width×height above the limit
	RejectDecompressionBomb RejectReason = "decompression_bomb" // tiny file, enormous pixel count
	RejectTruncated         RejectReason = "truncated"          // the encoding ends early
	RejectCorrupt           RejectReason = "corrupt"            // the encoding does not decode
	RejectBlobMissing       RejectReason = "blob_missing"       // the BlobRef points nowhere (expired?)
	RejectInvalidRequest    RejectReason = "invalid_request"    // bad options or reference
	RejectNoFace            RejectReason = "no_face"            // no face found where one is required
	// RejectInferenceUnavailable: ingest runs in cache-only mode (inference
	// is down) and no stored result matches. Retryable: submit again later.
	RejectInferenceUnavailable RejectReason = "inference_unavailable"
	// RejectErased: the image was erased while it was in the pipeline; the
	// aggregate stage stored nothing and deleted its payload and crops.
	RejectErased RejectReason = "erased"
)

// ImageRejected is the data of image.rejected: the image will not be
// analysed. It is a result, not a failure of the pipeline.
type ImageRejected struct {
	ImageID string `json:"image_id"`
	Tenant  string `json:"tenant,omitempty"`
	// Stage is the stage that rejected the image.
	Stage string `json:"stage"`
	// Reason is machine-readable; Message explains it to a person.
	Reason  RejectReason `json:"reason"`
	Message string       `json:"message"`
	// SHA256 and Size describe the bytes that were rejected, when known.
	SHA256      string    `json:"sha256,omitempty"`
	Size        int64     `json:"size,omitempty"`
	SubmittedAt time.Time `json:"submitted_at,omitzero"`
}

// EventType implements Payload.
func (*ImageRejected) EventType() string { return TypeImageRejected }

// Box is a face box in pixels of the upright image: [x1, y1, x2, y2].
type Box [4]float32

// Width returns x2 - x1.
func (b Box) Width() float32 { return b[2] - b[0] }

// Height returns y2 - y1.
func (b Box) Height() float32 { return b[3] - b[1] }

// Landmarks are the five facial landmarks in pixels of the upright image,
// in InsightFace order: left eye, right eye, nose tip, left and right mouth
// corner (left/right as seen in the image).
type Landmarks [5][2]float32

// Face is one face of an image. It grows as the image moves through the
// pipeline: detection fills Index, Box, Landmarks and Score; the embed stage
// adds Embedding; the attrs stage adds Attributes; the aggregate stage adds
// ID and Match.
type Face struct {
	// Index is the face's position in the detector's output (0-based), its
	// key within the image.
	Index     int       `json:"index"`
	Box       Box       `json:"box"`
	Landmarks Landmarks `json:"landmarks"`
	// Score is the detector's confidence, 0..1.
	Score float32 `json:"score"`

	// Embedding is set from faces.embedded on; nil when the face could not
	// be embedded.
	Embedding *Embedding `json:"embedding,omitempty"`
	// Attributes are set from faces.analyzed on.
	Attributes *Attributes `json:"attributes,omitempty"`

	// ID is the stored face's id, set in image.analyzed.
	ID string `json:"id,omitempty"`
	// Match is the best enrolled subject above the threshold, if any, set in
	// image.analyzed.
	Match *Match `json:"match,omitempty"`
}

// Embedding is a face's identity vector.
type Embedding struct {
	// Model names the recognition model, e.g. "w600k_mbf". Vectors of
	// different models must never be compared.
	Model string `json:"model"`
	// Dim is len(Vector).
	Dim int `json:"dim"`
	// Vector is L2-normalised; JSON carries it as base64 little-endian
	// float32 (see Vector).
	Vector Vector `json:"vector"`
}

// Attributes are a face's estimated attributes. A nil part means the model
// pack has no model for it (or it was skipped).
type Attributes struct {
	// Age is the estimated age in years.
	Age     *float32 `json:"age,omitempty"`
	Gender  *Gender  `json:"gender,omitempty"`
	Emotion *Emotion `json:"emotion,omitempty"`
	Pose    *Pose    `json:"pose,omitempty"`
	Quality *Quality `json:"quality,omitempty"`
}

// Gender is the estimated gender: Label is "female" or "male", Score the
// model's probability for it.
type Gender struct {
	Label string  `json:"label"`
	Score float32 `json:"score"`
}

// Emotion is the estimated facial expression: Label is the most probable
// class and Score its probability; Probabilities holds every class of the
// model (e.g. neutral, happiness, surprise, sadness, anger, disgust, fear,
// contempt).
type Emotion struct {
	Label         string             `json:"label"`
	Score         float32            `json:"score"`
	Probabilities map[string]float32 `json:"probabilities,omitempty"`
}

// Pose is the head pose in degrees, estimated from the landmarks: Yaw turns
// left/right, Pitch up/down, Roll tilts in the image plane.
type Pose struct {
	Yaw   float32 `json:"yaw"`
	Pitch float32 `json:"pitch"`
	Roll  float32 `json:"roll"`
}

// QualityReason says why a face is not usable for recognition.
type QualityReason string

// Quality reasons.
const (
	QualityTooSmall    QualityReason = "too_small"
	QualityBlurry      QualityReason = "blurry"
	QualityTooDark     QualityReason = "too_dark"
	QualityTooBright   QualityReason = "too_bright"
	QualityLowScore    QualityReason = "low_score"
	QualityExtremePose QualityReason = "extreme_pose"
)

// Quality tells whether a face is good enough to recognise.
type Quality struct {
	// Sharpness is the variance of the Laplacian of the aligned crop's luma.
	Sharpness float32 `json:"sharpness"`
	// Brightness is the mean grey level of the aligned crop, 0..255.
	Brightness float32 `json:"brightness"`
	// FaceSize is the shorter side of the box in pixels.
	FaceSize float32 `json:"face_size"`
	// DetScore is the detector's score.
	DetScore float32 `json:"det_score"`
	// Usable is true when the face passes every quality threshold; Reason
	// names the first one it failed otherwise.
	Usable bool          `json:"usable"`
	Reason QualityReason `json:"reason,omitempty"`
}

// Match is an enrolled subject a face resembles.
type Match struct {
	SubjectID   string `json:"subject_id"`
	SubjectName string `json:"subject_name,omitempty"`
	// Similarity is the cosine similarity of the two embeddings, -1..1.
	Similarity float32 `json:"similarity"`
	// Threshold is the similarity the match had to reach.
	Threshold float32 `json:"threshold"`
}

// Crop kinds. A model pack names the kinds its models need; the detect stage
// cuts them once from the decoded pixels.
const (
	// CropAligned112 is the 112×112 crop aligned to the ArcFace template by
	// a similarity transform of the five landmarks (recognition, emotion).
	CropAligned112 = "aligned_112"
	// CropCentered96 is a 96×96 crop centred on the box, scaled so the
	// box's longer side spans 1/1.5 of it (InsightFace genderage).
	CropCentered96 = "centered_96"
)

// PixelFormatRGB8 is interleaved 8-bit RGB, row-major, no padding.
const PixelFormatRGB8 = "rgb8"

// CropSet holds one kind of crop for many faces of an image, packed into
// one blob: crop i (of Faces[i]) occupies bytes [i*n, (i+1)*n) where
// n = Width*Height*Channels. One set per kind keeps a photo with 200 faces
// to one object-store object per kind.
type CropSet struct {
	// Kind is one of the Crop… kinds.
	Kind string `json:"kind"`
	// Format is the pixel format, PixelFormatRGB8.
	Format   string `json:"format"`
	Width    int    `json:"width"`
	Height   int    `json:"height"`
	Channels int    `json:"channels"`
	// Faces lists the face index of each crop, in packing order.
	Faces []int `json:"faces"`
	// Blob is the packed pixels, inline or by reference.
	Blob Blob `json:"blob"`
}

// CropSize returns the byte size of one crop.
func (c CropSet) CropSize() int { return c.Width * c.Height * c.Channels }

// Crop returns the crop of face index face out of the set's packed pixels
// (the Blob's bytes, loaded by the caller). The result aliases pixels.
func (c CropSet) Crop(pixels []byte, face int) ([]byte, error) {
	n := c.CropSize()
	if n <= 0 {
		return nil, fmt.Errorf("crop %s: invalid geometry %dx%dx%d", c.Kind, c.Width, c.Height, c.Channels)
	}
	if len(pixels) != n*len(c.Faces) {
		return nil, fmt.Errorf("crop %s: %d bytes for %d crops of %d bytes", c.Kind, len(pixels), len(c.Faces), n)
	}
	for i, f := range c.Faces {
		if f == face {
			return pixels[i*n : (i+1)*n : (i+1)*n], nil
		}
	}
	return nil, fmt.Errorf("crop %s: no crop for face %d", c.Kind, face)
}

// FacesDetected is the data of faces.detected.
type FacesDetected struct {
	Image ImageInfo `json:"image"`
	// ImageRef is where the image bytes are stored in the object store, when
	// they are, so the aggregate stage can delete them.
	ImageRef *BlobRef `json:"image_ref,omitempty"`
	// Pack is the model pack; Detector the detection model within it.
	Pack     string `json:"pack"`
	Detector string `json:"detector"`
	// Faces are in detector order; may be empty.
	Faces []Face `json:"faces"`
	// Crops are the crops the pack's later models need, one set per kind.
	Crops   []CropSet `json:"crops,omitempty"`
	Timings Timings   `json:"timings_ms,omitempty"`
}

// EventType implements Payload.
func (*FacesDetected) EventType() string { return TypeFacesDetected }

// FacesEmbedded is the data of faces.embedded: faces.detected plus an
// Embedding on every face that could be embedded.
type FacesEmbedded struct {
	Image    ImageInfo `json:"image"`
	ImageRef *BlobRef  `json:"image_ref,omitempty"`
	Pack     string    `json:"pack"`
	Detector string    `json:"detector"`
	// Recognizer is the recognition model that made the embeddings.
	Recognizer string    `json:"recognizer"`
	Faces      []Face    `json:"faces"`
	Crops      []CropSet `json:"crops,omitempty"`
	Timings    Timings   `json:"timings_ms,omitempty"`
}

// EventType implements Payload.
func (*FacesEmbedded) EventType() string { return TypeFacesEmbedded }

// FacesAnalyzed is the data of faces.analyzed: faces.embedded plus
// Attributes on every face. The crops are no longer carried (but the
// object-store refs are, in CropRefs, for deletion).
type FacesAnalyzed struct {
	Image      ImageInfo `json:"image"`
	ImageRef   *BlobRef  `json:"image_ref,omitempty"`
	Pack       string    `json:"pack"`
	Detector   string    `json:"detector"`
	Recognizer string    `json:"recognizer"`
	Faces      []Face    `json:"faces"`
	// CropRefs are the object-store objects of earlier crop sets, to be
	// deleted with the image.
	CropRefs []BlobRef `json:"crop_refs,omitempty"`
	Timings  Timings   `json:"timings_ms,omitempty"`
}

// EventType implements Payload.
func (*FacesAnalyzed) EventType() string { return TypeFacesAnalyzed }

// ImageAnalyzed is the data of image.analyzed: the final result for an
// image, for subscribers and waiting requests.
type ImageAnalyzed struct {
	Image      ImageInfo `json:"image"`
	Pack       string    `json:"pack"`
	Detector   string    `json:"detector,omitempty"`
	Recognizer string    `json:"recognizer,omitempty"`
	// Faces carry attributes, ids and best matches. Embeddings may be
	// omitted (they are stored; see the SQL functions).
	Faces []Face `json:"faces"`
	// Cached is true when the result was answered from an earlier analysis
	// of the same bytes with the same pack; CachedFrom then names that
	// image id.
	Cached     bool   `json:"cached"`
	CachedFrom string `json:"cached_from,omitempty"`
	// Timings has one entry per stage that worked on this image.
	Timings    Timings   `json:"timings_ms,omitempty"`
	AnalyzedAt time.Time `json:"analyzed_at"`
}

// EventType implements Payload.
func (*ImageAnalyzed) EventType() string { return TypeImageAnalyzed }

// FaceMatched is the data of face.matched: a face of an analysed image
// resembles an enrolled subject. One event per matched face.
type FaceMatched struct {
	ImageID   string `json:"image_id"`
	Tenant    string `json:"tenant,omitempty"`
	FaceIndex int    `json:"face_index"`
	FaceID    string `json:"face_id"`
	// Model is the recognition model both embeddings come from.
	Model       string  `json:"model"`
	SubjectID   string  `json:"subject_id"`
	SubjectName string  `json:"subject_name,omitempty"`
	Similarity  float32 `json:"similarity"`
	Threshold   float32 `json:"threshold"`
}

// EventType implements Payload.
func (*FaceMatched) EventType() string { return TypeFaceMatched }
