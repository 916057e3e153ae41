package api_test

import (
	"bytes"
	"compress/zlib"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/facestream/facestream/internal/api"
	"github.com/facestream/facestream/internal/cli"
	"github.com/facestream/facestream/internal/resultcache"
	"github.com/facestream/facestream/internal/stages/stagetest"
	fsnats "github.com/facestream/facestream/nats"
	"github.com/facestream/facestream/pkg/events"
)

// TestAPI runs the edge in front of the whole pipeline and exercises every
// endpoint, the security model and the bad-input table.
func TestAPI(t *testing.T) {
	start0 := time.Now()
	e := start(t, api.Config{MaxImageBytes: 8 << 20, MaxBodyBytes: 24 << 20, AnalyzeTimeout: 60 * time.Second, RateLimit: 10_000, InlineMax: 32 << 10,
		CORSOrigins: []string{"https://app.example.com"}})
	ctx := context.Background()

	admin := e.key("acme", 0, "admin")
	writer := e.key("acme", 0, "write")
	reader := e.key("acme", 0, "read")
	other := e.key("globex", 0, "admin")
	revoked := e.key("acme", 0, "admin")
	if _, err := e.deps.DB.Exec(ctx, `UPDATE facestream.api_keys SET revoked_at = now() WHERE prefix = $1`, strings.Split(revoked, "_")[1]); err != nil {
		t.Fatal(err)
	}

	img1, img2 := testImage(t, "deepface/img1.jpg"), testImage(t, "deepface/img2.jpg") // same person (master.csv: Yes)
	img20, img21 := testImage(t, "deepface/img20.jpg"), testImage(t, "deepface/img21.jpg")
	img19, img9 := testImage(t, "deepface/img19.jpg"), testImage(t, "deepface/img9.jpg") // master.csv: No

	t.Run("health, readiness, metrics, openapi", func(t *testing.T) {
		for _, p := range []string{"/healthz", "/readyz", "/openapi.json", "/metrics"} {
			if r := e.do(t, request{method: http.MethodGet, path: p}); r.status != http.StatusOK {
				t.Errorf("GET %s: %d %s", p, r.status, trim(r.body))
			}
		}
	})

	var analyzed api.ImageOut
	t.Run("analyze (multipart) waits for the result", func(t *testing.T) {
		r := e.do(t, multipartReq(t, "/v1/analyze", writer, []filePart{{"image", "img1.jpg", img1}}, nil))
		if r.status != http.StatusOK {
			t.Fatalf("%d %s", r.status, trim(r.body))
		}
		r.decode(t, &analyzed)
		if analyzed.Status != "analyzed" || len(analyzed.Faces) == 0 || analyzed.Faces[0].ID == "" || analyzed.Faces[0].Gender == nil {
			t.Fatalf("analysis %s", trim(r.body))
		}
	})

	if analyzed.ID == "" {
		t.FailNow()
	}

	t.Run("analyze (raw body) and images (data URL) → 202, Location, GET", func(t *testing.T) {
		r := e.do(t, request{method: http.MethodPost, path: "/v1/analyze", key: writer, contentType: "image/jpeg", body: img20})
		if r.status != http.StatusOK {
			t.Fatalf("raw body: %d %s", r.status, trim(r.body))
		}
		r = e.do(t, jsonReq(http.MethodPost, "/v1/images", writer, map[string]any{"image": dataURL(img21)}))
		if r.status != http.StatusAccepted || r.header.Get("Location") == "" {
			t.Fatalf("%d %s", r.status, trim(r.body))
		}
		loc := r.header.Get("Location")
		deadline := time.Now().Add(60 * time.Second)
		for {
			r = e.do(t, request{method: http.MethodGet, path: loc, key: reader})
			var img api.ImageOut
			if r.status == http.StatusOK {
				r.decode(t, &img)
				if img.Status == "analyzed" {
					if img.FaceCount != len(img.Faces) || len(img.Faces) == 0 {
						t.Fatalf("stored image %s", trim(r.body))
					}
					break
				}
				if img.Status != "accepted" {
					t.Fatalf("status %s", trim(r.body))
				}
			} else {
				t.Fatalf("GET %s: %d %s", loc, r.status, trim(r.body))
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not analysed: %d %s", loc, r.status, trim(r.body))
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("auth: no key, wrong key, revoked key → 401; wrong scope → 403", func(t *testing.T) {
		bad := "fs_AAAAAAAAAA_" + strings.Repeat("b", 32)
		for _, c := range []struct {
			name, key string
			req       request
			want      int
		}{
			{"no key", "", request{method: http.MethodGet, path: "/v1/subjects"}, 401},
			{"malformed key", "nonsense", request{method: http.MethodGet, path: "/v1/subjects"}, 401},
			{"unknown key", bad, request{method: http.MethodGet, path: "/v1/subjects"}, 401},
			{"right prefix, wrong secret", admin[:len(admin)-4] + "zzzz", request{method: http.MethodGet, path: "/v1/subjects"}, 401},
			{"revoked key", revoked, request{method: http.MethodGet, path: "/v1/subjects"}, 401},
			{"read key writes", reader, jsonReq(http.MethodPost, "/v1/subjects", "", map[string]any{"name": "x"}), 403},
			{"write key erases", writer, request{method: http.MethodDelete, path: "/v1/images/" + analyzed.ID}, 403},
		} {
			rq := c.req
			rq.key = c.key
			r := e.do(t, rq)
			if r.status != c.want {
				t.Errorf("%s: %d, want %d: %s", c.name, r.status, c.want, trim(r.body))
				continue
			}
			r.problem(t)
		}
	})

	t.Run("another tenant's ids are 404", func(t *testing.T) {
		for _, rq := range []request{
			{method: http.MethodGet, path: "/v1/images/" + analyzed.ID, key: other},
			{method: http.MethodDelete, path: "/v1/images/" + analyzed.ID, key: other},
			jsonReq(http.MethodPost, "/v1/compare", other, map[string]any{"face_ids": []string{analyzed.Faces[0].ID, analyzed.Faces[0].ID}}),
			jsonReq(http.MethodPost, "/v1/search", other, map[string]any{"face_id": analyzed.Faces[0].ID}),
		} {
			r := e.do(t, rq)
			if r.status != http.StatusNotFound {
				t.Errorf("%s %s: %d %s", rq.method, rq.path, r.status, trim(r.body))
				continue
			}
			if p := r.problem(t); strings.Contains(string(r.body), "acme") {
				t.Errorf("404 leaks the other tenant: %+v", p)
			}
		}
		// The image is still there for its owner.
		if r := e.do(t, request{method: http.MethodGet, path: "/v1/images/" + analyzed.ID, key: reader}); r.status != 200 {
			t.Errorf("owner: %d", r.status)
		}
	})

	t.Run("compare: master.csv pairs give the right verdicts", func(t *testing.T) {
		for _, c := range []struct {
			name string
			a, b []byte
			same bool
		}{
			{"img1/img2 (Yes)", img1, img2, true},
			{"img20/img21 (Yes)", img20, img21, true},
			{"img19/img9 (No)", img19, img9, false},
		} {
			r := e.do(t, jsonReq(http.MethodPost, "/v1/compare", writer, map[string]any{"images": []string{b64(c.a), dataURL(c.b)}}))
			if r.status != http.StatusOK {
				t.Fatalf("%s: %d %s", c.name, r.status, trim(r.body))
			}
			var res api.CompareResult
			r.decode(t, &res)
			t.Logf("%s: similarity %.3f (threshold %.2f) → %s", c.name, res.Similarity, res.Threshold, res.Verdict)
			if res.Same != c.same || res.Threshold != 0.46 {
				t.Errorf("%s: %+v", c.name, res)
			}
		}
		// Multipart, and by face ids.
		r := e.do(t, multipartReq(t, "/v1/compare", writer, []filePart{{"images", "a.jpg", img19}, {"images", "b.jpg", img9}}, nil))
		var byUpload api.CompareResult
		if r.status != 200 {
			t.Fatalf("multipart: %d %s", r.status, trim(r.body))
		}
		r.decode(t, &byUpload)
		r = e.do(t, jsonReq(http.MethodPost, "/v1/compare", reader2(writer), map[string]any{"face_ids": []string{byUpload.Faces[0].FaceID, byUpload.Faces[1].FaceID}}))
		var byID api.CompareResult
		r.decode(t, &byID)
		if r.status != 200 || byID.Similarity != byUpload.Similarity || byID.Same {
			t.Errorf("by face ids: %d %+v, by upload %+v", r.status, byID, byUpload)
		}
	})

	t.Run("search by face id and by image, with filters", func(t *testing.T) {
		r := e.do(t, jsonReq(http.MethodPost, "/v1/search", writer, map[string]any{"image": b64(img2), "k": 10}))
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, trim(r.body))
		}
		var res api.SearchResult
		r.decode(t, &res)
		found := false
		for i, h := range res.Hits {
			if h.ImageID == res.Query.ImageID {
				t.Errorf("the query image finds itself")
			}
			if i > 0 && h.Similarity > res.Hits[i-1].Similarity {
				t.Errorf("hits out of order")
			}
			found = found || (h.ImageID == analyzed.ID && h.Similarity >= float64(res.Threshold))
		}
		if !found {
			t.Fatalf("img2 does not find img1 (same person) above the threshold: %s", trim(r.body))
		}
		future := time.Now().Add(time.Hour)
		r = e.do(t, jsonReq(http.MethodPost, "/v1/search", writer, map[string]any{"face_id": analyzed.Faces[0].ID, "k": 5,
			"filters": map[string]any{"from": future.Format(time.RFC3339)}}))
		r.decode(t, &res)
		if r.status != 200 || len(res.Hits) != 0 {
			t.Errorf("time filter: %d %s", r.status, trim(r.body))
		}
		r = e.do(t, jsonReq(http.MethodPost, "/v1/search", writer, map[string]any{"face_id": analyzed.Faces[0].ID, "filters": map[string]any{"source": "/api/v1"}}))
		r.decode(t, &res)
		if r.status != 200 || len(res.Hits) == 0 {
			t.Errorf("source filter: %d %s", r.status, trim(r.body))
		}
	})

	t.Run("search.ef_search reaches the database", func(t *testing.T) {
		// search_faces refuses an ef_search above 1000, so an edge
		// configured with one fails where one with 400 answers.
		for _, tc := range []struct {
			ef   int
			want int
		}{{400, http.StatusOK}, {1001, http.StatusInternalServerError}} {
			h := e.handlerWith(t, func(c *api.Config) { c.EfSearch = tc.ef })
			for _, path := range []string{"/v1/search", "/v1/subjects/identify"} {
				jr := jsonReq(http.MethodPost, path, writer, map[string]any{"face_id": analyzed.Faces[0].ID})
				rec := newRecorder()
				req, _ := http.NewRequest(jr.method, jr.path, bytes.NewReader(jr.body))
				req.Header.Set("Content-Type", jr.contentType)
				req.Header.Set("X-API-Key", writer)
				h.ServeHTTP(rec, req)
				if rec.code != tc.want {
					t.Errorf("%s with ef_search %d: %d %s, want %d", path, tc.ef, rec.code, rec.body.String(), tc.want)
				}
			}
		}
	})

	t.Run("batch: per-image results and the similarity matrix", func(t *testing.T) {
		r := e.do(t, jsonReq(http.MethodPost, "/v1/batch", writer, map[string]any{"images": []string{b64(img1), b64(img2), b64(img19)}}))
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, trim(r.body))
		}
		var res api.BatchResult
		r.decode(t, &res)
		if len(res.Items) != 3 || len(res.Faces) != 3 || len(res.Matrix) != 3 {
			t.Fatalf("batch %s", trim(r.body))
		}
		m := res.Matrix
		if m[0][0] < 0.999 || m[0][1] != m[1][0] || m[0][1] < res.Threshold || m[0][2] >= res.Threshold {
			t.Errorf("matrix %v (threshold %v)", m, res.Threshold)
		}
	})

	t.Run("subjects: create, list, rename, enrol, identify, unknown, erase", func(t *testing.T) {
		r := e.do(t, jsonReq(http.MethodPost, "/v1/subjects", writer, map[string]any{"name": "Angelina", "metadata": map[string]any{"ext": 7}}))
		if r.status != http.StatusCreated {
			t.Fatalf("%d %s", r.status, trim(r.body))
		}
		var sj api.Subject
		r.decode(t, &sj)
		r = e.do(t, jsonReq(http.MethodPatch, "/v1/subjects/"+sj.ID, writer, map[string]any{"name": "Angelina J."}))
		r.decode(t, &sj)
		if r.status != 200 || sj.Name != "Angelina J." {
			t.Fatalf("rename: %d %s", r.status, trim(r.body))
		}
		// Enrol by face id and by uploading an image.
		if r = e.do(t, jsonReq(http.MethodPost, "/v1/subjects/"+sj.ID+"/faces", writer, map[string]any{"face_id": analyzed.Faces[0].ID})); r.status != http.StatusCreated {
			t.Fatalf("enrol face: %d %s", r.status, trim(r.body))
		}
		if r = e.do(t, multipartReq(t, "/v1/subjects/"+sj.ID+"/faces", writer, []filePart{{"image", "img2.jpg", img2}}, nil)); r.status != http.StatusCreated {
			t.Fatalf("enrol image: %d %s", r.status, trim(r.body))
		}
		r = e.do(t, request{method: http.MethodGet, path: "/v1/subjects?name=Angelina%20J.", key: reader})
		var list struct{ Subjects []api.Subject }
		r.decode(t, &list)
		if len(list.Subjects) != 1 || list.Subjects[0].FaceCount != 2 {
			t.Fatalf("list: %s", trim(r.body))
		}
		// Another tenant sees nothing.
		r = e.do(t, request{method: http.MethodGet, path: "/v1/subjects", key: other})
		r.decode(t, &list)
		if len(list.Subjects) != 0 {
			t.Errorf("globex lists acme's subjects: %s", trim(r.body))
		}
		r = e.do(t, request{method: http.MethodGet, path: "/v1/subjects/" + sj.ID, key: reader})
		var got api.Subject
		r.decode(t, &got)
		if r.status != 200 || got.Name != "Angelina J." || got.FaceCount != 2 || !strings.Contains(string(got.Metadata), `"ext"`) {
			t.Errorf("get subject: %d %s", r.status, trim(r.body))
		}
		if r = e.do(t, request{method: http.MethodGet, path: "/v1/subjects/" + sj.ID, key: other}); r.status != 404 {
			t.Errorf("globex reads acme's subject: %d", r.status)
		}
		// Identify: a third photo of her matches; someone else is unknown.
		// master.csv: img1,img4,Yes.
		r = e.do(t, jsonReq(http.MethodPost, "/v1/subjects/identify", writer, map[string]any{"image": b64(testImage(t, "deepface/img4.jpg"))}))
		var id api.IdentifyResult
		r.decode(t, &id)
		if r.status != 200 || id.Result != "match" || id.Subject == nil || id.Subject.SubjectID != sj.ID {
			t.Errorf("identify img4: %d %s", r.status, trim(r.body))
		}
		r = e.do(t, jsonReq(http.MethodPost, "/v1/subjects/identify", writer, map[string]any{"image": b64(img9)}))
		r.decode(t, &id)
		if r.status != 200 || id.Result != "unknown" || id.Subject != nil {
			t.Errorf("identify img9: %d %s", r.status, trim(r.body))
		}
		// Erase the subject: its reference faces go, with an audit row.
		if r = e.do(t, request{method: http.MethodDelete, path: "/v1/subjects/" + sj.ID, key: admin}); r.status != http.StatusNoContent {
			t.Fatalf("erase subject: %d %s", r.status, trim(r.body))
		}
		var n int
		if err := e.db.QueryRow(ctx, `SELECT (SELECT count(*) FROM facestream.subjects) + (SELECT count(*) FROM facestream.faces WHERE subject_id IS NOT NULL)`).Scan(&n); err != nil || n != 0 {
			t.Errorf("after erasing the subject: %d rows, %v", n, err)
		}
		if err := e.db.QueryRow(ctx, `SELECT count(*) FROM facestream.audit_log WHERE action = 'subject.erase' AND target = $1 AND actor LIKE 'api_key:%'`, sj.ID).Scan(&n); err != nil || n != 1 {
			t.Errorf("audit rows of the erasure: %d, %v", n, err)
		}
		if r = e.do(t, request{method: http.MethodGet, path: "/v1/subjects/" + sj.ID, key: reader}); r.status != 404 {
			t.Errorf("erased subject: %d", r.status)
		}
	})

	t.Run("bad inputs get a 4xx with a reason, and the service goes on", func(t *testing.T) {
		big := strings.Repeat("A", 50<<20) // 50 MB of base64
		for _, c := range []struct {
			name   string
			req    request
			status int
			code   string
			reason string
		}{
			{"empty body", request{method: http.MethodPost, path: "/v1/analyze", contentType: "application/json"}, 400, api.CodeMalformedJSON, ""},
			{"empty image", jsonReq(http.MethodPost, "/v1/analyze", "", map[string]any{"image": ""}), 400, api.CodeInvalidImage, "empty"},
			{"truncated JPEG", jsonReq(http.MethodPost, "/v1/analyze", "", map[string]any{"image": b64(img1[:len(img1)/2])}), 422, api.CodeInvalidImage, "truncated"},
			{"a text file named .jpg", multipartReq(t, "/v1/analyze", "", []filePart{{"image", "notes.jpg", []byte("hello, this is not a photo\n")}}, nil), 422, api.CodeInvalidImage, "unsupported_format"},
			{"PNG header claiming 100000×100000", jsonReq(http.MethodPost, "/v1/analyze", "", map[string]any{"image": b64(pngHeader(100_000, 100_000))}), 422, api.CodeInvalidImage, "too_many_pixels"},
			{"decompression bomb", jsonReq(http.MethodPost, "/v1/analyze", "", map[string]any{"image": b64(bombPNG(t, 6000, 6000))}), 422, api.CodeInvalidImage, "decompression_bomb"},
			{"50 MB base64 string", request{method: http.MethodPost, path: "/v1/analyze", contentType: "application/json", body: []byte(`{"image":"` + big + `"}`)}, 413, api.CodeBodyTooLarge, ""},
			{"image above the image limit", jsonReq(http.MethodPost, "/v1/analyze", "", map[string]any{"image": strings.Repeat("A", 12<<20)}), 413, api.CodeImageTooLarge, "too_large"},
			{"malformed JSON", request{method: http.MethodPost, path: "/v1/analyze", contentType: "application/json", body: []byte(`{"image": "abc`)}, 400, api.CodeMalformedJSON, ""},
			{"unknown field", jsonReq(http.MethodPost, "/v1/analyze", "", map[string]any{"imgae": b64(img1)}), 400, api.CodeMalformedJSON, ""},
			{"not base64", jsonReq(http.MethodPost, "/v1/analyze", "", map[string]any{"image": "%%%not base64%%%"}), 400, api.CodeInvalidRequest, ""},
			{"wrong content type", request{method: http.MethodPost, path: "/v1/compare", contentType: "text/plain", body: []byte("img1.jpg img2.jpg")}, 415, api.CodeUnsupportedMedia, ""},
			{"no content type", request{method: http.MethodPost, path: "/v1/analyze", body: img1}, 415, api.CodeUnsupportedMedia, ""},
			{"no face", jsonReq(http.MethodPost, "/v1/analyze", "", map[string]any{"image": b64(grayJPEG(t))}), 422, api.CodeNoFace, "no_face"},
			{"unknown route", request{method: http.MethodGet, path: "/v1/nothing"}, 404, api.CodeNotFound, ""},
		} {
			rq := c.req
			rq.key, rq.invalid = writer, true
			r := e.do(t, rq)
			if r.status != c.status {
				t.Errorf("%s: %d, want %d: %s", c.name, r.status, c.status, trim(r.body))
				continue
			}
			p := r.problem(t)
			if p.Code != c.code || p.Reason != c.reason || p.Detail == "" {
				t.Errorf("%s: problem %+v, want code %s reason %q", c.name, p, c.code, c.reason)
			}
			t.Logf("%-36s → %d %s: %s", c.name, r.status, p.Code, p.Detail)
		}
		if r := e.do(t, multipartReq(t, "/v1/analyze", writer, []filePart{{"image", "img2.jpg", img2}}, nil)); r.status != http.StatusOK {
			t.Fatalf("a good request after the bad ones: %d %s", r.status, trim(r.body))
		}
	})

	t.Run("rate limit: 429 with Retry-After, other keys unaffected", func(t *testing.T) {
		limited := e.key("acme", 3, "read")
		// A burst of 12 concurrent requests at 3 per minute, while another
		// key of the same tenant keeps working.
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			codes   = map[int]int{}
			got429  *response
			otherOK = true
		)
		for range 12 {
			wg.Go(func() {
				r := e.do(t, request{method: http.MethodGet, path: "/v1/subjects", key: limited})
				mu.Lock()
				defer mu.Unlock()
				codes[r.status]++
				if r.status == http.StatusTooManyRequests && got429 == nil {
					got429 = &r
				}
			})
		}
		wg.Go(func() {
			for range 3 {
				if r := e.do(t, request{method: http.MethodGet, path: "/v1/subjects", key: reader}); r.status != 200 {
					otherOK = false
				}
			}
		})
		wg.Wait()
		if codes[200] != 3 || codes[429] != 9 || !otherOK {
			t.Fatalf("burst answers %v (want 3×200, 9×429); the other key answered 200 each time: %v", codes, otherOK)
		}
		if ra, err := strconv.Atoi(got429.header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
			t.Errorf("Retry-After %q", got429.header.Get("Retry-After"))
		}
		if p := got429.problem(t); p.Code != api.CodeRateLimited {
			t.Errorf("problem %+v", p)
		}
		if r := e.do(t, request{method: http.MethodGet, path: "/v1/subjects", key: reader}); r.status != 200 {
			t.Errorf("another key meanwhile: %d", r.status)
		}
	})

	t.Run("embeddings of different models are never compared", func(t *testing.T) {
		r := e.do(t, jsonReq(http.MethodPost, "/v1/analyze", writer, map[string]any{"image": b64(img20)}))
		var a, b api.ImageOut
		r.decode(t, &a)
		r = e.do(t, jsonReq(http.MethodPost, "/v1/analyze", writer, map[string]any{"image": b64(img21)}))
		r.decode(t, &b)
		if len(a.Faces) == 0 || len(b.Faces) == 0 {
			t.Fatal("no faces")
		}
		// Re-embed one face by another (4-dimensional) model.
		if _, err := e.db.Exec(ctx, `SELECT facestream.ensure_embedding_index('aaa_other', 4)`); err != nil {
			t.Fatal(err)
		}
		if _, err := e.db.Exec(ctx, `DELETE FROM facestream.embeddings WHERE face_id = $1::uuid`, a.Faces[0].ID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.db.Exec(ctx, `INSERT INTO facestream.embeddings (face_id, tenant_id, model, dim, embedding) VALUES ($1::uuid, 'acme', 'aaa_other', 4, '[1,0,0,0]')`, a.Faces[0].ID); err != nil {
			t.Fatal(err)
		}
		r = e.do(t, jsonReq(http.MethodPost, "/v1/compare", writer, map[string]any{"face_ids": []string{a.Faces[0].ID, b.Faces[0].ID}}))
		if r.status != http.StatusConflict || r.problem(t).Code != api.CodeModelMismatch {
			t.Errorf("%d %s", r.status, trim(r.body))
		}
	})

	t.Run("CORS for the allowed origin only", func(t *testing.T) {
		r := e.do(t, request{method: http.MethodOptions, path: "/v1/analyze", invalid: true, header: map[string]string{
			"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}})
		if r.status != http.StatusNoContent || r.header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
			!strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "Authorization") {
			t.Errorf("preflight: %d %v", r.status, r.header)
		}
		r = e.do(t, request{method: http.MethodGet, path: "/v1/subjects", key: reader, header: map[string]string{"Origin": "https://evil.example"}})
		if r.header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("CORS allowed for another origin: %v", r.header)
		}
	})

	t.Run("a slow analysis answers 504", func(t *testing.T) {
		h := e.handlerWith(t, func(c *api.Config) { c.AnalyzeTimeout = time.Millisecond })
		rec := newRecorder()
		req, _ := http.NewRequest(http.MethodPost, "/v1/analyze", bytes.NewReader(img9))
		req.Header.Set("Content-Type", "image/jpeg")
		req.Header.Set("X-API-Key", writer)
		h.ServeHTTP(rec, req)
		if rec.code != http.StatusGatewayTimeout || !strings.Contains(rec.body.String(), `"code":"timeout"`) {
			t.Errorf("%d %s", rec.code, rec.body.String())
		}
	})

	t.Run("usage is recorded per key", func(t *testing.T) {
		var reqs, imgs, faces int64
		if err := e.db.QueryRow(ctx, `SELECT coalesce(sum(u.requests),0), coalesce(sum(u.images),0), coalesce(sum(u.faces),0) FROM facestream.usage u
JOIN facestream.api_keys k ON k.id = u.api_key_id WHERE k.prefix = $1`, strings.Split(writer, "_")[1]).Scan(&reqs, &imgs, &faces); err != nil {
			t.Fatal(err)
		}
		if reqs < 10 || imgs < 10 || faces < 10 {
			t.Errorf("usage of the write key: %d requests, %d images, %d faces", reqs, imgs, faces)
		}
	})

	t.Run("erase an image: nothing remains anywhere", func(t *testing.T) {
		// A large image travels by claim check; analyse, then erase.
		r := e.do(t, jsonReq(http.MethodPost, "/v1/analyze", writer, map[string]any{"image": b64(img21), "options": map[string]any{"skip_cache": true}}))
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, trim(r.body))
		}
		var img api.ImageOut
		r.decode(t, &img)
		key := resultcache.Key{Tenant: "acme", SHA256: img.SHA256, Pack: img.ModelPack}
		if _, _, ok, _ := e.cache.Get(ctx, key); !ok {
			t.Fatal("the result is not cached before the erasure")
		}
		if n := streamCount(t, e, img.ID); n == 0 {
			t.Fatal("no stored result before the erasure")
		}
		kv, err := e.nats.JS.KeyValue(ctx, fsnats.BucketCache)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Get(ctx, key.String()); err != nil {
			t.Fatalf("the cache bucket has no entry before the erasure: %v", err)
		}
		if r = e.do(t, request{method: http.MethodDelete, path: "/v1/images/" + img.ID, key: admin}); r.status != http.StatusNoContent {
			t.Fatalf("erase: %d %s", r.status, trim(r.body))
		}
		var n int
		if err := e.db.QueryRow(ctx, `SELECT (SELECT count(*) FROM facestream.images WHERE id = $1::uuid)
 + (SELECT count(*) FROM facestream.faces WHERE image_id = $1::uuid)
 + (SELECT count(*) FROM facestream.embeddings e WHERE NOT EXISTS (SELECT 1 FROM facestream.faces f WHERE f.id = e.face_id))`, img.ID).Scan(&n); err != nil || n != 0 {
			t.Errorf("PostgreSQL keeps %d rows (%v)", n, err)
		}
		if err := e.db.QueryRow(ctx, `SELECT count(*) FROM facestream.audit_log WHERE action = 'image.erase' AND target = $1`, img.ID).Scan(&n); err != nil || n != 1 {
			t.Errorf("audit rows: %d (%v)", n, err)
		}
		obj, err := e.nats.JS.ObjectStore(ctx, fsnats.BucketImages)
		if err != nil {
			t.Fatal(err)
		}
		infos, err := obj.List(ctx)
		if err != nil && err != jetstream.ErrNoObjectsFound {
			t.Fatal(err)
		}
		idSum := sha256.Sum256([]byte(img.ID))
		ingestKey := "ingest/" + hex.EncodeToString(idSum[:16])
		for _, o := range infos {
			if strings.Contains(o.Name, img.ID) || o.Name == ingestKey {
				t.Errorf("object store keeps %s", o.Name)
			}
		}
		if ent, err := kv.Get(ctx, key.String()); err == nil {
			t.Errorf("KV cache keeps the result (%d bytes)", len(ent.Value()))
		}
		if hist, err := kv.History(ctx, key.String()); err == nil {
			for _, h := range hist {
				if len(h.Value()) > 0 {
					t.Errorf("KV history keeps a value at revision %d", h.Revision())
				}
			}
		}
		if e.cache.Len() > 0 {
			if _, tier, ok, _ := e.cache.Get(ctx, resultcache.Key{Tenant: "acme", SHA256: img.SHA256, Pack: img.ModelPack}); ok && tier != resultcache.TierDatabase {
				t.Errorf("the in-process cache still answers from %s", tier)
			}
		}
		if n := streamCount(t, e, img.ID); n != 0 {
			t.Errorf("the results stream keeps %d messages of the image", n)
		}
		if r = e.do(t, request{method: http.MethodGet, path: "/v1/images/" + img.ID, key: reader}); r.status != 404 {
			t.Errorf("GET after erase: %d", r.status)
		}
	})

	t.Run("erase images in flight: none is stored again", func(t *testing.T) {
		eraseInFlight(t, e, writer, admin, reader, img1, img2, img19, img9)
	})

	t.Run("CLI against the server and locally", func(t *testing.T) {
		root := stagetest.Env(t, "FACESTREAM_TESTDATA") + "/deepface/"
		env := map[string]string{"FACESTREAM_SERVER": e.server.URL, "FACESTREAM_API_KEY": writer,
			"FACESTREAM_MODELS": os.Getenv("FACESTREAM_MODELS"), "FACESTREAM_ORT_LIB": os.Getenv("FACESTREAM_ORT_LIB")}
		run := func(env map[string]string, args ...string) string {
			t.Helper()
			var out, errb bytes.Buffer
			cmd := cli.NewRoot(cli.Streams{In: strings.NewReader(""), Out: &out, Err: &errb}, func(k string) string { return env[k] })
			cmd.SetArgs(args)
			if err := cmd.ExecuteContext(ctx); err != nil {
				t.Fatalf("facestream %s: %v\n%s", strings.Join(args, " "), err, errb.String())
			}
			return out.String()
		}
		if out := run(env, "analyze", root+"img1.jpg"); !strings.Contains(out, `"status":"analyzed"`) {
			t.Errorf("analyze --server: %s", trim([]byte(out)))
		}
		if out := run(env, "compare", root+"img1.jpg", root+"img2.jpg"); !strings.Contains(out, `"verdict":"same"`) {
			t.Errorf("compare --server: %s", out)
		}
		if out := run(env, "search", root+"img2.jpg", "--k", "3"); !strings.Contains(out, `"hits":[{`) {
			t.Errorf("search --server: %s", trim([]byte(out)))
		}
		if out := run(env, "subjects", "create", "Via CLI"); !strings.Contains(out, `"name":"Via CLI"`) {
			t.Errorf("subjects create: %s", out)
		}
		if out := run(env, "subjects", "list"); !strings.Contains(out, "Via CLI") {
			t.Errorf("subjects list: %s", out)
		}
		local := map[string]string{"FACESTREAM_MODELS": env["FACESTREAM_MODELS"], "FACESTREAM_ORT_LIB": env["FACESTREAM_ORT_LIB"]}
		if out := run(local, "compare", root+"img19.jpg", root+"img9.jpg"); !strings.Contains(out, `"verdict":"different"`) {
			t.Errorf("compare locally: %s", out)
		}
	})

	t.Run("logs hold no key and no image bytes", func(t *testing.T) {
		e.logMu.Lock()
		logs := e.logs.String()
		e.logMu.Unlock()
		if !strings.Contains(logs, `"route":"POST /v1/analyze"`) {
			t.Fatalf("the edge logged no request: %.500s", logs)
		}
		for _, k := range []string{admin, writer, reader, other, revoked} {
			secret := k[len(k)-32:]
			if strings.Contains(logs, secret) {
				t.Errorf("a key's secret is in the logs")
			}
		}
		for _, b := range [][]byte{img1, img2, img21} {
			enc := base64.StdEncoding.EncodeToString(b)
			if strings.Contains(logs, enc[100:160]) || strings.Contains(logs, string(b[200:260])) {
				t.Errorf("image bytes are in the logs")
			}
		}
	})
	t.Logf("TestAPI took %v", time.Since(start0).Round(time.Millisecond))
}

// reader2 is the key used for a by-id compare: the same tenant.
func reader2(k string) string { return k }

// streamCount counts the results stream's messages of an image.
func streamCount(t *testing.T, e *env, imageID string) int {
	t.Helper()
	stream, err := e.nats.JS.Stream(context.Background(), fsnats.StreamResults)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, typ := range []string{events.TypeImageAnalyzed, events.TypeImageRejected, events.TypeFaceMatched} {
		info, err := stream.Info(context.Background(), jetstream.WithSubjectFilter(events.ResultSubject(typ, imageID)))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range info.State.Subjects {
			n += int(c)
		}
	}
	return n
}

// pngHeader is a PNG signature, an IHDR chunk declaring w×h and IEND: no
// pixel data at all.
func pngHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	writeChunk(&b, "IHDR", func() []byte {
		d := make([]byte, 13)
		binary.BigEndian.PutUint32(d[0:], w)
		binary.BigEndian.PutUint32(d[4:], h)
		d[8], d[9] = 8, 2 // 8-bit RGB
		return d
	}())
	writeChunk(&b, "IEND", nil)
	return b.Bytes()
}

func writeChunk(b *bytes.Buffer, typ string, data []byte) {
	_ = binary.Write(b, binary.BigEndian, uint32(len(data)))
	b.WriteString(typ)
	b.Write(data)
	crc := crc32.NewIEEE()
	crc.Write([]byte(typ))
	crc.Write(data)
	_ = binary.Write(b, binary.BigEndian, crc.Sum32())
}

// bombPNG is a real w×h 1-bit PNG of one colour: a few KB that would
// decode to w×h pixels.
func bombPNG(t *testing.T, w, h uint32) []byte {
	t.Helper()
	var raw bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&raw, zlib.BestCompression)
	row := make([]byte, 1+(w+7)/8)
	for range h {
		if _, err := zw.Write(row); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 1, 0 // 1-bit greyscale
	writeChunk(&b, "IHDR", ihdr)
	writeChunk(&b, "IDAT", raw.Bytes())
	writeChunk(&b, "IEND", nil)
	return b.Bytes()
}

// grayJPEG is a valid 64×64 JPEG of one grey: no face.
func grayJPEG(t *testing.T) []byte {
	t.Helper()
	return grayImage(t)
}
