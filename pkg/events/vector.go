package events

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
)

// Vector is an embedding. Its JSON form is compact: a base64 string (standard
// alphabet, padded) of the little-endian IEEE-754 float32 values, 4 bytes per
// dimension, so a 512-d vector takes 2,732 characters instead of ~5,000 as
// decimal numbers. For hand-written input, unmarshalling also accepts a plain
// JSON array of numbers; null is the nil vector.
type Vector []float32

// MarshalJSON implements json.Marshaler.
func (v Vector) MarshalJSON() ([]byte, error) {
	if v == nil {
		return []byte("null"), nil
	}
	raw := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(f))
	}
	out := make([]byte, 0, base64.StdEncoding.EncodedLen(len(raw))+2)
	out = append(out, '"')
	out = base64.StdEncoding.AppendEncode(out, raw)
	return append(out, '"'), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (v *Vector) UnmarshalJSON(data []byte) error {
	switch {
	case string(data) == "null":
		*v = nil
		return nil
	case len(data) > 0 && data[0] == '[':
		var fs []float32
		if err := json.Unmarshal(data, &fs); err != nil {
			return fmt.Errorf("decode vector: %w", err)
		}
		*v = fs
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("decode vector: want a base64 string or an array: %w", err)
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return fmt.Errorf("decode vector: %w", err)
	}
	if len(raw)%4 != 0 {
		return fmt.Errorf("decode vector: %d bytes is not a whole number of float32", len(raw))
	}
	out := make(Vector, len(raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	*v = out
	return nil
}
