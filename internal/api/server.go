package api

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"github.com/facestream/facestream/internal/auth"
	"github.com/facestream/facestream/internal/modelpack"
	"github.com/facestream/facestream/internal/resultcache"
	"github.com/facestream/facestream/internal/stages/ingest"
	"github.com/facestream/facestream/pkg/events"
)

//go:embed openapi.json
var openAPIDocument []byte

// OpenAPI returns the OpenAPI 3.0.3 document of the API.
func OpenAPI() []byte { return slices.Clone(openAPIDocument) }

// Config configures the HTTP edge.
type Config struct {
	// MaxImageBytes bounds one image; MaxPixels its width×height.
	MaxImageBytes int64
	MaxPixels     int64
	// MaxBodyBytes bounds a whole request body (a batch holds several images).
	MaxBodyBytes int64
	// InlineMax is the largest image carried inside the image.submitted
	// event; larger ones go to the object store.
	InlineMax int64
	// AnalyzeTimeout bounds the wait for a synchronous analysis (504 after).
	AnalyzeTimeout time.Duration
	// RateLimit is the requests per minute of a key without its own limit.
	RateLimit int
	// CORSOrigins are the browser origins allowed to call the API; "*"
	// allows any. Empty: no CORS headers.
	CORSOrigins []string
	// MaxBatch bounds the images of one POST /v1/batch.
	MaxBatch int
	// EfSearch is hnsw.ef_search for search and identify (100 if 0).
	EfSearch int
	// BacklogHighWater is the percentage of the work stream's per-stage
	// limit that the whole stream may hold before new images are refused
	// with 503 (50 if 0).
	BacklogHighWater int
}

// Deps are what the edge talks to. JS, DB and Blobs are required.
type Deps struct {
	JS    jetstream.JetStream
	DB    *pgxpool.Pool
	Blobs *events.BlobStore
	// Cache is the process's result cache (its in-process tier is purged on
	// erasure); nil: only the key-value bucket is purged.
	Cache *resultcache.Cache
	// Pack is the model pack images are analysed with (its recognizer's
	// name and threshold drive compare, search and identify).
	Pack modelpack.Pack
	// Ready is the readiness check behind /readyz (NATS, PostgreSQL, models).
	Ready func(ctx context.Context) error
	// Gatherer serves /metrics; Registerer gets the edge's metrics.
	Gatherer   prometheus.Gatherer
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Server is the HTTP edge. It is safe for concurrent use.
type Server struct {
	cfg     Config
	d       Deps
	keys    *auth.Store
	pub     *events.Publisher
	log     *slog.Logger
	handler http.Handler
	lim     limits

	recognizer string
	threshold  float32

	mu       sync.Mutex
	limiters map[string]*rate.Limiter
	adm      *admission

	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	usage    *keyUsage
}

// New returns the edge over d.
func New(cfg Config, d Deps) (*Server, error) {
	switch {
	case d.JS == nil || d.DB == nil || d.Blobs == nil:
		return nil, errors.New("new api: JetStream, database and blob store are required")
	}
	if cfg.MaxImageBytes <= 0 {
		cfg.MaxImageBytes = 20 << 20
	}
	if cfg.MaxPixels <= 0 {
		cfg.MaxPixels = 40_000_000
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 4*cfg.MaxImageBytes/3 + 1<<20
	}
	if cfg.InlineMax <= 0 {
		cfg.InlineMax = 768 << 10
	}
	if cfg.AnalyzeTimeout <= 0 {
		cfg.AnalyzeTimeout = 30 * time.Second
	}
	if cfg.RateLimit <= 0 {
		cfg.RateLimit = 600
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 16
	}
	if cfg.EfSearch <= 0 {
		cfg.EfSearch = 100
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Registerer == nil {
		d.Registerer = prometheus.NewRegistry()
	}
	if d.Ready == nil {
		d.Ready = func(context.Context) error { return nil }
	}
	pub, err := events.NewPublisher(d.JS, events.WithSource("/api/v1"))
	if err != nil {
		return nil, fmt.Errorf("new api: %w", err)
	}
	s := &Server{
		cfg: cfg, d: d, keys: auth.NewStore(d.DB), pub: pub, log: d.Logger.With("component", "api"),
		lim:      limits{MaxBody: cfg.MaxBodyBytes, MaxImage: cfg.MaxImageBytes},
		limiters: map[string]*rate.Limiter{},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "facestream_api_requests_total", Help: "HTTP API requests by route and status code."}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "facestream_api_request_duration_seconds", Help: "HTTP API request latency by route.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"route"}),
		usage: newKeyUsage(),
	}
	if m, ok := d.Pack.Model(modelpack.Recognizer); ok {
		s.recognizer, s.threshold = m.Name, m.Threshold
	}
	for _, c := range []prometheus.Collector{s.requests, s.latency, s.usage} {
		if err := d.Registerer.Register(c); err != nil {
			return nil, fmt.Errorf("new api: %w", err)
		}
	}
	if s.adm, err = newAdmission(d.JS, cfg.BacklogHighWater, d.Registerer, s.log); err != nil {
		return nil, fmt.Errorf("new api: %w", err)
	}
	s.handler = s.routes()
	return s, nil
}

// Handler returns the edge's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// route is one endpoint: its pattern, the scope it needs ("" for none:
// no key) and its handler.
type route struct {
	pattern string
	scope   string
	h       func(w http.ResponseWriter, r *http.Request, c *call)
}

// call is the request-scoped state of an authenticated request.
type call struct {
	key    auth.Key
	images int64
	faces  int64
}

func (c *call) tenant() string { return c.key.Tenant }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	rs := []route{
		{"POST /v1/images", auth.ScopeWrite, s.submitImage},
		{"GET /v1/images/{id}", auth.ScopeRead, s.getImage},
		{"DELETE /v1/images/{id}", auth.ScopeAdmin, s.eraseImage},
		{"POST /v1/analyze", auth.ScopeWrite, s.analyze},
		{"POST /v1/compare", auth.ScopeWrite, s.compare},
		{"POST /v1/search", auth.ScopeWrite, s.search},
		{"POST /v1/batch", auth.ScopeWrite, s.batch},
		{"POST /v1/subjects", auth.ScopeWrite, s.createSubject},
		{"GET /v1/subjects", auth.ScopeRead, s.listSubjects},
		{"GET /v1/subjects/{id}", auth.ScopeRead, s.getSubject},
		{"PATCH /v1/subjects/{id}", auth.ScopeWrite, s.renameSubject},
		{"DELETE /v1/subjects/{id}", auth.ScopeAdmin, s.eraseSubject},
		{"POST /v1/subjects/{id}/faces", auth.ScopeWrite, s.enroll},
		{"POST /v1/subjects/identify", auth.ScopeWrite, s.identify},
	}
	for _, rt := range rs {
		mux.Handle(rt.pattern, s.wrap(rt))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		if err := s.d.Ready(ctx); err != nil {
			writeProblem(w, r, problem(http.StatusServiceUnavailable, CodeUnavailable, "not ready: "+err.Error()))
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	if s.d.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.d.Gatherer, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPIDocument)
	})
	return s.cors(s.notFound(mux))
}

// notFound turns the mux's plain-text 404 and 405 into problems.
func (s *Server) notFound(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern == "" {
			rec := &statusProbe{ResponseWriter: w}
			h.ServeHTTP(rec, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// statusProbe replaces the mux's own 404/405 bodies with problems.
type statusProbe struct {
	http.ResponseWriter
	code int
}

func (p *statusProbe) WriteHeader(code int) {
	p.code = code
	switch code {
	case http.StatusNotFound:
		writeProblem(p.ResponseWriter, nil, problem(code, CodeNotFound, "no such endpoint"))
	case http.StatusMethodNotAllowed:
		writeProblem(p.ResponseWriter, nil, problem(code, CodeMethodNotAllowed, "method not allowed here"))
	default:
		p.ResponseWriter.WriteHeader(code)
	}
}

func (p *statusProbe) Write(b []byte) (int, error) {
	if p.code == http.StatusNotFound || p.code == http.StatusMethodNotAllowed {
		return len(b), nil
	}
	return p.ResponseWriter.Write(b)
}

// cors answers preflight requests and sets the CORS headers for allowed
// origins.
func (s *Server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin != "" && s.originAllowed(origin) {
			h := w.Header()
			if slices.Contains(s.cfg.CORSOrigins, "*") {
				h.Set("Access-Control-Allow-Origin", "*")
			} else {
				h.Set("Access-Control-Allow-Origin", origin)
				h.Add("Vary", "Origin")
			}
			h.Set("Access-Control-Expose-Headers", "Location, Retry-After")
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				h.Set("Access-Control-Allow-Methods", "GET, POST, PATCH, DELETE, OPTIONS")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-API-Key")
				h.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) originAllowed(origin string) bool {
	for _, o := range s.cfg.CORSOrigins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

// apiKey reads the key from Authorization: Bearer or X-API-Key.
func apiKey(r *http.Request) string {
	if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(v)
	}
	return strings.TrimSpace(r.Header.Get("X-API-Key"))
}

// respWriter records the status for logs and metrics.
type respWriter struct {
	http.ResponseWriter
	status int
}

func (rw *respWriter) WriteHeader(code int) {
	if rw.status == 0 {
		rw.status = code
	}
	rw.ResponseWriter.WriteHeader(code)
}

func (rw *respWriter) Write(b []byte) (int, error) {
	if rw.status == 0 {
		rw.status = http.StatusOK
	}
	return rw.ResponseWriter.Write(b)
}

// wrap authenticates, authorises, rate-limits, bounds the body, recovers,
// logs (method, route, status, key prefix — never the key or the body),
// counts and records usage.
func (s *Server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := &respWriter{ResponseWriter: w}
		c := &call{}
		defer func() {
			if v := recover(); v != nil {
				s.log.ErrorContext(r.Context(), "handler panic", "route", rt.pattern, "panic", fmt.Sprint(v))
				if rw.status == 0 {
					writeProblem(rw, r, problem(http.StatusInternalServerError, CodeInternal, "internal error"))
				}
			}
			status := rw.status
			if status == 0 {
				status = http.StatusOK
			}
			s.requests.WithLabelValues(rt.pattern, strconv.Itoa(status)).Inc()
			s.latency.WithLabelValues(rt.pattern).Observe(time.Since(start).Seconds())
			s.log.InfoContext(r.Context(), "request", "route", rt.pattern, "status", status,
				"tenant", c.key.Tenant, "key_prefix", c.key.Prefix, "ms", time.Since(start).Milliseconds())
			if c.key.ID != "" {
				s.usage.record(c.key, c.images, c.faces)
				ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
				defer cancel()
				if _, err := s.d.DB.Exec(ctx, `SELECT facestream.record_usage($1, $2, 1, $3, $4)`, c.key.Tenant, c.key.ID, c.images, c.faces); err != nil {
					s.log.WarnContext(ctx, "record usage", "err", err)
				}
			}
		}()
		k, err := s.keys.Verify(r.Context(), apiKey(r))
		if err != nil {
			detail := "send an API key as Authorization: Bearer fs_… or X-API-Key"
			switch {
			case errors.Is(err, auth.ErrInvalidKey):
				detail = "the API key is not valid"
			case errors.Is(err, auth.ErrRevoked):
				detail = "the API key was revoked or has expired"
			case !errors.Is(err, auth.ErrNoKey):
				s.log.ErrorContext(r.Context(), "verify key", "err", err)
				writeProblem(rw, r, problem(http.StatusServiceUnavailable, CodeUnavailable, "cannot check the API key now"))
				return
			}
			rw.Header().Set("WWW-Authenticate", `Bearer realm="facestream"`)
			writeProblem(rw, r, problem(http.StatusUnauthorized, CodeUnauthorized, detail))
			return
		}
		c.key = k
		if !k.Allows(rt.scope) {
			writeProblem(rw, r, problem(http.StatusForbidden, CodeForbidden, fmt.Sprintf("this endpoint needs scope %s; the key has %s", rt.scope, strings.Join(k.Scopes, ", "))))
			return
		}
		if wait, ok := s.allow(k); !ok {
			s.adm.refused.WithLabelValues(refusedRateLimited).Inc()
			p := problem(http.StatusTooManyRequests, CodeRateLimited, fmt.Sprintf("more than %d requests per minute for this key", s.perMinute(k)))
			p.RetryAfter = wait
			writeProblem(rw, r, p)
			return
		}
		_ = s.keys.Touch(r.Context(), k.ID)
		r.Body = http.MaxBytesReader(rw, r.Body, s.cfg.MaxBodyBytes+1)
		rt.h(rw, r, c)
	})
}

func (s *Server) perMinute(k auth.Key) int {
	if k.RateLimit > 0 {
		return k.RateLimit
	}
	return s.cfg.RateLimit
}

// allow takes a token from the key's bucket (refilled at its per-minute
// rate, holding at most a minute's worth); when empty it returns the whole
// seconds until the next token.
func (s *Server) allow(k auth.Key) (int, bool) {
	n := s.perMinute(k)
	s.mu.Lock()
	l, ok := s.limiters[k.ID]
	if !ok || l.Burst() != n {
		l = rate.NewLimiter(rate.Limit(float64(n)/60), n)
		s.limiters[k.ID] = l
	}
	s.mu.Unlock()
	now := time.Now()
	res := l.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return int(math.Ceil(d.Seconds())), false
	}
	return 0, true
}

// ingestLimits are the checks of the ingest stage, applied at the edge so
// that a bad image is refused at once.
func (s *Server) ingestLimits() ingest.Limits {
	l := ingest.DefaultLimits
	l.MaxBytes = s.cfg.MaxImageBytes
	l.MaxPixels = s.cfg.MaxPixels
	return l
}
