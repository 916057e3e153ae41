package events_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/facestream/facestream/pkg/events"
)

// fuzzHeaders parses "Key: value" lines into NATS headers, as a NATS client
// would hand them over (any key, any value, repeated keys).
func fuzzHeaders(text string) nats.Header {
	h := nats.Header{}
	for line := range strings.SplitSeq(text, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		h[k] = append(h[k], strings.TrimPrefix(v, " "))
	}
	return h
}

// FuzzDecode feeds arbitrary headers and data to Decode, and decodes what it
// accepts as far as a stage would (options, payloads, a submission). Nothing
// may panic; every refusal is a *DecodeError (permanent, dead-lettered);
// an accepted event re-encodes and decodes to the same event.
func FuzzDecode(f *testing.F) {
	valid := "ce-specversion: 1.0\nce-id: e-1\nce-source: /test\nce-type: " + events.TypeImageSubmitted +
		"\nce-subject: img-1\nce-time: 2026-01-02T03:04:05Z\ncontent-type: image/jpeg"
	f.Add("facestream.image.submitted", valid, []byte("\xff\xd8\xff\xe0 not really a jpeg"))
	f.Add("facestream.image.submitted", valid+"\nce-facestreamoptions: {\"max_faces\":3}", []byte{})
	f.Add("facestream.faces.analyzed", strings.Replace(valid, events.TypeImageSubmitted, events.TypeFacesAnalyzed, 1)+
		"\ncontent-type: application/json", []byte(`{"image":{"image_id":"img-1"},"faces":[{"index":0,"embedding":{"vector":"AAAA"}}]}`))
	f.Add("facestream.image.submitted", "content-type: application/cloudevents+json", []byte(`{"specversion":"1.0"}`))
	f.Add("x", "ce-specversion: 0.3\nce-id: 1", []byte(nil))
	f.Add("x", valid+"\nce-Bad_Ext: 1\nce-time: yesterday", []byte("{"))
	f.Fuzz(func(t *testing.T, subject, headers string, data []byte) {
		msg := &nats.Msg{Subject: subject, Header: fuzzHeaders(headers), Data: data}
		ev, err := events.Decode(msg)
		if err != nil {
			var de *events.DecodeError
			if !errors.As(err, &de) || !errors.Is(err, events.ErrPermanent) {
				t.Fatalf("Decode error %v (%T) is not a permanent *DecodeError", err, err)
			}
			return
		}
		// What a stage does with an accepted event must not panic.
		_ = ev.ImageID()
		_ = ev.Tenant()
		_, _ = ev.Options()
		_, _ = events.ParseImageSubmitted(ev)
		var fa events.FacesAnalyzed
		_ = ev.Decode(&fa)
		var ia events.ImageAccepted
		_ = ev.Decode(&ia)

		again, err := events.Encode(ev)
		if err != nil {
			return // Encode is stricter (e.g. the payload's own checks); refusing is fine.
		}
		ev2, err := events.Decode(again)
		if err != nil {
			t.Fatalf("re-encoded event does not decode: %v", err)
		}
		if ev2.CloudEvent.ID() != ev.CloudEvent.ID() || ev2.CloudEvent.Type() != ev.CloudEvent.Type() ||
			ev2.CloudEvent.Source() != ev.CloudEvent.Source() || ev2.ImageID() != ev.ImageID() ||
			!bytes.Equal(ev2.CloudEvent.Data(), ev.CloudEvent.Data()) {
			t.Fatalf("round trip changed the event:\n%v\n%v", ev.CloudEvent, ev2.CloudEvent)
		}
	})
}
