package events

import (
	"encoding/json"
	"fmt"
	"mime"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
)

// Event is a CloudEvent on its NATS subject, with the W3C trace context that
// travels beside it as plain headers.
//
// An Event is a value, but its CloudEvent shares its attributes with copies
// (sdk-go keeps them behind a pointer): use CloudEvent.Clone() before
// changing a copy. The functions of this package never change the events
// they are given.
type Event struct {
	// Subject is the NATS subject to publish on (not the CloudEvents
	// subject, which is the image id). Empty means the subject of the
	// CloudEvent's type and image (SubjectFor).
	Subject string
	// CloudEvent is the event: attributes, extensions and data.
	CloudEvent event.Event
	// TraceParent and TraceState are the W3C trace context headers. The
	// runner copies them from a stage's input to its outputs.
	TraceParent string
	TraceState  string
}

// New returns an event carrying payload p as JSON, about image imageID (the
// CloudEvents subject). Its id, source and time are left for the Publisher
// (or the Runner) to fill in; set them first where they must be fixed.
func New(imageID string, p Payload) (Event, error) {
	data, err := json.Marshal(p)
	if err != nil {
		return Event{}, fmt.Errorf("encode %s: %w", p.EventType(), err)
	}
	ce := event.New()
	ce.SetType(p.EventType())
	if imageID != "" {
		ce.SetSubject(imageID)
	}
	if err := ce.SetData(ContentTypeJSON, data); err != nil {
		return Event{}, fmt.Errorf("encode %s: %w", p.EventType(), err)
	}
	e := Event{CloudEvent: ce}
	if dl, ok := p.(*DeadLetter); ok {
		e.Subject = DLQSubject(dl.Stage)
	}
	return e, nil
}

// NewID returns a fresh random event id (a UUID).
func NewID() string { return uuid.NewString() }

// ImageID returns the id of the image the event is about: the CloudEvents
// subject, or the event id when the producer set no subject.
func (e Event) ImageID() string {
	if s := e.CloudEvent.Subject(); s != "" {
		return s
	}
	return e.CloudEvent.ID()
}

// Tenant returns the tenant extension, or "" when there is none.
func (e Event) Tenant() string {
	return extString(e.CloudEvent, ExtTenant)
}

// SetTenant sets the tenant extension; "" removes it.
func (e *Event) SetTenant(tenant string) {
	if tenant == "" {
		e.CloudEvent.SetExtension(ExtTenant, nil)
		return
	}
	e.CloudEvent.SetExtension(ExtTenant, tenant)
}

// Options returns the per-request options of the options extension; the zero
// value when there are none. Malformed options are a *DecodeError.
func (e Event) Options() (RequestOptions, error) {
	var o RequestOptions
	s := extString(e.CloudEvent, ExtOptions)
	if s == "" {
		return o, nil
	}
	if err := json.Unmarshal([]byte(s), &o); err != nil {
		return RequestOptions{}, &DecodeError{Field: HeaderPrefix + ExtOptions, Err: err}
	}
	return o, nil
}

// SetOptions sets the options extension; the zero value removes it.
func (e *Event) SetOptions(o RequestOptions) error {
	if o == (RequestOptions{}) {
		e.CloudEvent.SetExtension(ExtOptions, nil)
		return nil
	}
	b, err := json.Marshal(o)
	if err != nil {
		return fmt.Errorf("encode options: %w", err)
	}
	e.CloudEvent.SetExtension(ExtOptions, string(b))
	return nil
}

// Decode decodes the event's JSON data into v, typically a pointer to the
// payload type of the event's type. An event of another content type, or
// data that is not the expected JSON, is a *DecodeError.
func (e Event) Decode(v any) error {
	if p, ok := v.(Payload); ok && p.EventType() != e.CloudEvent.Type() {
		return decodeErr("ce-type", "%s cannot be decoded as %s", e.CloudEvent.Type(), p.EventType())
	}
	if mt := mediaType(e.CloudEvent.DataContentType()); mt != ContentTypeJSON {
		return decodeErr(HeaderContentType, "want %s, got %q", ContentTypeJSON, e.CloudEvent.DataContentType())
	}
	if err := json.Unmarshal(e.CloudEvent.Data(), v); err != nil {
		return &DecodeError{Field: "data", Err: err}
	}
	return nil
}

// extString returns a string extension attribute, or "".
func extString(ce event.Event, name string) string {
	v, ok := ce.Extensions()[name]
	if !ok {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

// mediaType returns the media type of a content type without parameters,
// lower-cased; the content type itself when it does not parse.
func mediaType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ct
	}
	return mt
}
