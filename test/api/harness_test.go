package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"github.com/facestream/facestream/test/pipelinetest"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/facestream/facestream/internal/api"
	"github.com/facestream/facestream/internal/auth"
	"github.com/facestream/facestream/internal/config"
	"github.com/facestream/facestream/internal/natstest"
	"github.com/facestream/facestream/internal/pgtest"
	"github.com/facestream/facestream/internal/resultcache"
	"github.com/facestream/facestream/internal/service"
	"github.com/facestream/facestream/internal/stages/stagetest"
	"github.com/facestream/facestream/pkg/events"
)

// env is one running pipeline with the HTTP edge in front of it.
type env struct {
	t      *testing.T
	nats   *natstest.Server
	db     *pgxpool.Pool
	cache  *resultcache.Cache
	deps   api.Deps
	cfg    api.Config
	server *httptest.Server
	router routers.Router
	logs   *bytes.Buffer // every log line of the edge and the stages
	logMu  *sync.Mutex
}

// lockedWriter serialises writes into the captured log.
type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// start runs every stage and the edge (with cfg) on fresh NATS and
// PostgreSQL.
func start(t *testing.T, cfg api.Config) *env {
	t.Helper()
	ctx := context.Background()
	eng, pack := stagetest.Engine(t)
	srv := natstest.Start(t)
	scfg := config.Default()
	scfg.Stage.Concurrency = 4
	scfg.Embed.BatchMaxWait = 5 * time.Millisecond
	if err := service.Apply(ctx, srv.JS, scfg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	db := pgtest.NewMigrated(t)
	e := &env{t: t, nats: srv, db: db, logs: &bytes.Buffer{}, logMu: &sync.Mutex{}}
	logger := slog.New(slog.NewJSONHandler(lockedWriter{e.logMu, e.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	senv := &service.Env{
		Config: scfg, Logger: logger, Registerer: reg, JS: srv.JS, Blobs: events.NewBlobStore(srv.JS),
		Models: &service.Models{Pack: pack, Engine: eng}, DB: db,
	}
	kv, err := srv.JS.KeyValue(ctx, "facestream-cache")
	if err != nil {
		t.Fatal(err)
	}
	e.cache = resultcache.New(resultcache.Config{KV: kv})
	senv.Cache = e.cache
	pipelinetest.RunStages(t, ctx, senv)
	e.deps = api.Deps{JS: srv.JS, DB: db, Blobs: senv.Blobs, Cache: e.cache, Pack: pack, Gatherer: reg, Registerer: reg, Logger: logger,
		Ready: func(ctx context.Context) error { return db.Ping(ctx) }}
	e.cfg = cfg
	s, err := api.New(cfg, e.deps)
	if err != nil {
		t.Fatal(err)
	}
	e.server = httptest.NewServer(s.Handler())
	t.Cleanup(e.server.Close)

	// Raw image bodies are documented as image/*: validate them as files.
	openapi3filter.RegisterBodyDecoder("image/jpeg", openapi3filter.FileBodyDecoder)
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI())
	if err != nil {
		t.Fatalf("load openapi.json: %v", err)
	}
	if err := doc.Validate(ctx); err != nil {
		t.Fatalf("openapi.json is not valid: %v", err)
	}
	doc.Servers = openapi3.Servers{{URL: e.server.URL}}
	if e.router, err = gorillamux.NewRouter(doc); err != nil {
		t.Fatal(err)
	}
	return e
}

// handlerWith is a second edge over the same pipeline and database, with
// e's configuration changed by change. It registers no metrics: e's edge
// has them.
func (e *env) handlerWith(t *testing.T, change func(*api.Config)) http.Handler {
	t.Helper()
	cfg, deps := e.cfg, e.deps
	change(&cfg)
	deps.Registerer = nil
	s, err := api.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	return s.Handler()
}

// key creates an API key of tenant with scopes.
func (e *env) key(tenant string, rateLimit int, scopes ...string) string {
	e.t.Helper()
	k, _, err := auth.NewStore(e.db).Create(context.Background(), auth.CreateOptions{Tenant: tenant, Name: "test " + strings.Join(scopes, "+"), Scopes: scopes, RateLimit: rateLimit, Actor: "test"})
	if err != nil {
		e.t.Fatal(err)
	}
	return k
}

// request is one HTTP call.
type request struct {
	method, path, key string
	contentType       string
	body              []byte
	header            map[string]string
	// invalid marks a request that is meant to break the contract (bad
	// input): only its response is checked against the OpenAPI document.
	invalid bool
}

// response is what came back.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// problem decodes a problem response and checks its media type.
func (r response) problem(t *testing.T) api.Problem {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("status %d with content type %q, want application/problem+json: %s", r.status, ct, r.body)
	}
	var p api.Problem
	r.decode(t, &p)
	if p.Code == "" || p.Status != r.status || p.Title == "" {
		t.Fatalf("incomplete problem %s", r.body)
	}
	return p
}

// do sends rq and validates request (unless invalid) and response against
// the OpenAPI document.
func (e *env) do(t *testing.T, rq request) response {
	t.Helper()
	ctx := context.Background()
	req, err := http.NewRequestWithContext(ctx, rq.method, e.server.URL+rq.path, bytes.NewReader(rq.body))
	if err != nil {
		t.Fatal(err)
	}
	if rq.contentType != "" {
		req.Header.Set("Content-Type", rq.contentType)
	}
	if rq.key != "" {
		req.Header.Set("Authorization", "Bearer "+rq.key)
	}
	for k, v := range rq.header {
		req.Header.Set(k, v)
	}
	route, params, routeErr := e.router.FindRoute(req)
	var in *openapi3filter.RequestValidationInput
	if routeErr == nil {
		in = &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}}
		if !rq.invalid {
			vreq := req.Clone(ctx)
			vreq.Body = io.NopCloser(bytes.NewReader(rq.body))
			vin := *in
			vin.Request = vreq
			if err := openapi3filter.ValidateRequest(ctx, &vin); err != nil {
				t.Errorf("%s %s: request does not match openapi.json: %v", rq.method, rq.path, err)
			}
		}
	} else if strings.HasPrefix(rq.path, "/v1/") && !rq.invalid {
		t.Errorf("%s %s: no route in openapi.json: %v", rq.method, rq.path, routeErr)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if in != nil {
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
			Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}}
		out.SetBodyBytes(body)
		if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
			t.Errorf("%s %s → %d: response does not match openapi.json: %v\n%s", rq.method, rq.path, resp.StatusCode, err, trim(body))
		}
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

func trim(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "…"
	}
	return string(b)
}

// jsonReq is a JSON request.
func jsonReq(method, path, key string, v any) request {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return request{method: method, path: path, key: key, contentType: "application/json", body: b}
}

// multipartReq uploads files (field name → contents, repeated names in
// order) with extra fields.
func multipartReq(t *testing.T, path, key string, files []filePart, fields map[string]string) request {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		if err := mw.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range files {
		w, err := mw.CreateFormFile(f.field, f.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return request{method: http.MethodPost, path: path, key: key, contentType: mw.FormDataContentType(), body: buf.Bytes()}
}

type filePart struct {
	field, name string
	data        []byte
}

// image reads a test image.
func testImage(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(stagetest.Env(t, "FACESTREAM_TESTDATA"), rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func dataURL(b []byte) string {
	return "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(b)
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
