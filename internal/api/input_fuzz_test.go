package api

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"testing"
)

// FuzzReadInput feeds arbitrary bodies under each accepted content type
// (JSON, multipart, raw) and arbitrary image strings (base64, data URLs) to
// the request parsing: it must never panic, must answer a problem with a
// 4xx status or a result, and must never hand back an image above the limit.
func FuzzReadInput(f *testing.F) {
	f.Add("application/json", []byte(`{"image":"data:image/jpeg;base64,/9j/4AAQ"}`), "data:image/png;base64,iVBORw0KGgo=")
	f.Add("application/json", []byte(`{"images":["/9j/","iVBO"],"options":{"max_faces":2}}`), "/9j/4AAQSkZJRg")
	f.Add("application/json", []byte(`{"image": "abc`), "%%%")
	f.Add("application/json", []byte(``), "")
	f.Add("multipart/form-data; boundary=XyZ", []byte("--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8\xff\xe0\r\n--XyZ\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\n5\r\n--XyZ--\r\n"), "data:image/jpeg,notbase64")
	f.Add("multipart/form-data; boundary=XyZ", []byte("--XyZ\r\nContent-Disposition: form-data; name=\"request\"\r\n\r\n{\"face_id\":\"x\"}\r\n--XyZ--"), "data:;base64,")
	f.Add("multipart/form-data", []byte("--a\r\n\r\n"), "_-_-")
	f.Add("image/jpeg", []byte("\xff\xd8\xff\xdb"), "====")
	f.Add("text/plain", []byte("hello"), "data:image/jpeg;base64,"+base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 300)))
	lim := limits{MaxBody: 4096, MaxImage: 1024}
	f.Fuzz(func(t *testing.T, contentType string, body []byte, image string) {
		r, err := http.NewRequest(http.MethodPost, "/v1/analyze", bytes.NewReader(body))
		if err != nil {
			t.Skip()
		}
		r.Header.Set("Content-Type", contentType)
		in, p := readInput(r, lim, true)
		if p != nil {
			if p.Status < 400 || p.Status > 499 || p.Code == "" {
				t.Fatalf("problem %+v", p)
			}
		} else {
			for _, u := range in.Images {
				if int64(len(u.Data)) > lim.MaxImage {
					t.Fatalf("an image of %d bytes passed a %d limit", len(u.Data), lim.MaxImage)
				}
			}
			var v map[string]any
			_ = in.decode(&v)
		}
		u, p := decodeImageString(image, lim)
		if p != nil {
			if p.Status < 400 || p.Status > 499 {
				t.Fatalf("problem %+v", p)
			}
		} else if int64(len(u.Data)) > lim.MaxImage {
			t.Fatalf("a decoded image of %d bytes passed a %d limit", len(u.Data), lim.MaxImage)
		}
	})
}
