package events

import (
	"errors"
	"fmt"
)

// ErrPermanent marks an error that retrying cannot fix: a poison message, an
// input the stage can never process. The runner dead-letters and terminates
// an input whose handler returns an error that matches it (errors.Is).
var ErrPermanent = errors.New("permanent failure")

// ErrMalformed matches every *DecodeError: an event that is not a valid
// facestream CloudEvent or whose payload does not decode. It is permanent:
// errors.Is(ErrMalformed, ErrPermanent) holds.
var ErrMalformed error = permanentSentinel("malformed event")

// ErrBlobNotFound is returned when a BlobRef points at an object that does
// not exist (never stored, or expired with the bucket's TTL), and
// ErrBlobCorrupt when the object's size or sha256 differ from the BlobRef.
// Both are permanent.
var (
	ErrBlobNotFound error = permanentSentinel("blob not found")
	ErrBlobCorrupt  error = permanentSentinel("blob does not match its reference")
)

// Permanent marks err as permanent (see ErrPermanent), keeping its message
// and its chain: errors.Is(Permanent(err), err) holds. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string        { return e.err.Error() }
func (e *permanentError) Unwrap() error        { return e.err }
func (e *permanentError) Is(target error) bool { return target == ErrPermanent }

// permanentSentinel is a sentinel error that also matches ErrPermanent.
type permanentSentinel string

func (e permanentSentinel) Error() string        { return string(e) }
func (e permanentSentinel) Is(target error) bool { return target == ErrPermanent }

// DecodeError reports an event that cannot be decoded: a missing or invalid
// CloudEvents attribute, an unsupported content mode, a payload that is not
// the documented JSON. It matches ErrMalformed and ErrPermanent.
type DecodeError struct {
	// Field names what is wrong: a header ("ce-id"), "data", or "event".
	Field string
	// Err says why.
	Err error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("decode event: %s: %v", e.Field, e.Err)
}

// Unwrap returns the underlying error.
func (e *DecodeError) Unwrap() error { return e.Err }

// Is makes a DecodeError match ErrMalformed and ErrPermanent.
func (e *DecodeError) Is(target error) bool {
	return target == ErrMalformed || target == ErrPermanent
}

func decodeErr(field string, format string, args ...any) error {
	return &DecodeError{Field: field, Err: fmt.Errorf(format, args...)}
}
