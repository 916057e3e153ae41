package api

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/facestream/facestream/internal/auth"
)

// keyLabels label the per-key usage counters: the key's id (the
// facestream.api_keys row, as facestream.usage.api_key_id), its prefix (the
// public part of fs_<prefix>_<secret>, as `facestream keys list` and the
// request log show it) and its tenant. Never the secret.
var keyLabels = []string{"key_id", "key_prefix", "tenant"}

// keyUsage counts each API key's use for Prometheus, as wrap adds it to
// facestream.usage: one request per authenticated request (whatever its
// status), the images it submitted to the pipeline and the faces its
// answers held. One series per key and counter: the cardinality is the
// number of keys used since the process started (docs/observability.md).
// It is a prometheus.Collector and safe for concurrent use.
type keyUsage struct {
	requests, images, faces *prometheus.CounterVec
}

func newKeyUsage() *keyUsage {
	return &keyUsage{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "facestream_api_key_requests_total",
			Help: "Authenticated HTTP API requests per API key (any status), as counted in facestream.usage."}, keyLabels),
		images: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "facestream_api_key_images_total",
			Help: "Images submitted to the pipeline per API key, as counted in facestream.usage."}, keyLabels),
		faces: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "facestream_api_key_faces_total",
			Help: "Faces in the analyses answered per API key, as counted in facestream.usage."}, keyLabels),
	}
}

// record adds one request with its images and faces to k's counters. All
// three series of a key exist from its first request.
func (u *keyUsage) record(k auth.Key, images, faces int64) {
	u.requests.WithLabelValues(k.ID, k.Prefix, k.Tenant).Inc()
	u.images.WithLabelValues(k.ID, k.Prefix, k.Tenant).Add(float64(images))
	u.faces.WithLabelValues(k.ID, k.Prefix, k.Tenant).Add(float64(faces))
}

// Describe implements prometheus.Collector.
func (u *keyUsage) Describe(ch chan<- *prometheus.Desc) {
	u.requests.Describe(ch)
	u.images.Describe(ch)
	u.faces.Describe(ch)
}

// Collect implements prometheus.Collector.
func (u *keyUsage) Collect(ch chan<- prometheus.Metric) {
	u.requests.Collect(ch)
	u.images.Collect(ch)
	u.faces.Collect(ch)
}
