package api

import (
	"time"

	"github.com/facestream/facestream/pkg/events"
)

// FaceOut is a face in API answers.
type FaceOut struct {
	ID        string           `json:"id"`
	Index     int              `json:"index"`
	Box       events.Box       `json:"box"`
	Landmarks events.Landmarks `json:"landmarks"`
	Score     float32          `json:"score"`
	Age       *float32         `json:"age,omitempty"`
	Gender    *events.Gender   `json:"gender,omitempty"`
	Emotion   *events.Emotion  `json:"emotion,omitempty"`
	Pose      *events.Pose     `json:"pose,omitempty"`
	Quality   *events.Quality  `json:"quality,omitempty"`
	// SubjectID is set when the face is a reference face of a subject.
	SubjectID string `json:"subject_id,omitempty"`
	// Match is the enrolled subject the face resembles (analysis answers).
	Match *events.Match `json:"match,omitempty"`

	vector []float32
	model  string
}

// ImageOut is an image and its result.
type ImageOut struct {
	ID            string     `json:"id"`
	Status        string     `json:"status"` // accepted, analyzed, rejected
	RejectReason  string     `json:"reject_reason,omitempty"`
	RejectMessage string     `json:"reject_message,omitempty"`
	Width         int        `json:"width,omitempty"`
	Height        int        `json:"height,omitempty"`
	SHA256        string     `json:"sha256,omitempty"`
	ModelPack     string     `json:"model_pack,omitempty"`
	FaceCount     int        `json:"face_count"`
	Cached        bool       `json:"cached,omitempty"`
	SubmittedAt   *time.Time `json:"submitted_at,omitempty"`
	AnalyzedAt    *time.Time `json:"analyzed_at,omitempty"`
	Faces         []FaceOut  `json:"faces"`
}

func faceOut(f events.Face) FaceOut {
	o := FaceOut{ID: f.ID, Index: f.Index, Box: f.Box, Landmarks: f.Landmarks, Score: f.Score, Match: f.Match}
	if a := f.Attributes; a != nil {
		o.Age, o.Gender, o.Emotion, o.Pose, o.Quality = a.Age, a.Gender, a.Emotion, a.Pose, a.Quality
	}
	if e := f.Embedding; e != nil {
		o.vector, o.model = e.Vector, e.Model
	}
	return o
}

func imageFromAnalyzed(a *events.ImageAnalyzed) ImageOut {
	sub, at := a.Image.SubmittedAt, a.AnalyzedAt
	o := ImageOut{
		ID: a.Image.ImageID, Status: "analyzed", Width: a.Image.Width, Height: a.Image.Height, SHA256: a.Image.SHA256,
		ModelPack: a.Pack, FaceCount: len(a.Faces), Cached: a.Cached, SubmittedAt: &sub, AnalyzedAt: &at, Faces: []FaceOut{},
	}
	for _, f := range a.Faces {
		o.Faces = append(o.Faces, faceOut(f))
	}
	return o
}

// largest returns the index of the face with the largest box, -1 for none.
// Only faces with an embedding count.
func largest(faces []FaceOut) int {
	best, area := -1, float32(-1)
	for i, f := range faces {
		if f.vector == nil {
			continue
		}
		if a := f.Box.Width() * f.Box.Height(); a > area {
			best, area = i, a
		}
	}
	return best
}

// bestForEnrolment is the largest usable face (quality usable), else the
// largest face; -1 for none.
func bestForEnrolment(faces []FaceOut) int {
	var usable []FaceOut
	var idx []int
	for i, f := range faces {
		if f.Quality == nil || f.Quality.Usable {
			usable, idx = append(usable, f), append(idx, i)
		}
	}
	if j := largest(usable); j >= 0 {
		return idx[j]
	}
	return largest(faces)
}
