package events

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/nats-io/nats.go"
)

// DeadLetterReason says why a message was dead-lettered.
type DeadLetterReason string

// Dead-letter reasons.
const (
	// DeadLetterPermanent: the handler returned a permanent error.
	DeadLetterPermanent DeadLetterReason = "permanent"
	// DeadLetterMaxDeliver: the last allowed delivery failed too.
	DeadLetterMaxDeliver DeadLetterReason = "max_deliver"
	// DeadLetterMalformed: the message is not a valid facestream event.
	DeadLetterMalformed DeadLetterReason = "malformed"
)

// DeadLetter is the data of a dead letter on facestream.dlq.<stage>: a
// message the stage gave up on, whole, with the reason. Replaying it means
// publishing Original.Msg() again.
type DeadLetter struct {
	// Stage is the stage that gave up.
	Stage  string           `json:"stage"`
	Reason DeadLetterReason `json:"reason"`
	// Error is the last error's text.
	Error string `json:"error"`
	// Attempts is the number of deliveries, the last one included.
	Attempts int `json:"attempts"`
	// Time is when the stage gave up.
	Time time.Time `json:"time"`
	// Stream, Consumer and Sequence locate the original in JetStream (it is
	// removed from a work-queue stream when terminated).
	Stream   string `json:"stream"`
	Consumer string `json:"consumer,omitempty"`
	Sequence uint64 `json:"sequence"`
	// Original is the message as it was stored.
	Original OriginalMessage `json:"original"`
}

// EventType implements Payload.
func (*DeadLetter) EventType() string { return TypeDeadLetter }

// OriginalMessage is a NATS message kept byte for byte: subject, every header
// (names as sent) and data (base64 in JSON).
type OriginalMessage struct {
	Subject string              `json:"subject"`
	Header  map[string][]string `json:"header,omitempty"`
	Data    []byte              `json:"data,omitempty"`
	// Size and SHA256 (lower-case hex) describe Data.
	Size   int    `json:"size"`
	SHA256 string `json:"sha256"`
	// DataOmitted is true when Data was left out because the dead letter
	// would not fit the server's max_payload; Size and SHA256 still
	// describe it.
	DataOmitted bool `json:"data_omitted,omitempty"`
}

// NewOriginalMessage captures a message for a dead letter. Header and data
// are copied.
func NewOriginalMessage(subject string, h nats.Header, data []byte) OriginalMessage {
	sum := sha256.Sum256(data)
	o := OriginalMessage{
		Subject: subject,
		Size:    len(data),
		SHA256:  hex.EncodeToString(sum[:]),
	}
	if len(h) > 0 {
		o.Header = make(map[string][]string, len(h))
		for k, vs := range h {
			o.Header[k] = append([]string(nil), vs...)
		}
	}
	if len(data) > 0 {
		o.Data = append([]byte(nil), data...)
	}
	return o
}

// Msg rebuilds the original message, for replay.
func (o OriginalMessage) Msg() *nats.Msg {
	m := nats.NewMsg(o.Subject)
	for k, vs := range o.Header {
		m.Header[k] = append([]string(nil), vs...)
	}
	m.Data = append([]byte(nil), o.Data...)
	return m
}
