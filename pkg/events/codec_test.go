package events_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/facestream/facestream/pkg/events"
)

func validHeaders() nats.Header {
	return nats.Header{
		"ce-specversion": {"1.0"},
		"ce-id":          {"e-1"},
		"ce-source":      {"/test"},
		"ce-type":        {events.TypeImageSubmitted},
		"content-type":   {"image/png"},
	}
}

func TestDecodeRejectsMalformedEvents(t *testing.T) {
	tests := []struct {
		name      string
		edit      func(h nats.Header)
		wantField string
	}{
		{"no ce headers at all", func(h nats.Header) {
			for k := range h {
				delete(h, k)
			}
		}, "ce-specversion"},
		{"structured mode", func(h nats.Header) {
			for k := range h {
				delete(h, k)
			}
			h["content-type"] = []string{"application/cloudevents+json"}
		}, "content-type"},
		{"spec version 0.3", func(h nats.Header) { h["ce-specversion"] = []string{"0.3"} }, "ce-specversion"},
		{"missing id", func(h nats.Header) { delete(h, "ce-id") }, "ce-id"},
		{"blank id", func(h nats.Header) { h["ce-id"] = []string{"  "} }, "ce-id"},
		{"missing source", func(h nats.Header) { delete(h, "ce-source") }, "ce-source"},
		{"missing type", func(h nats.Header) { delete(h, "ce-type") }, "ce-type"},
		{"bad time", func(h nats.Header) { h["ce-time"] = []string{"yesterday"} }, "ce-time"},
		{"bad extension name", func(h nats.Header) { h["ce-my_ext"] = []string{"x"} }, "ce-my_ext"},
		{"extension name too long", func(h nats.Header) { h["ce-abcdefghijklmnopqrstu"] = []string{"x"} }, "ce-abcdefghijklmnopqrstu"},
		{"spec attribute as extension", func(h nats.Header) { h["ce-datacontenttype"] = []string{"text/plain"} }, "event"},
		{"bad content type", func(h nats.Header) { h["content-type"] = []string{"image/"} }, "event"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := validHeaders()
			tt.edit(h)
			_, err := events.Decode(&nats.Msg{Subject: events.SubjectImageSubmitted, Header: h, Data: []byte("x")})
			if !errors.Is(err, events.ErrMalformed) || !errors.Is(err, events.ErrPermanent) {
				t.Fatalf("err = %v, want ErrMalformed and ErrPermanent", err)
			}
			var de *events.DecodeError
			if !errors.As(err, &de) || de.Field != tt.wantField {
				t.Errorf("err = %#v, want a *DecodeError on %s", err, tt.wantField)
			}
		})
	}
}

func TestDecodeIsCaseInsensitiveAndTakesExtensions(t *testing.T) {
	h := nats.Header{
		"Ce-Specversion": {"1.0"},
		"CE-ID":          {"e-1"},
		"Ce-Source":      {"/test"},
		"Ce-Type":        {events.TypeImageSubmitted},
		"Content-Type":   {"image/png"},
		"Ce-Tenant":      {"acme"},
		"TraceParent":    {"00-abc-def-01"},
	}
	e, err := events.Decode(&nats.Msg{Subject: events.SubjectImageSubmitted, Header: h, Data: []byte("png")})
	if err != nil {
		t.Fatal(err)
	}
	if e.CloudEvent.ID() != "e-1" || e.Tenant() != "acme" || e.TraceParent != "00-abc-def-01" {
		t.Errorf("decoded %v tenant=%q traceparent=%q", e.CloudEvent, e.Tenant(), e.TraceParent)
	}
	// Without ce-subject the event id is the image id.
	if e.ImageID() != "e-1" {
		t.Errorf("ImageID = %q, want the event id", e.ImageID())
	}
}

func TestEncodeRejectsInvalidEvents(t *testing.T) {
	e, err := events.New("img", &events.FaceMatched{ImageID: "img"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := events.Encode(e); err == nil {
		t.Error("encoded an event without id and source")
	}
	e.CloudEvent.SetID("id-1")
	e.CloudEvent.SetSource("/test")
	if _, err := events.Encode(e); err != nil {
		t.Errorf("encode valid event: %v", err)
	}
	e.TraceParent = "00-abc\r\nInjected: yes"
	if _, err := events.Encode(e); err == nil {
		t.Error("encoded a header value with a line break")
	}
	e.TraceParent = ""
	e.CloudEvent.SetType("com.example.unknown")
	if _, err := events.Encode(e); err == nil {
		t.Error("encoded an unknown type without a NATS subject")
	}
	e.Subject = "example.unknown"
	if _, err := events.Encode(e); err != nil {
		t.Errorf("encode unknown type with explicit subject: %v", err)
	}
}

func TestDecodePayloadErrors(t *testing.T) {
	e, err := events.New("img", &events.FaceMatched{ImageID: "img"})
	if err != nil {
		t.Fatal(err)
	}
	var wrong events.ImageAnalyzed
	if err := e.Decode(&wrong); !errors.Is(err, events.ErrMalformed) {
		t.Errorf("decoding face.matched as image.analyzed: err = %v, want ErrMalformed", err)
	}
	if err := e.CloudEvent.SetData(events.ContentTypeJSON, []byte(`{"face_index":"zero"}`)); err != nil {
		t.Fatal(err)
	}
	var fm events.FaceMatched
	if err := e.Decode(&fm); !errors.Is(err, events.ErrMalformed) {
		t.Errorf("bad JSON: err = %v, want ErrMalformed", err)
	}
}

func TestOptionsExtension(t *testing.T) {
	e, err := events.NewImageSubmitted(events.Submission{Image: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	if o, err := e.Options(); err != nil || o != (events.RequestOptions{}) {
		t.Errorf("no options: %+v, %v", o, err)
	}
	want := events.RequestOptions{Pack: "buffalo_sc", MinFaceSize: 40, SkipMatch: true}
	if err := e.SetOptions(want); err != nil {
		t.Fatal(err)
	}
	if got, err := e.Options(); err != nil || got != want {
		t.Errorf("options = %+v, %v; want %+v", got, err, want)
	}
	e.CloudEvent.SetExtension(events.ExtOptions, "{not json")
	if _, err := e.Options(); !errors.Is(err, events.ErrMalformed) {
		t.Errorf("bad options: err = %v, want ErrMalformed", err)
	}
}

func TestParseImageSubmitted(t *testing.T) {
	e, err := events.NewImageSubmitted(events.Submission{Image: []byte("raw")})
	if err != nil {
		t.Fatal(err)
	}
	e.CloudEvent.SetID("ev-9")
	s, err := events.ParseImageSubmitted(e)
	if err != nil {
		t.Fatal(err)
	}
	if s.ImageID != "ev-9" || s.ContentType != "application/octet-stream" || string(s.Image) != "raw" {
		t.Errorf("submission = %+v", s)
	}

	if _, err := events.NewImageSubmitted(events.Submission{Image: []byte("x"), Ref: &events.BlobRef{Bucket: "b", Key: "k"}}); err == nil {
		t.Error("accepted both inline bytes and a reference")
	}

	bad := e
	bad.CloudEvent = e.CloudEvent.Clone()
	if err := bad.CloudEvent.SetData(events.ContentTypeBlobRef, []byte(`{"bucket":""}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := events.ParseImageSubmitted(bad); !errors.Is(err, events.ErrMalformed) {
		t.Errorf("empty reference: err = %v, want ErrMalformed", err)
	}
}

func TestPermanent(t *testing.T) {
	base := errors.New("no such pack")
	err := fmt.Errorf("detect: %w", events.Permanent(base))
	if !errors.Is(err, events.ErrPermanent) || !errors.Is(err, base) {
		t.Errorf("Permanent lost its marks: %v", err)
	}
	if err.Error() != "detect: no such pack" {
		t.Errorf("message = %q", err)
	}
	if events.Permanent(nil) != nil {
		t.Error("Permanent(nil) != nil")
	}
	if errors.Is(base, events.ErrPermanent) {
		t.Error("a plain error is permanent")
	}
	for _, e := range []error{events.ErrMalformed, events.ErrBlobNotFound, events.ErrBlobCorrupt} {
		if !errors.Is(fmt.Errorf("x: %w", e), events.ErrPermanent) {
			t.Errorf("%v is not permanent", e)
		}
	}
}

func TestVectorJSON(t *testing.T) {
	v := events.Vector{1, -2.5, float32(math.Pi), 0, float32(math.Inf(1))}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != '"' {
		t.Fatalf("vector JSON %s is not a base64 string", b)
	}
	var back events.Vector
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, v) {
		t.Errorf("round trip = %v, want %v", back, v)
	}
	if err := json.Unmarshal([]byte(`[0.5, -1, 2]`), &back); err != nil || !reflect.DeepEqual(back, events.Vector{0.5, -1, 2}) {
		t.Errorf("array form: %v, %v", back, err)
	}
	if err := json.Unmarshal([]byte(`null`), &back); err != nil || back != nil {
		t.Errorf("null: %v, %v", back, err)
	}
	for _, bad := range []string{`"AAA"`, `"!!!!"`, `{}`, `"AAAAAAA="`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

// TestLargeFacesEventFitsMaxPayload: a photo with 200 faces and 512-d
// embeddings (crops by reference) stays well under the default 1 MB
// max_payload.
func TestLargeFacesEventFitsMaxPayload(t *testing.T) {
	faces := make([]events.Face, 200)
	for i := range faces {
		vec := make(events.Vector, 512)
		for j := range vec {
			vec[j] = float32(math.Sin(float64(i*512 + j)))
		}
		age := float32(30)
		faces[i] = events.Face{
			Index:     i,
			Box:       events.Box{1000.123, 2000.456, 1100.789, 2120.012},
			Landmarks: events.Landmarks{{1, 2}, {3, 4}, {5, 6}, {7, 8}, {9, 10}},
			Score:     0.87654321,
			Embedding: &events.Embedding{Model: "w600k_r50", Dim: 512, Vector: vec},
			Attributes: &events.Attributes{
				Age: &age, Gender: &events.Gender{Label: "male", Score: 0.9},
				Emotion: &events.Emotion{Label: "neutral", Score: 0.8, Probabilities: map[string]float32{
					"neutral": 0.8, "happiness": 0.05, "surprise": 0.05, "sadness": 0.02,
					"anger": 0.02, "disgust": 0.02, "fear": 0.02, "contempt": 0.02,
				}},
				Pose:    &events.Pose{Yaw: 1, Pitch: 2, Roll: 3},
				Quality: &events.Quality{Sharpness: 100, Brightness: 128, FaceSize: 100, DetScore: 0.9, Usable: true},
			},
		}
	}
	e, err := events.New("img", &events.FacesAnalyzed{Image: sampleImage(), Pack: "buffalo_l", Faces: faces})
	if err != nil {
		t.Fatal(err)
	}
	finish(&e, "id")
	msg, err := events.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	const limit = 1 << 20
	if n := len(msg.Data); n > limit*3/4 {
		t.Errorf("200 faces × 512-d: %d bytes, want well under %d", n, limit)
	}
	t.Logf("200 faces × 512-d with attributes: %d bytes", len(msg.Data))
}

func TestCropSet(t *testing.T) {
	c := events.CropSet{Kind: events.CropAligned112, Width: 2, Height: 1, Channels: 3, Faces: []int{4, 7}}
	pixels := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	got, err := c.Crop(pixels, 7)
	if err != nil || !reflect.DeepEqual(got, []byte{7, 8, 9, 10, 11, 12}) {
		t.Errorf("crop of face 7 = %v, %v", got, err)
	}
	if _, err := c.Crop(pixels, 5); err == nil {
		t.Error("crop of a face not in the set")
	}
	if _, err := c.Crop(pixels[:11], 4); err == nil {
		t.Error("crop from short pixels")
	}
}

func TestSubjectsAndTypes(t *testing.T) {
	for _, typ := range events.Types() {
		subj, ok := events.SubjectOf(typ)
		if typ == events.TypeDeadLetter {
			if ok {
				t.Errorf("dead letters have a fixed subject %q", subj)
			}
			continue
		}
		if !ok || !strings.HasPrefix(subj, "facestream.") {
			t.Errorf("SubjectOf(%s) = %q, %v", typ, subj, ok)
		}
		if !strings.HasPrefix(typ, "io.facestream.") || !strings.HasSuffix(typ, ".v1") {
			t.Errorf("type %s is not versioned under io.facestream", typ)
		}
	}
	if got := events.DLQSubject(events.StageEmbed); got != "facestream.dlq.embed" {
		t.Errorf("DLQSubject = %q", got)
	}
}
