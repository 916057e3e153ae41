package events

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/nats-io/nats.go"
)

// Binary-mode headers of the CloudEvents attributes.
const (
	headerSpecVersion = HeaderPrefix + "specversion"
	headerID          = HeaderPrefix + "id"
	headerSource      = HeaderPrefix + "source"
	headerType        = HeaderPrefix + "type"
	headerTime        = HeaderPrefix + "time"
	headerSubject     = HeaderPrefix + "subject"
	headerDataSchema  = HeaderPrefix + "dataschema"
)

// contentTypeStructured is the content type of structured-mode CloudEvents,
// which facestream does not accept.
const contentTypeStructured = "application/cloudevents+json"

// Encode renders e as a NATS message in CloudEvents binary content mode:
// every attribute as a ce-<name> header (content-type for datacontenttype),
// every extension as ce-<extension>, Nats-Msg-Id set to the event id, the
// trace context as traceparent / tracestate, and the data as the message
// body, byte for byte. The event must be valid (id, source, type set).
// The NATS subject is e.Subject, or else SubjectFor the type and the image
// id (results end in the image's token).
func Encode(e Event) (*nats.Msg, error) {
	ce := e.CloudEvent
	subject := e.Subject
	if subject == "" {
		var ok bool
		imageID := ce.Subject()
		if imageID == "" {
			imageID = ce.ID()
		}
		if subject, ok = SubjectFor(ce.Type(), imageID); !ok {
			return nil, fmt.Errorf("encode event: no NATS subject for type %q", ce.Type())
		}
	}
	if ce.Context == nil {
		return nil, errors.New("encode event: no CloudEvents context")
	}
	if ce.SpecVersion() != event.CloudEventsVersionV1 {
		return nil, fmt.Errorf("encode event: spec version %q, want %s", ce.SpecVersion(), event.CloudEventsVersionV1)
	}
	if err := ce.Validate(); err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}

	h := nats.Header{}
	set := func(k, v string) {
		if v != "" {
			h[k] = []string{v}
		}
	}
	set(headerSpecVersion, ce.SpecVersion())
	set(headerID, ce.ID())
	set(headerSource, ce.Source())
	set(headerType, ce.Type())
	if t := ce.Time(); !t.IsZero() {
		set(headerTime, types.FormatTime(t))
	}
	set(headerSubject, ce.Subject())
	set(headerDataSchema, ce.DataSchema())
	set(HeaderContentType, ce.DataContentType())
	for name, v := range ce.Extensions() {
		s, err := types.Format(v)
		if err != nil {
			return nil, fmt.Errorf("encode event: extension %s: %w", name, err)
		}
		set(HeaderPrefix+name, s)
	}
	set(HeaderMsgID, ce.ID())
	set(HeaderTraceParent, e.TraceParent)
	set(HeaderTraceState, e.TraceState)
	for k, vs := range h {
		if strings.ContainsAny(vs[0], "\r\n") {
			return nil, fmt.Errorf("encode event: header %s contains a line break", k)
		}
	}
	return &nats.Msg{Subject: subject, Header: h, Data: ce.Data()}, nil
}

// Decode reads a NATS message in CloudEvents binary content mode. Header
// names are matched case-insensitively. The data is not copied. A message
// that is not a valid CloudEvent (no ce-specversion 1.0, a missing id,
// source or type, an unparsable time, structured content mode, an invalid
// extension name) is a *DecodeError, which matches ErrMalformed.
//
// Decode checks the envelope only; the payload is decoded by Event.Decode
// or ParseImageSubmitted.
func Decode(msg *nats.Msg) (Event, error) {
	h := make(map[string]string, len(msg.Header))
	for _, k := range sortedKeys(msg.Header) {
		lk := strings.ToLower(k)
		if _, dup := h[lk]; dup || len(msg.Header[k]) == 0 {
			continue
		}
		h[lk] = msg.Header[k][0]
	}

	if sv, ok := h[headerSpecVersion]; !ok {
		if strings.HasPrefix(mediaType(h[strings.ToLower(HeaderContentType)]), contentTypeStructured) {
			return Event{}, decodeErr(HeaderContentType, "structured content mode is not supported; send binary mode (ce-* headers)")
		}
		return Event{}, decodeErr(headerSpecVersion, "missing: not a CloudEvent in binary content mode")
	} else if sv != event.CloudEventsVersionV1 {
		return Event{}, decodeErr(headerSpecVersion, "unsupported version %q, want %s", sv, event.CloudEventsVersionV1)
	}
	for _, k := range []string{headerID, headerSource, headerType} {
		if strings.TrimSpace(h[k]) == "" {
			return Event{}, decodeErr(k, "missing")
		}
	}

	ce := event.New()
	ce.SetID(h[headerID])
	ce.SetSource(h[headerSource])
	ce.SetType(h[headerType])
	if v, ok := h[headerTime]; ok {
		t, err := types.ParseTime(v)
		if err != nil {
			return Event{}, &DecodeError{Field: headerTime, Err: err}
		}
		ce.SetTime(t)
	}
	if v, ok := h[headerSubject]; ok {
		ce.SetSubject(v)
	}
	if v, ok := h[headerDataSchema]; ok {
		ce.SetDataSchema(v)
	}
	ct, hasCT := h[strings.ToLower(HeaderContentType)]
	for k, v := range h {
		name, ok := strings.CutPrefix(k, HeaderPrefix)
		if !ok || isSpecHeader(k) {
			continue
		}
		if !validExtensionName(name) {
			return Event{}, decodeErr(k, "invalid extension name %q: want 1-20 lower-case letters or digits", name)
		}
		ce.SetExtension(name, v)
	}
	if hasCT {
		ce.SetDataContentType(ct)
	}
	if len(msg.Data) > 0 {
		ce.DataEncoded = msg.Data
		ce.DataBase64 = false
	}
	if err := ce.Validate(); err != nil {
		return Event{}, &DecodeError{Field: "event", Err: err}
	}
	return Event{
		Subject:     msg.Subject,
		CloudEvent:  ce,
		TraceParent: h[HeaderTraceParent],
		TraceState:  h[HeaderTraceState],
	}, nil
}

// isSpecHeader reports whether a lower-cased ce-* header is one of the
// CloudEvents 1.0 context attributes handled explicitly.
func isSpecHeader(k string) bool {
	switch k {
	case headerSpecVersion, headerID, headerSource, headerType, headerTime, headerSubject, headerDataSchema:
		return true
	}
	return false
}

// validExtensionName reports whether name is a CloudEvents extension name:
// lower-case ASCII letters and digits, at most 20 characters.
func validExtensionName(name string) bool {
	if name == "" || len(name) > 20 {
		return false
	}
	for _, c := range name {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func sortedKeys(h nats.Header) []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
