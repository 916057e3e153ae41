package api_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/facestream/facestream/internal/api"
	"github.com/facestream/facestream/internal/auth"
)

// usage is one key's counts: requests, images, faces.
type usage struct{ requests, images, faces float64 }

// TestUsageMetricsPerKey makes requests with two API keys in front of the
// running pipeline and checks each key's facestream_api_key_* counters in
// the /metrics exposition: exact values, labelled by the key's id, prefix
// and tenant, never its secret, and equal to what facestream.usage holds.
func TestUsageMetricsPerKey(t *testing.T) {
	e := start(t, api.Config{MaxImageBytes: 8 << 20, MaxBodyBytes: 24 << 20, AnalyzeTimeout: 60 * time.Second, RateLimit: 10_000})
	ctx := context.Background()
	store := auth.NewStore(e.db)
	newKey := func(tenant string, scopes ...string) (string, auth.Key) {
		t.Helper()
		secret, k, err := store.Create(ctx, auth.CreateOptions{Tenant: tenant, Name: "usage " + tenant, Scopes: scopes, Actor: "test"})
		if err != nil {
			t.Fatal(err)
		}
		return secret, k
	}
	secretA, keyA := newKey("acme", auth.ScopeWrite)
	secretB, keyB := newKey("globex", auth.ScopeAdmin)

	analyze := func(secret string, img []byte) int {
		t.Helper()
		r := e.do(t, request{method: http.MethodPost, path: "/v1/analyze", key: secret, contentType: "image/jpeg", body: img})
		if r.status != http.StatusOK {
			t.Fatalf("analyze: %d %s", r.status, trim(r.body))
		}
		var out api.ImageOut
		r.decode(t, &out)
		return out.FaceCount
	}
	var wantA, wantB usage

	// Key A: two analyses, a listing (no image), a bad image (refused at
	// the edge: a request, no image) and an erasure its scope does not
	// allow (403: a request of the key all the same).
	wantA.faces += float64(analyze(secretA, testImage(t, "deepface/img1.jpg")))
	wantA.faces += float64(analyze(secretA, testImage(t, "deepface/img2.jpg")))
	if r := e.do(t, request{method: http.MethodGet, path: "/v1/subjects", key: secretA}); r.status != http.StatusOK {
		t.Fatalf("list subjects: %d %s", r.status, trim(r.body))
	}
	if r := e.do(t, request{method: http.MethodPost, path: "/v1/analyze", key: secretA, contentType: "image/jpeg", body: []byte("not an image"), invalid: true}); r.status < 400 || r.status >= 500 {
		t.Fatalf("bad image: %d %s", r.status, trim(r.body))
	}
	if r := e.do(t, request{method: http.MethodDelete, path: "/v1/images/00000000-0000-4000-8000-000000000000", key: secretA}); r.status != http.StatusForbidden {
		t.Fatalf("erase with a write key: %d %s", r.status, trim(r.body))
	}
	wantA.requests, wantA.images = 5, 2

	// Key B: one analysis, one asynchronous submission (an image; no faces
	// counted, as no answer holds them) and a listing.
	wantB.faces += float64(analyze(secretB, testImage(t, "deepface/img20.jpg")))
	if r := e.do(t, jsonReq(http.MethodPost, "/v1/images", secretB, map[string]any{"image": b64(testImage(t, "deepface/img21.jpg"))})); r.status != http.StatusAccepted {
		t.Fatalf("submit: %d %s", r.status, trim(r.body))
	}
	if r := e.do(t, request{method: http.MethodGet, path: "/v1/subjects", key: secretB}); r.status != http.StatusOK {
		t.Fatalf("list subjects: %d %s", r.status, trim(r.body))
	}
	wantB.requests, wantB.images = 3, 2

	// Requests without a valid key count for no key.
	for _, k := range []string{"", "fs_AAAAAAAAAA_" + strings.Repeat("b", 32)} {
		if r := e.do(t, request{method: http.MethodGet, path: "/v1/subjects", key: k}); r.status != http.StatusUnauthorized {
			t.Fatalf("key %q: %d", k, r.status)
		}
	}
	if wantA.faces == 0 || wantB.faces == 0 {
		t.Fatalf("no face found in the test images (%v, %v): the face counters would prove nothing", wantA.faces, wantB.faces)
	}

	// The counters are added after the answer is written: wait for them.
	var (
		got  map[string]usage
		text string
	)
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, text = scrapeKeyUsage(t, e, map[string]auth.Key{keyA.ID: keyA, keyB.ID: keyB})
		if (got[keyA.ID] == wantA && got[keyB.ID] == wantB) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, c := range []struct {
		name string
		k    auth.Key
		want usage
	}{{"A", keyA, wantA}, {"B", keyB, wantB}} {
		if got[c.k.ID] != c.want {
			t.Errorf("key %s (%s): counters %+v, want %+v", c.name, c.k.Prefix, got[c.k.ID], c.want)
		}
		// The same counts as facestream.usage.
		var db usage
		if err := e.db.QueryRow(ctx, `SELECT coalesce(sum(requests),0)::float8, coalesce(sum(images),0)::float8, coalesce(sum(faces),0)::float8
FROM facestream.usage WHERE api_key_id = $1`, c.k.ID).Scan(&db.requests, &db.images, &db.faces); err != nil {
			t.Fatal(err)
		}
		if db != c.want {
			t.Errorf("key %s: facestream.usage holds %+v, the metrics %+v", c.name, db, got[c.k.ID])
		}
	}
	if len(got) != 2 {
		t.Errorf("per-key series for %d keys, want the 2 that were used: %v", len(got), got)
	}
	for _, secret := range []string{secretA, secretB} {
		if s := strings.Split(secret, "_")[2]; strings.Contains(text, s) {
			t.Errorf("the exposition holds a key's secret")
		}
	}
}

// scrapeKeyUsage reads /metrics and returns the facestream_api_key_*
// counters by key id, checking every series' labels against keys; and the
// exposition's text.
func scrapeKeyUsage(t *testing.T, e *env, keys map[string]auth.Key) (map[string]usage, string) {
	t.Helper()
	r := e.do(t, request{method: http.MethodGet, path: "/metrics"})
	if r.status != http.StatusOK {
		t.Fatalf("GET /metrics: %d", r.status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	out := map[string]usage{}
	for _, name := range []string{"facestream_api_key_requests_total", "facestream_api_key_images_total", "facestream_api_key_faces_total"} {
		f, ok := fams[name]
		if !ok {
			t.Fatalf("%s is not exported", name)
		}
		if f.GetType() != dto.MetricType_COUNTER {
			t.Fatalf("%s is a %v, want a counter", name, f.GetType())
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			k, ok := keys[labels["key_id"]]
			if !ok || len(labels) != 3 || labels["key_prefix"] != k.Prefix || labels["tenant"] != k.Tenant {
				t.Fatalf("%s series %v: want key_id, key_prefix and tenant of a key used", name, labels)
			}
			u := out[k.ID]
			v := m.GetCounter().GetValue()
			switch name {
			case "facestream_api_key_requests_total":
				u.requests = v
			case "facestream_api_key_images_total":
				u.images = v
			default:
				u.faces = v
			}
			out[k.ID] = u
		}
	}
	return out, string(r.body)
}
