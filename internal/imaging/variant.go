package imaging

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Variant returns a copy of an encoded image whose bytes differ from every
// other tag's but which decodes to the same picture: a JPEG gets a comment
// segment (COM) after its leading APPn segments (so JFIF and EXIF stay
// where they were), a PNG a tEXt chunk after IHDR, a WebP an unknown
// chunk at the end of its RIFF container. The result cache keys on the
// bytes' SHA-256, so each variant is a cache miss that the pipeline
// analyses in full: benchmarks and load tests use variants as an honest
// stand-in for a stream of distinct photos. Other formats are an error.
func Variant(data []byte, tag string) ([]byte, error) {
	text := []byte("facestream variant " + tag)
	switch {
	case len(data) > 4 && data[0] == 0xFF && data[1] == 0xD8:
		p := 2
		// Skip APP0..APP15 (FFE0..FFEF), each with its 2-byte length.
		for p+4 <= len(data) && data[p] == 0xFF && data[p+1] >= 0xE0 && data[p+1] <= 0xEF {
			n := int(binary.BigEndian.Uint16(data[p+2 : p+4]))
			if n < 2 || p+2+n > len(data) {
				return nil, errors.New("imaging: variant: malformed JPEG segment")
			}
			p += 2 + n
		}
		if len(text)+2 > 0xFFFF {
			return nil, errors.New("imaging: variant: tag too long")
		}
		out := make([]byte, 0, len(data)+4+len(text))
		out = append(out, data[:p]...)
		out = append(out, 0xFF, 0xFE)
		out = binary.BigEndian.AppendUint16(out, uint16(len(text)+2))
		out = append(out, text...)
		return append(out, data[p:]...), nil
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		// The signature, then IHDR: length(4) type(4) data(13) crc(4).
		const ihdrEnd = 8 + 4 + 4 + 13 + 4
		if len(data) < ihdrEnd || string(data[12:16]) != "IHDR" {
			return nil, errors.New("imaging: variant: PNG without IHDR first")
		}
		body := append([]byte("Comment\x00"), text...)
		chunk := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
		chunk = append(chunk, "tEXt"...)
		chunk = append(chunk, body...)
		chunk = binary.BigEndian.AppendUint32(chunk, crc32.ChecksumIEEE(chunk[4:]))
		out := make([]byte, 0, len(data)+len(chunk))
		out = append(out, data[:ihdrEnd]...)
		out = append(out, chunk...)
		return append(out, data[ihdrEnd:]...), nil
	case len(data) >= 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		// A WebP: an unknown chunk at the end of the RIFF container, which
		// decoders skip; the RIFF size grows by the chunk's.
		body := text
		if len(body)%2 == 1 {
			body = append(body, ' ')
		}
		out := make([]byte, 0, len(data)+8+len(body))
		out = append(out, data...)
		out = append(out, "FSBV"...)
		out = binary.LittleEndian.AppendUint32(out, uint32(len(body)))
		out = append(out, body...)
		binary.LittleEndian.PutUint32(out[4:8], uint32(len(out)-8))
		return out, nil
	}
	return nil, fmt.Errorf("imaging: variant: only JPEG, PNG and WebP (got % x…)", data[:min(len(data), 4)])
}
