package events

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Submission is an image.submitted event in Go form. On the wire it is a
// binary-mode CloudEvent whose data is the image bytes themselves (content
// type image/jpeg, image/png, …, or application/octet-stream), or, for an
// image too large for a message, a JSON BlobRef with content type
// application/vnd.facestream.ref+json.
type Submission struct {
	// ImageID is the producer's id for the image, sent as ce-subject. When
	// empty, the event id is the image id.
	ImageID string
	// Tenant is the tenant extension (optional).
	Tenant string
	// Options are the per-request options (optional).
	Options RequestOptions
	// ContentType is the media type of Image, e.g. "image/jpeg"; empty
	// means application/octet-stream (ingest recognises the format from the
	// bytes either way). Ignored when Ref is set.
	ContentType string
	// Image is the encoded image, when it travels inline.
	Image []byte
	// Ref points at the image in the object store instead. Exactly one of
	// Image and Ref is set.
	Ref *BlobRef
}

// NewImageSubmitted returns the image.submitted event of s. Like New, it
// leaves the id, source and time to the Publisher unless set afterwards.
func NewImageSubmitted(s Submission) (Event, error) {
	if s.Ref != nil && len(s.Image) > 0 {
		return Event{}, errors.New("new image.submitted: both an inline image and a reference")
	}
	ce := event.New()
	ce.SetType(TypeImageSubmitted)
	if s.ImageID != "" {
		ce.SetSubject(s.ImageID)
	}
	if s.Ref != nil {
		data, err := json.Marshal(s.Ref)
		if err != nil {
			return Event{}, fmt.Errorf("new image.submitted: %w", err)
		}
		if err := ce.SetData(ContentTypeBlobRef, data); err != nil {
			return Event{}, fmt.Errorf("new image.submitted: %w", err)
		}
	} else {
		ct := s.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		if err := ce.SetData(ct, s.Image); err != nil {
			return Event{}, fmt.Errorf("new image.submitted: %w", err)
		}
	}
	e := Event{CloudEvent: ce}
	e.SetTenant(s.Tenant)
	if err := e.SetOptions(s.Options); err != nil {
		return Event{}, fmt.Errorf("new image.submitted: %w", err)
	}
	return e, nil
}

// ParseImageSubmitted reads an image.submitted event. Only the envelope and
// the reference are checked: an empty or undecodable image is for the ingest
// stage to reject (image.rejected), not a malformed event.
func ParseImageSubmitted(e Event) (Submission, error) {
	ce := e.CloudEvent
	if ce.Type() != TypeImageSubmitted {
		return Submission{}, decodeErr("ce-type", "%s is not %s", ce.Type(), TypeImageSubmitted)
	}
	opts, err := e.Options()
	if err != nil {
		return Submission{}, err
	}
	s := Submission{ImageID: e.ImageID(), Tenant: e.Tenant(), Options: opts}
	if mediaType(ce.DataContentType()) == ContentTypeBlobRef {
		var ref BlobRef
		if err := json.Unmarshal(ce.Data(), &ref); err != nil {
			return Submission{}, &DecodeError{Field: "data", Err: fmt.Errorf("blob reference: %w", err)}
		}
		if ref.Bucket == "" || ref.Key == "" {
			return Submission{}, decodeErr("data", "blob reference without bucket or key")
		}
		s.Ref = &ref
		return s, nil
	}
	s.ContentType = ce.DataContentType()
	if s.ContentType == "" {
		s.ContentType = "application/octet-stream"
	}
	s.Image = ce.Data()
	return s, nil
}
