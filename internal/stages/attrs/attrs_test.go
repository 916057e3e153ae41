package attrs_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/facestream/facestream/internal/face"
	"github.com/facestream/facestream/internal/stages/attrs"
	"github.com/facestream/facestream/internal/stages/detect"
	"github.com/facestream/facestream/internal/stages/embed"
	"github.com/facestream/facestream/internal/stages/stagetest"
	"github.com/facestream/facestream/pkg/events"
)

// detect → embed → attrs on real photos gives the face engine's own
// analysis: age, gender, emotion, pose and quality per face, with the
// detect stage decoding large JPEGs reduced (couple.jpg and img1.jpg at ½)
// as the service does by default.
func TestAttrsEqualEngine(t *testing.T) {
	eng, pack := stagetest.Engine(t)
	_, blobs := stagetest.JetStream(t)
	ctx := context.Background()
	det, err := detect.New(detect.Config{Pack: pack, Detector: eng.Detector(), GenderAge: eng.GenderAge(), Blobs: blobs, InlineMax: 40000, DecodeMinSide: 640})
	if err != nil {
		t.Fatal(err)
	}
	b, err := embed.NewBatcher(eng.Recognizer().Embed, embed.BatcherConfig{Size: 8, MaxWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	emb, err := embed.New(embed.Config{Recognizer: eng.Recognizer(), Batcher: b, Blobs: blobs})
	if err != nil {
		t.Fatal(err)
	}
	h, err := attrs.New(attrs.Config{GenderAge: eng.GenderAge(), Emotion: eng.Emotion(), Blobs: blobs})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"couple.jpg", "img1.jpg", "img10.jpg"} {
		data := stagetest.Image(t, "deepface", name)
		outs, err := det.Handle(ctx, stagetest.Delivery(t, name, &events.ImageAccepted{Image: events.ImageInfo{ImageID: name}, Data: events.Blob{Data: data}}))
		var fd events.FacesDetected
		stagetest.Output(t, outs, err, &fd)
		outs, err = emb.Handle(ctx, stagetest.Delivery(t, name, &fd))
		var fe events.FacesEmbedded
		stagetest.Output(t, outs, err, &fe)
		outs, err = h.Handle(ctx, stagetest.Delivery(t, name, &fe))
		var fa events.FacesAnalyzed
		stagetest.Output(t, outs, err, &fa)

		want, err := eng.AnalyzeEncoded(data, face.DecodeOptions{MinSide: 640}, face.AnalyzeOptions{Embedding: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(fa.Faces) != len(want) {
			t.Fatalf("%s: %d faces, engine %d", name, len(fa.Faces), len(want))
		}
		if name == "couple.jpg" && len(fa.CropRefs) != 1 {
			t.Errorf("%s: crop refs %v, want the aligned set's", name, fa.CropRefs)
		}
		for i, f := range fa.Faces {
			w, a := want[i], f.Attributes
			if a == nil || a.Age == nil || a.Gender == nil || a.Emotion == nil || a.Pose == nil || a.Quality == nil {
				t.Fatalf("%s face %d: attributes incomplete: %+v", name, i, a)
			}
			if int(*a.Age) != w.Age || a.Gender.Label != string(w.Gender) || a.Emotion.Label != w.Emotion.Label {
				t.Errorf("%s face %d: age %v %s %s, engine %d %s %s", name, i, *a.Age, a.Gender.Label, a.Emotion.Label, w.Age, w.Gender, w.Emotion.Label)
			}
			if a.Pose.Yaw != w.Pose.Yaw || a.Pose.Pitch != w.Pose.Pitch || a.Pose.Roll != w.Pose.Roll {
				t.Errorf("%s face %d: pose %+v, engine %+v", name, i, *a.Pose, w.Pose)
			}
			q := a.Quality
			if q.Usable != w.Quality.Usable || math.Abs(float64(q.Sharpness-w.Quality.Sharpness)) > 1e-3 ||
				math.Abs(float64(q.Brightness*255-w.Quality.Brightness)) > 1e-3 {
				t.Errorf("%s face %d: quality %+v, engine %+v", name, i, *q, w.Quality)
			}
			if c := face.Cosine(f.Embedding.Vector, w.Embedding); c < 0.9999 {
				t.Errorf("%s face %d: embedding cosine %v to the engine's", name, i, c)
			}
		}
	}
}

func TestQualityReason(t *testing.T) {
	th := face.DefaultQualityThresholds()
	for _, tc := range []struct {
		m    face.QualityMeasures
		want events.QualityReason
	}{
		{face.QualityMeasures{Sharpness: 1, Brightness: 100, FaceSize: 100, Score: 0.9}, events.QualityBlurry},
		{face.QualityMeasures{Sharpness: 500, Brightness: 10, FaceSize: 100, Score: 0.9}, events.QualityTooDark},
		{face.QualityMeasures{Sharpness: 500, Brightness: 250, FaceSize: 100, Score: 0.9}, events.QualityTooBright},
		{face.QualityMeasures{Sharpness: 500, Brightness: 100, FaceSize: 10, Score: 0.9}, events.QualityTooSmall},
		{face.QualityMeasures{Sharpness: 500, Brightness: 100, FaceSize: 100, Score: 0.5}, events.QualityLowScore},
		{face.QualityMeasures{Sharpness: 500, Brightness: 100, FaceSize: 100, Score: 0.9, Yaw: 80}, events.QualityExtremePose},
		{face.QualityMeasures{Sharpness: 500, Brightness: 100, FaceSize: 100, Score: 0.9}, ""},
	} {
		if got := attrs.Quality(th.Assess(tc.m)); got.Reason != tc.want || got.Usable != (tc.want == "") {
			t.Errorf("%+v: %+v, want reason %q", tc.m, got, tc.want)
		}
	}
}
