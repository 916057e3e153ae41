package events_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/facestream/facestream/pkg/events"
)

// Deterministic inputs for the golden files and the round trips.
var (
	sampleTime      = time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	sampleSubmitted = time.Date(2026, 1, 2, 3, 4, 4, 0, time.UTC)
)

const (
	sampleSource      = "/facestream/test"
	sampleImageID     = "img-0001"
	sampleTenant      = "acme"
	sampleTraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	sampleSHA         = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
)

// sample is one event of the contract with the payload it was made from.
type sample struct {
	name       string
	event      events.Event
	payload    events.Payload     // nil for image.submitted
	submission *events.Submission // image.submitted only
}

func sampleImage() events.ImageInfo {
	return events.ImageInfo{
		ImageID:     sampleImageID,
		Tenant:      sampleTenant,
		SHA256:      sampleSHA,
		Format:      "jpeg",
		Width:       1280,
		Height:      960,
		Size:        245123,
		Orientation: 6,
		SubmittedAt: sampleSubmitted,
	}
}

func sampleImageRef() *events.BlobRef {
	return &events.BlobRef{Bucket: "facestream-images", Key: "img-0001/image", Size: 245123, SHA256: sampleSHA, ContentType: "image/jpeg"}
}

func sampleFaces(withEmbedding, withAttributes, withResult bool) []events.Face {
	faces := []events.Face{
		{
			Index:     0,
			Box:       events.Box{100.5, 120.25, 260, 310.75},
			Landmarks: events.Landmarks{{140, 190}, {220, 188}, {181, 235}, {150, 275}, {215, 272}},
			Score:     0.9921875,
		},
		{
			Index:     1,
			Box:       events.Box{700, 80, 790, 195},
			Landmarks: events.Landmarks{{725, 125}, {765, 124}, {746, 150}, {730, 172}, {762, 171}},
			Score:     0.875,
		},
	}
	for i := range faces {
		if withEmbedding {
			faces[i].Embedding = &events.Embedding{Model: "w600k_mbf", Dim: 4, Vector: events.Vector{0.5, -0.5, 0.5, float32(i) - 0.5}}
		}
		if withAttributes {
			age := float32(31 + 10*i)
			faces[i].Attributes = &events.Attributes{
				Age:    &age,
				Gender: &events.Gender{Label: "female", Score: 0.96875},
				Emotion: &events.Emotion{Label: "happiness", Score: 0.75, Probabilities: map[string]float32{
					"happiness": 0.75, "neutral": 0.125, "surprise": 0.0625, "sadness": 0.0625,
				}},
				Pose:    &events.Pose{Yaw: -12.5, Pitch: 4.25, Roll: 1.5},
				Quality: &events.Quality{Sharpness: 412.5, Brightness: 128, FaceSize: 159.5, DetScore: faces[i].Score, Usable: i == 0},
			}
			if i == 1 {
				faces[i].Attributes.Quality.Reason = events.QualityBlurry
			}
		}
		if withResult {
			faces[i].ID = fmt.Sprintf("00000000-0000-4000-8000-0000000f000%d", i)
		}
	}
	if withResult {
		faces[0].Match = &events.Match{SubjectID: "subj-42", SubjectName: "Ada", Similarity: 0.625, Threshold: 0.375}
	}
	return faces
}

func sampleCrops() []events.CropSet {
	return []events.CropSet{{
		Kind: events.CropAligned112, Format: events.PixelFormatRGB8, Width: 112, Height: 112, Channels: 3,
		Faces: []int{0, 1},
		Blob: events.Blob{Ref: &events.BlobRef{
			Bucket: "facestream-images", Key: "img-0001/crops/aligned_112", Size: 75264,
			SHA256: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
		}},
	}}
}

func sampleTimings(stages ...string) events.Timings {
	t := events.Timings{}
	for i, s := range stages {
		t[s] = float64(i+1) * 1.25
	}
	return t
}

// samples returns one event of every type, with fixed ids and times.
func samples(t testing.TB) []sample {
	t.Helper()
	var out []sample
	add := func(name, id string, p events.Payload) {
		e, err := events.New(sampleImageID, p)
		if err != nil {
			t.Fatalf("new %s: %v", name, err)
		}
		finish(&e, id)
		out = append(out, sample{name: name, event: e, payload: p})
	}
	addSubmitted := func(name, id string, s events.Submission) {
		e, err := events.NewImageSubmitted(s)
		if err != nil {
			t.Fatalf("new %s: %v", name, err)
		}
		finish(&e, id)
		out = append(out, sample{name: name, event: e, submission: &s})
	}

	addSubmitted("image_submitted", "00000000-0000-4000-8000-000000000001", events.Submission{
		ImageID:     sampleImageID,
		Tenant:      sampleTenant,
		Options:     events.RequestOptions{Pack: "buffalo_l", MaxFaces: 10},
		ContentType: "image/jpeg",
		Image:       []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00 synthetic bytes, not an image \xff\xd9"),
	})
	addSubmitted("image_submitted_ref", "00000000-0000-4000-8000-000000000002", events.Submission{
		ImageID: sampleImageID,
		Tenant:  sampleTenant,
		Ref:     sampleImageRef(),
	})
	add("image_accepted", "00000000-0000-4000-8000-000000000003", &events.ImageAccepted{
		Image:   sampleImage(),
		Data:    events.Blob{Ref: sampleImageRef()},
		Timings: sampleTimings(events.StageIngest),
	})
	add("image_accepted_inline", "00000000-0000-4000-8000-000000000004", &events.ImageAccepted{
		Image:   sampleImage(),
		Data:    events.Blob{Data: []byte("\x89PNG\r\n\x1a\n synthetic")},
		Timings: sampleTimings(events.StageIngest),
	})
	add("image_rejected", "00000000-0000-4000-8000-000000000005", &events.ImageRejected{
		ImageID:     sampleImageID,
		Tenant:      sampleTenant,
		Stage:       events.StageIngest,
		Reason:      events.RejectDecompressionBomb,
		Message:     "40000x40000 pixels from 52 KB exceeds the pixel limit",
		SHA256:      sampleSHA,
		Size:        52000,
		SubmittedAt: sampleSubmitted,
	})
	add("faces_detected", "00000000-0000-4000-8000-000000000006", &events.FacesDetected{
		Image:    sampleImage(),
		ImageRef: sampleImageRef(),
		Pack:     "buffalo_s",
		Detector: "det_500m",
		Faces:    sampleFaces(false, false, false),
		Crops:    sampleCrops(),
		Timings:  sampleTimings(events.StageIngest, events.StageDetect),
	})
	add("faces_embedded", "00000000-0000-4000-8000-000000000007", &events.FacesEmbedded{
		Image:      sampleImage(),
		ImageRef:   sampleImageRef(),
		Pack:       "buffalo_s",
		Detector:   "det_500m",
		Recognizer: "w600k_mbf",
		Faces:      sampleFaces(true, false, false),
		Crops:      sampleCrops(),
		Timings:    sampleTimings(events.StageIngest, events.StageDetect, events.StageEmbed),
	})
	add("faces_analyzed", "00000000-0000-4000-8000-000000000008", &events.FacesAnalyzed{
		Image:      sampleImage(),
		ImageRef:   sampleImageRef(),
		Pack:       "buffalo_s",
		Detector:   "det_500m",
		Recognizer: "w600k_mbf",
		Faces:      sampleFaces(true, true, false),
		CropRefs:   []events.BlobRef{*sampleCrops()[0].Blob.Ref},
		Timings:    sampleTimings(events.StageIngest, events.StageDetect, events.StageEmbed, events.StageAttrs),
	})
	add("image_analyzed", "00000000-0000-4000-8000-000000000009", &events.ImageAnalyzed{
		Image:      sampleImage(),
		Pack:       "buffalo_s",
		Detector:   "det_500m",
		Recognizer: "w600k_mbf",
		Faces:      sampleFaces(false, true, true),
		Timings:    sampleTimings(events.StageIngest, events.StageDetect, events.StageEmbed, events.StageAttrs, events.StageAggregate),
		AnalyzedAt: sampleTime,
	})
	add("face_matched", "00000000-0000-4000-8000-00000000000a", &events.FaceMatched{
		ImageID:     sampleImageID,
		Tenant:      sampleTenant,
		FaceIndex:   0,
		FaceID:      "00000000-0000-4000-8000-0000000f0000",
		Model:       "w600k_mbf",
		SubjectID:   "subj-42",
		SubjectName: "Ada",
		Similarity:  0.625,
		Threshold:   0.375,
	})
	orig := out[0].event
	origMsg, err := events.Encode(orig)
	if err != nil {
		t.Fatalf("encode original: %v", err)
	}
	add("dead_letter", "00000000-0000-4000-8000-00000000000b", &events.DeadLetter{
		Stage:    events.StageIngest,
		Reason:   events.DeadLetterMaxDeliver,
		Error:    "store image: nats: timeout",
		Attempts: 5,
		Time:     sampleTime,
		Stream:   "FACESTREAM_WORK",
		Consumer: "ingest",
		Sequence: 42,
		Original: events.NewOriginalMessage(origMsg.Subject, origMsg.Header, origMsg.Data),
	})
	return out
}

// finish gives e the fixed attributes of the samples.
func finish(e *events.Event, id string) {
	e.CloudEvent.SetID(id)
	e.CloudEvent.SetSource(sampleSource)
	e.CloudEvent.SetTime(sampleTime)
	e.SetTenant(sampleTenant)
	e.TraceParent = sampleTraceParent
}
