package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
)

// upload is one image of a request, decoded and size-checked but not yet
// validated as an image.
type upload struct {
	Data        []byte
	ContentType string
	Name        string // multipart file name or JSON field; never logged with the bytes
}

// input is a parsed request body: its JSON object (the body itself, or the
// multipart form's fields) and the images uploaded as multipart files or
// sent as a raw body, in order.
type input struct {
	JSON   []byte
	Images []upload
}

// limits bound what readInput accepts.
type limits struct {
	MaxBody  int64 // whole body
	MaxImage int64 // one decoded image
}

// readInput parses r's body: application/json, multipart/form-data (file
// parts are images, other fields JSON values or strings, or one field
// "request" holding a JSON object), or — where raw is true — a bare image
// (image/*, application/octet-stream).
func readInput(r *http.Request, lim limits, raw bool) (input, *Problem) {
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil {
		return input{}, problem(http.StatusUnsupportedMediaType, CodeUnsupportedMedia, "send application/json or multipart/form-data (Content-Type is missing or invalid)")
	}
	body := io.LimitReader(r.Body, lim.MaxBody+1)
	switch {
	case mt == "application/json":
		data, err := io.ReadAll(body)
		if err != nil {
			return input{}, problem(http.StatusBadRequest, CodeInvalidRequest, "read body: "+err.Error())
		}
		if int64(len(data)) > lim.MaxBody {
			return input{}, tooLargeBody(lim)
		}
		if len(bytes.TrimSpace(data)) == 0 {
			return input{}, problem(http.StatusBadRequest, CodeMalformedJSON, "empty body: send a JSON object")
		}
		if !json.Valid(data) {
			return input{}, problem(http.StatusBadRequest, CodeMalformedJSON, "the body is not valid JSON")
		}
		return input{JSON: data}, nil
	case mt == "multipart/form-data":
		return readMultipart(body, params["boundary"], lim)
	case raw && (strings.HasPrefix(mt, "image/") || mt == "application/octet-stream"):
		data, err := io.ReadAll(body)
		if err != nil {
			return input{}, problem(http.StatusBadRequest, CodeInvalidRequest, "read body: "+err.Error())
		}
		if int64(len(data)) > lim.MaxBody {
			return input{}, tooLargeBody(lim)
		}
		if int64(len(data)) > lim.MaxImage {
			return input{}, tooLargeImage(lim, int64(len(data)))
		}
		return input{JSON: []byte("{}"), Images: []upload{{Data: data, ContentType: mt, Name: "body"}}}, nil
	}
	return input{}, problem(http.StatusUnsupportedMediaType, CodeUnsupportedMedia, fmt.Sprintf("content type %q is not accepted: send application/json or multipart/form-data", mt))
}

func tooLargeBody(lim limits) *Problem {
	return problem(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, fmt.Sprintf("the request body exceeds %d bytes", lim.MaxBody))
}

func tooLargeImage(lim limits, n int64) *Problem {
	p := problem(http.StatusRequestEntityTooLarge, CodeImageTooLarge, fmt.Sprintf("an image of %d bytes exceeds the %d allowed", n, lim.MaxImage))
	p.Reason = "too_large"
	return p
}

func readMultipart(body io.Reader, boundary string, lim limits) (input, *Problem) {
	if boundary == "" {
		return input{}, problem(http.StatusBadRequest, CodeInvalidRequest, "multipart/form-data without a boundary")
	}
	mr := multipart.NewReader(body, boundary)
	fields := map[string]json.RawMessage{}
	var (
		in    input
		total int64
	)
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if total > lim.MaxBody {
				return input{}, tooLargeBody(lim)
			}
			return input{}, problem(http.StatusBadRequest, CodeInvalidRequest, "malformed multipart body: "+err.Error())
		}
		data, err := io.ReadAll(io.LimitReader(part, lim.MaxBody+1))
		total += int64(len(data))
		if total > lim.MaxBody {
			return input{}, tooLargeBody(lim)
		}
		if err != nil {
			return input{}, problem(http.StatusBadRequest, CodeInvalidRequest, "malformed multipart body: "+err.Error())
		}
		name := part.FormName()
		if part.FileName() != "" {
			if int64(len(data)) > lim.MaxImage {
				return input{}, tooLargeImage(lim, int64(len(data)))
			}
			ct := part.Header.Get("Content-Type")
			in.Images = append(in.Images, upload{Data: data, ContentType: ct, Name: name})
			continue
		}
		if name == "" {
			continue
		}
		if name == "request" {
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(data, &obj); err != nil {
				return input{}, problem(http.StatusBadRequest, CodeMalformedJSON, "the multipart field request is not a JSON object")
			}
			for k, v := range obj {
				fields[k] = v
			}
			continue
		}
		if json.Valid(data) && !bytes.HasPrefix(bytes.TrimSpace(data), []byte(`"`)) && looksScalar(data) {
			fields[name] = json.RawMessage(data)
		} else {
			b, _ := json.Marshal(string(data))
			fields[name] = b
		}
	}
	in.JSON, _ = json.Marshal(fields)
	return in, nil
}

// looksScalar reports whether a form value is a JSON number, boolean, array
// or object (kept as JSON) rather than text.
func looksScalar(data []byte) bool {
	t := bytes.TrimSpace(data)
	if len(t) == 0 {
		return false
	}
	switch t[0] {
	case '{', '[', 't', 'f', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return true
	}
	return false
}

// decode unmarshals the input's JSON into v, refusing unknown fields.
func (in input) decode(v any) *Problem {
	if len(in.JSON) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(in.JSON))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return problem(http.StatusBadRequest, CodeMalformedJSON, "request body: "+err.Error())
	}
	return nil
}

// decodeImageString decodes an image sent in JSON: a data URL
// (data:image/jpeg;base64,...) or plain standard or URL-safe base64, with
// or without padding. Its decoded size is checked before decoding.
func decodeImageString(s string, lim limits) (upload, *Problem) {
	ct := ""
	if rest, ok := strings.CutPrefix(s, "data:"); ok {
		meta, payload, ok := strings.Cut(rest, ",")
		if !ok {
			return upload{}, problem(http.StatusBadRequest, CodeInvalidRequest, "a data URL without a comma")
		}
		mt, isB64 := strings.CutSuffix(meta, ";base64")
		if !isB64 {
			return upload{}, problem(http.StatusBadRequest, CodeInvalidRequest, "a data URL must be base64 (data:image/jpeg;base64,...)")
		}
		ct, s = mt, payload
	}
	s = strings.TrimSpace(s)
	if s == "" {
		p := problem(http.StatusBadRequest, CodeInvalidImage, "an empty image")
		p.Reason = "empty"
		return upload{}, p
	}
	if n := int64(base64.StdEncoding.DecodedLen(len(s))); n > lim.MaxImage+3 {
		return upload{}, tooLargeImage(lim, n)
	}
	s = strings.TrimRight(s, "=")
	enc := base64.RawStdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.RawURLEncoding
	}
	data, err := enc.DecodeString(s)
	if err != nil {
		return upload{}, problem(http.StatusBadRequest, CodeInvalidRequest, "an image is neither base64 nor a base64 data URL")
	}
	if int64(len(data)) > lim.MaxImage {
		return upload{}, tooLargeImage(lim, int64(len(data)))
	}
	return upload{Data: data, ContentType: ct}, nil
}
