package api

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/facestream/facestream/internal/auth"
)

func TestKeyUsageCountsPerKey(t *testing.T) {
	u := newKeyUsage()
	reg := prometheus.NewRegistry()
	reg.MustRegister(u)
	a := auth.Key{ID: "0b6f0e1e-8d4c-4d59-9d7e-3f1f6c2b9a10", Prefix: "AbCdEfGhIj", Tenant: "acme"}
	b := auth.Key{ID: "5a4e2c1d-7f3b-4e8a-9c6d-2b1a0f9e8d7c", Prefix: "KlMnOpQrSt", Tenant: "globex"}
	u.record(a, 1, 3)
	u.record(a, 0, 0) // a listing: a request, nothing else
	u.record(b, 2, 1)
	want := `
# HELP facestream_api_key_faces_total Faces in the analyses answered per API key, as counted in facestream.usage.
# TYPE facestream_api_key_faces_total counter
facestream_api_key_faces_total{key_id="0b6f0e1e-8d4c-4d59-9d7e-3f1f6c2b9a10",key_prefix="AbCdEfGhIj",tenant="acme"} 3
facestream_api_key_faces_total{key_id="5a4e2c1d-7f3b-4e8a-9c6d-2b1a0f9e8d7c",key_prefix="KlMnOpQrSt",tenant="globex"} 1
# HELP facestream_api_key_images_total Images submitted to the pipeline per API key, as counted in facestream.usage.
# TYPE facestream_api_key_images_total counter
facestream_api_key_images_total{key_id="0b6f0e1e-8d4c-4d59-9d7e-3f1f6c2b9a10",key_prefix="AbCdEfGhIj",tenant="acme"} 1
facestream_api_key_images_total{key_id="5a4e2c1d-7f3b-4e8a-9c6d-2b1a0f9e8d7c",key_prefix="KlMnOpQrSt",tenant="globex"} 2
# HELP facestream_api_key_requests_total Authenticated HTTP API requests per API key (any status), as counted in facestream.usage.
# TYPE facestream_api_key_requests_total counter
facestream_api_key_requests_total{key_id="0b6f0e1e-8d4c-4d59-9d7e-3f1f6c2b9a10",key_prefix="AbCdEfGhIj",tenant="acme"} 2
facestream_api_key_requests_total{key_id="5a4e2c1d-7f3b-4e8a-9c6d-2b1a0f9e8d7c",key_prefix="KlMnOpQrSt",tenant="globex"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
