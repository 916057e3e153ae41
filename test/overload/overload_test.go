package overload_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/facestream/facestream/internal/api"
	"github.com/facestream/facestream/internal/auth"
	"github.com/facestream/facestream/internal/config"
	"github.com/facestream/facestream/internal/imaging"
	"github.com/facestream/facestream/internal/natstest"
	"github.com/facestream/facestream/internal/pgtest"
	"github.com/facestream/facestream/internal/resultcache"
	"github.com/facestream/facestream/internal/service"
	"github.com/facestream/facestream/internal/stages/ingest"
	"github.com/facestream/facestream/internal/stages/stagetest"
	fsnats "github.com/facestream/facestream/nats"
	"github.com/facestream/facestream/pkg/events"
	"github.com/facestream/facestream/test/pipelinetest"
)

// Settings of the run. Only the duration comes from the environment.
const (
	// concurrency is stage.concurrency of every stage (as in test/api).
	concurrency = 4
	// window is how many images the closed-loop capacity burst keeps in
	// the pipeline: enough to keep the slowest stage busy.
	window = 24
	// highWater is http.backlog_high_water: a quarter of the per-stage
	// limit (the default is half), so that the smallest limit the
	// configuration allows (100 messages) still makes a mark (25) that a
	// slow machine's backlog reaches early in a 20 s run.
	highWater = 25
	// sampleEvery is the sampling period of memory, stream and consumers.
	sampleEvery = 250 * time.Millisecond
	// syncEvery is the period of the synchronous POST /v1/analyze probes.
	syncEvery = 3 * time.Second
	// inlineMax is limits.inline_payload_max (the default): larger images
	// travel through the object store, a reference in the stream.
	inlineMax = 768 << 10
)

// params are the run's parameters as reported.
type params struct {
	Duration        time.Duration `json:"overload_duration_ns"`
	CapacityWindow  time.Duration `json:"capacity_window_ns"`
	Concurrency     int           `json:"stage_concurrency"`
	ClosedLoop      int           `json:"capacity_window_images"`
	HighWaterPct    int           `json:"backlog_high_water_percent"`
	WorkMaxPerStage int64         `json:"work_max_per_stage"`
	HighWaterMsgs   int64         `json:"high_water_msgs"`
	BacklogSlack    int64         `json:"backlog_slack_msgs"`
	MemoryAllowance int64         `json:"memory_allowance_bytes"`
	NativeAllowance int64         `json:"native_allowance_bytes"`
	Images          int           `json:"distinct_test_pictures"`
	CapacityImages  int           `json:"capacity_phase_images"`
	ReportDir       string        `json:"-"`
}

// sample is one observation of the process and the work stream.
type sample struct {
	At         float64          `json:"t_s"`
	Phase      string           `json:"phase"`
	HeapInuse  uint64           `json:"heap_inuse_bytes"`
	GoHeld     uint64           `json:"go_held_bytes"` // mapped by the Go runtime and not returned to the OS
	RSS        uint64           `json:"rss_bytes"`
	StreamMsgs uint64           `json:"work_stream_msgs"`
	StreamByte uint64           `json:"work_stream_bytes"`
	Pending    map[string]int64 `json:"pending_plus_ack_pending"`
}

// report is the overload report of one run.
type report struct {
	Params            params         `json:"params"`
	CapacityPerSecond float64        `json:"measured_capacity_images_per_s"`
	OfferedPerSecond  float64        `json:"offered_rate_mean_images_per_s"`
	OfferedMax        float64        `json:"offered_rate_max_images_per_s"`
	CompletedPerSec   float64        `json:"completion_rate_during_overload_images_per_s"`
	Submitted         int            `json:"submitted"`
	Accepted          int            `json:"accepted"`
	ByStatus          map[string]int `json:"responses_by_status"`
	Refused503        int            `json:"refused_503"`
	Refused429        int            `json:"refused_429"`
	RetryAfterMin     int            `json:"retry_after_min_s"`
	RetryAfterMax     int            `json:"retry_after_max_s"`
	SyncByStatus      map[string]int `json:"sync_analyze_by_status"`
	Analyzed          int            `json:"analyzed"`
	Rejected          int            `json:"rejected"`
	RejectedBy        map[string]int `json:"rejected_by_reason"`
	DeadLettered      int            `json:"dead_lettered"`
	Duplicated        int            `json:"duplicated"`
	Lost              int            `json:"lost"`
	RefusedStored     int            `json:"refused_but_stored"`
	MaxBacklogMsgs    uint64         `json:"max_work_stream_msgs"`
	MaxBacklogBytes   uint64         `json:"max_work_stream_bytes"`
	MaxConsumerLag    int64          `json:"max_pending_plus_ack_pending_of_a_consumer"`
	MaxInFlight       int64          `json:"max_http_requests_in_flight"`
	BaseHeap          uint64         `json:"heap_at_capacity_bytes"`
	BaseRSS           uint64         `json:"rss_at_capacity_bytes"`
	MaxHeap           uint64         `json:"max_heap_inuse_bytes"`
	MaxRSS            uint64         `json:"max_rss_bytes"`
	BaseNative        uint64         `json:"native_at_capacity_bytes"`
	MaxNative         uint64         `json:"max_native_bytes"`
	DrainSeconds      float64        `json:"drain_s"`
	Seconds           float64        `json:"total_s"`
	Samples           []sample       `json:"samples"`
}

// TestOverload is the overload run described in the package comment.
func TestOverload(t *testing.T) {
	p := params{Duration: 20 * time.Second, Concurrency: concurrency, ClosedLoop: window, HighWaterPct: highWater,
		ReportDir: os.Getenv("FACESTREAM_OVERLOAD_REPORT")}
	if v := os.Getenv("FACESTREAM_OVERLOAD_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("FACESTREAM_OVERLOAD_DURATION=%q: want a positive duration such as 2m", v)
		}
		p.Duration = d
	}
	p.CapacityWindow = min(max(10*time.Second, p.Duration/4), 30*time.Second)
	pictures := jpegs(t)
	p.Images = len(pictures)
	started := time.Now()
	h := start(t)
	ctx := context.Background()

	var (
		mu      sync.Mutex
		samples []sample
		phase   = "capacity"
	)
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(sampleEvery)
		defer tick.Stop()
		for {
			s := h.sample(ctx)
			mu.Lock()
			s.At, s.Phase = time.Since(started).Seconds(), phase
			samples = append(samples, s)
			mu.Unlock()
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
		}
	}()
	setPhase := func(ph string) { mu.Lock(); phase = ph; mu.Unlock() }

	// 1. Capacity: a closed loop of `window` images through POST /v1/images.
	var seq atomic.Int64
	next := func() []byte {
		n := seq.Add(1)
		return variant(t, pictures[int(n)%len(pictures)], n)
	}
	capacity, capAccepted := h.capacity(t, p.CapacityWindow, next)
	if capacity <= 0 {
		t.Fatal("no image completed during the capacity window")
	}
	h.waitDone(t, capAccepted, 3*time.Minute)
	p.CapacityImages = len(capAccepted)
	mu.Lock()
	var baseHeap, baseRSS, baseNative uint64
	for _, s := range samples {
		baseHeap, baseRSS, baseNative = max(baseHeap, s.HeapInuse), max(baseRSS, s.RSS), max(baseNative, s.native())
	}
	mu.Unlock()

	// 2. The bound: the edge stops admitting when the work stream holds
	// highWater % of its per-stage limit, sized so that the backlog reaches
	// it within the first quarter of the run (at least 25 messages: more
	// than the slowest stage's working set, so the pipeline still runs at
	// capacity).
	hw := max(int64(25), int64(math.Ceil(capacity*p.Duration.Seconds()/4)))
	p.WorkMaxPerStage = hw * 100 / highWater
	p.HighWaterMsgs = p.WorkMaxPerStage * highWater / 100
	h.scfg.NATS.WorkMaxPerStage = int(p.WorkMaxPerStage)
	if err := h.scfg.Validate(); err != nil {
		t.Fatalf("overload settings: %v", err)
	}
	if err := service.Apply(ctx, h.nats.JS, h.scfg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("apply the work stream's bounds: %v", err)
	}

	// 3. Overload: open loop at twice the capacity, and a synchronous
	// analysis every syncEvery.
	setPhase("overload")
	ol := h.overload(t, p.Duration, capacity, next)
	setPhase("drain")
	drainStart := time.Now()
	accepted := slices.Concat(capAccepted, ol.accepted)
	h.waitDone(t, accepted, 2*time.Minute+time.Duration(3*float64(p.HighWaterMsgs)/capacity*float64(time.Second)))
	ol.syncWG.Wait()
	h.waitIdle(t, 2*time.Minute)
	drain := time.Since(drainStart)
	close(stopSampling)
	<-sampled

	// 4. Outcomes: PostgreSQL, the results stream, the dead letters.
	r := report{Params: p, CapacityPerSecond: capacity, OfferedPerSecond: ol.offeredMean, OfferedMax: ol.offeredMax,
		CompletedPerSec: ol.completedRate, Submitted: ol.submitted, Accepted: len(ol.accepted),
		ByStatus: ol.byStatus, Refused503: ol.byStatus["503"], Refused429: ol.byStatus["429"],
		RetryAfterMin: ol.retryAfterMin, RetryAfterMax: ol.retryAfterMax, SyncByStatus: ol.syncByStatus,
		RejectedBy: map[string]int{}, MaxInFlight: ol.maxInFlight, BaseHeap: baseHeap, BaseRSS: baseRSS, BaseNative: baseNative,
		DrainSeconds: drain.Seconds(), Samples: samples}
	outcomes := pipelinetest.Outcomes(t, ctx, h.db)
	for _, id := range accepted {
		o, ok := outcomes[id]
		switch {
		case !ok:
			r.Lost++
		case o.Status == "analyzed":
			r.Analyzed++
		case o.Status == "rejected" && o.Reason != "":
			r.Rejected++
			r.RejectedBy[o.Reason]++
		default:
			t.Errorf("image %s: status %q reason %q", id, o.Status, o.Reason)
		}
	}
	// Every stored row is an accepted image: those of POST /v1/images by
	// id, and the synchronous analyses that were taken on (200, 422 no_face
	// or 504, by count). A refused image must leave none.
	rows := pipelinetest.Count(t, ctx, h.db, `SELECT count(*) FROM facestream.images`)
	r.RefusedStored = rows - len(accepted) - ol.syncTaken
	if n := pipelinetest.Count(t, ctx, h.db, `SELECT count(*) FROM facestream.images WHERE status = 'accepted'`); n != 0 {
		t.Errorf("%d images still only accepted after the drain", n)
	}
	finals := results(t, ctx, h.nats.JS)
	for id, n := range finals {
		if n > 1 {
			r.Duplicated++
			t.Errorf("image %s: %d final result events", id, n)
		}
	}
	for _, id := range accepted {
		if finals[id] == 0 {
			t.Errorf("image %s: no final result event", id)
		}
	}
	r.DeadLettered = int(streamMsgs(t, ctx, h.nats.JS, fsnats.StreamDLQ))
	for _, s := range samples {
		if s.Phase == "capacity" {
			continue
		}
		r.MaxBacklogMsgs, r.MaxBacklogBytes = max(r.MaxBacklogMsgs, s.StreamMsgs), max(r.MaxBacklogBytes, s.StreamByte)
		r.MaxHeap, r.MaxRSS, r.MaxNative = max(r.MaxHeap, s.HeapInuse), max(r.MaxRSS, s.RSS), max(r.MaxNative, s.native())
		for _, n := range s.Pending {
			r.MaxConsumerLag = max(r.MaxConsumerLag, n)
		}
	}

	// The slack over the high-water mark: each stage stores an output
	// before it acks the input (one extra message per handler at most),
	// and a request admitted just before a read of the stream but published
	// after it is missing from the next estimate (at most the requests in
	// flight).
	p.BacklogSlack = int64(5*concurrency) + ol.maxInFlight
	// The memory bound: the most the process used at capacity, plus what
	// overload may add on top — the backlog above what the pipeline held
	// at capacity (at most the high-water bytes, which the embedded NATS
	// server may cache whole) and the bodies of the requests in flight
	// (read whole, then copied into the event), each twice for the garbage
	// collector's headroom (GOGC=100), plus 64 MiB. Resident memory may
	// also grow by native memory (ONNX Runtime's and OpenCV's buffers, the
	// C allocator's arenas), which keeps the high-water mark of what the
	// stages handled at once: up to four full-size decoded copies of the
	// largest picture per detect handler. That is bounded by the stages'
	// concurrency, not by the backlog or the offered rate.
	maxBytes, maxPixels := largest(t, pictures)
	p.MemoryAllowance = 2*p.HighWaterMsgs*inlineMax + 2*ol.maxInFlight*3*maxBytes + 64<<20
	p.NativeAllowance = concurrency * 4 * 3 * maxPixels
	r.Params = p
	r.Seconds = time.Since(started).Seconds()
	writeReport(t, p.ReportDir, r)

	// 5. The promises.
	if r.Refused503 == 0 {
		t.Errorf("no submission was refused with 503 at %.1f images/s offered (capacity %.2f/s, high water %d messages): the edge took everything",
			r.OfferedPerSecond, capacity, p.HighWaterMsgs)
	}
	for status, n := range r.ByStatus {
		if status != "202" && status != "503" && status != "429" {
			t.Errorf("POST /v1/images answered %s %d times (want only 202, 503 or 429)", status, n)
		}
	}
	for status, n := range r.SyncByStatus {
		if !slices.Contains([]string{"200", "422", "503", "504"}, status) {
			t.Errorf("POST /v1/analyze answered %s %d times (want 200, 422 no_face, 503 or 504)", status, n)
		}
	}
	for _, e := range ol.errors {
		t.Error(e)
	}
	if r.MaxBacklogMsgs > uint64(p.HighWaterMsgs+p.BacklogSlack) {
		t.Errorf("the work stream held %d messages, above the high-water mark %d + slack %d", r.MaxBacklogMsgs, p.HighWaterMsgs, p.BacklogSlack)
	}
	if r.MaxConsumerLag >= p.WorkMaxPerStage {
		t.Errorf("a stage's queue filled up (%d messages, limit %d): the edge let too much in", r.MaxConsumerLag, p.WorkMaxPerStage)
	}
	if r.MaxHeap > baseHeap+uint64(p.MemoryAllowance) {
		t.Errorf("heap in use reached %s, above %s at capacity + %s", mib(r.MaxHeap), mib(baseHeap), mib(uint64(p.MemoryAllowance)))
	}
	if r.MaxRSS > baseRSS+uint64(p.MemoryAllowance+p.NativeAllowance) {
		t.Errorf("resident memory reached %s, above %s at capacity + %s + native %s", mib(r.MaxRSS), mib(baseRSS), mib(uint64(p.MemoryAllowance)), mib(uint64(p.NativeAllowance)))
	}
	if r.Lost != 0 || r.Duplicated != 0 || r.DeadLettered != 0 || r.RefusedStored != 0 {
		t.Errorf("lost %d, duplicated %d, dead-lettered %d, refused but stored %d: want 0 each", r.Lost, r.Duplicated, r.DeadLettered, r.RefusedStored)
	}
	if r.Analyzed+r.Rejected != len(accepted) {
		t.Errorf("analyzed %d + rejected %d != accepted %d", r.Analyzed, r.Rejected, len(accepted))
	}
	if full := h.refused(t, "stream_full"); full != 0 {
		t.Errorf("%v publishes refused because the work stream was full: the headroom above the high-water mark is too small", full)
	}
}

// harness is the pipeline and the edge.
type harness struct {
	nats   *natstest.Server
	db     *pgxpool.Pool
	scfg   config.Config
	reg    *prometheus.Registry
	edge   *httptest.Server
	client *http.Client
	key    string

	mu   sync.Mutex
	done map[string]time.Time // image id → when its final result was seen
	wake chan struct{}        // a result was seen
}

// start runs every stage and the edge on fresh NATS (file store) and
// PostgreSQL, and follows the results.
func start(t *testing.T) *harness {
	t.Helper()
	ctx := context.Background()
	eng, pack := stagetest.Engine(t)
	srv := natstest.Start(t)
	scfg := config.Default()
	scfg.Stage.Concurrency = concurrency
	scfg.Embed.BatchMaxWait = 5 * time.Millisecond
	scfg.HTTP.BacklogHighWater = highWater
	if err := service.Apply(ctx, srv.JS, scfg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	db := pgtest.NewMigrated(t)
	h := &harness{nats: srv, db: db, scfg: scfg, reg: prometheus.NewRegistry(), done: map[string]time.Time{}, wake: make(chan struct{}, 1)}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	kv, err := srv.JS.KeyValue(ctx, fsnats.BucketCache)
	if err != nil {
		t.Fatal(err)
	}
	senv := &service.Env{Config: scfg, Logger: logger, Registerer: h.reg, JS: srv.JS, Blobs: events.NewBlobStore(srv.JS),
		Models: &service.Models{Pack: pack, Engine: eng}, DB: db, Cache: resultcache.New(resultcache.Config{KV: kv})}

	sub, err := srv.Conn.Subscribe("facestream.image.*.>", func(m *nats.Msg) {
		typ := m.Header.Get("ce-type")
		if typ != events.TypeImageAnalyzed && typ != events.TypeImageRejected {
			return
		}
		id := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
		h.mu.Lock()
		if _, ok := h.done[id]; !ok {
			h.done[id] = time.Now()
		}
		h.mu.Unlock()
		select {
		case h.wake <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	pipelinetest.RunStages(t, ctx, senv)

	edge, err := api.New(service.APIConfig(scfg), api.Deps{JS: srv.JS, DB: db, Blobs: senv.Blobs, Cache: senv.Cache, Pack: pack,
		Registerer: h.reg, Gatherer: h.reg, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	h.edge = httptest.NewServer(edge.Handler())
	t.Cleanup(h.edge.Close)
	h.client = &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	t.Cleanup(h.client.CloseIdleConnections)
	// The key's own limit is far above the offered rate: the refusals
	// measured are the pipeline's, not the per-key rate limit's.
	h.key, _, err = auth.NewStore(db).Create(ctx, auth.CreateOptions{Tenant: "overload", Name: "overload test",
		Scopes: []string{auth.ScopeWrite}, RateLimit: 1_000_000})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// answer is what the edge said to one submission.
type answer struct {
	status     int
	id         string
	code       string
	retryAfter string
	err        error
}

// post sends one image to path as image/jpeg.
func (h *harness) post(path string, img []byte) answer {
	req, err := http.NewRequest(http.MethodPost, h.edge.URL+path, bytes.NewReader(img))
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Content-Type", "image/jpeg")
	req.Header.Set("Authorization", "Bearer "+h.key)
	resp, err := h.client.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{err: err}
	}
	a := answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	var v struct {
		ID   string `json:"id"`
		Code string `json:"code"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		a.err = fmt.Errorf("%d: body %.200q: %w", resp.StatusCode, body, err)
	}
	a.id, a.code = v.ID, v.Code
	return a
}

func (h *harness) completed() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.done)
}

// completedSince counts the results seen after t.
func (h *harness) completedSince(t time.Time) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, at := range h.done {
		if at.After(t) {
			n++
		}
	}
	return n
}

// capacity runs the closed loop for d after a warm-up and returns the
// images completed per second in d, and the ids accepted.
func (h *harness) capacity(t *testing.T, d time.Duration, next func() []byte) (float64, []string) {
	t.Helper()
	var accepted []string
	inFlight := map[string]bool{}
	warm, measureFrom, measured := 0, time.Time{}, 0
	base := h.completed()
	deadline := time.Now().Add(d + 3*time.Minute)
	for {
		h.mu.Lock()
		for id := range inFlight {
			if _, ok := h.done[id]; ok {
				delete(inFlight, id)
			}
		}
		h.mu.Unlock()
		if measureFrom.IsZero() && h.completed()-base >= window/2 {
			warm, measureFrom = h.completed(), time.Now()
		}
		if !measureFrom.IsZero() && time.Since(measureFrom) >= d {
			measured = h.completed() - warm
			return float64(measured) / time.Since(measureFrom).Seconds(), accepted
		}
		if time.Now().After(deadline) {
			t.Fatalf("capacity: the pipeline completed %d images in %v", h.completed()-base, d+3*time.Minute)
		}
		if len(inFlight) < window {
			a := h.post("/v1/images", next())
			if a.err != nil || a.status != http.StatusAccepted {
				t.Fatalf("capacity: POST /v1/images: %d %v", a.status, a.err)
			}
			accepted = append(accepted, a.id)
			inFlight[a.id] = true
			continue
		}
		select {
		case <-h.wake:
		case <-time.After(time.Second):
		}
	}
}

// overloadRun is what the open loop saw.
type overloadRun struct {
	accepted                []string
	submitted               int
	byStatus, syncByStatus  map[string]int
	retryAfterMin           int
	retryAfterMax           int
	syncTaken               int
	errors                  []string
	offeredMean, offeredMax float64
	completedRate           float64
	maxInFlight             int64
	syncWG                  sync.WaitGroup
	mu                      sync.Mutex
}

// overload submits open-loop for d at twice max(capacity, the completion
// rate of the last 5 s), one POST /v1/images every 1/rate seconds in its own
// goroutine, plus a POST /v1/analyze every syncEvery. It returns once
// every asynchronous submission is answered (the synchronous ones may still
// wait: syncWG).
func (h *harness) overload(t *testing.T, d time.Duration, capacity float64, next func() []byte) *overloadRun {
	t.Helper()
	r := &overloadRun{byStatus: map[string]int{}, syncByStatus: map[string]int{}, retryAfterMin: math.MaxInt}
	var wg sync.WaitGroup
	var inFlight atomic.Int64
	track := func() func() {
		n := inFlight.Add(1)
		r.mu.Lock()
		r.maxInFlight = max(r.maxInFlight, n)
		r.mu.Unlock()
		return func() { inFlight.Add(-1) }
	}
	fail := func(format string, args ...any) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.errors) < 20 {
			r.errors = append(r.errors, fmt.Sprintf(format, args...))
		}
	}
	// checkRefusal: a 503 or 429 must carry Retry-After (whole seconds, at
	// least 1) and its problem code.
	checkRefusal := func(path string, a answer) {
		want := map[int]string{http.StatusServiceUnavailable: api.CodeOverloaded, http.StatusTooManyRequests: api.CodeRateLimited}[a.status]
		secs, err := strconv.Atoi(a.retryAfter)
		if err != nil || secs < 1 || a.code != want {
			fail("POST %s → %d code %q with Retry-After %q: want code %s and Retry-After ≥ 1", path, a.status, a.code, a.retryAfter, want)
			return
		}
		r.mu.Lock()
		r.retryAfterMin, r.retryAfterMax = min(r.retryAfterMin, secs), max(r.retryAfterMax, secs)
		r.mu.Unlock()
	}

	start := time.Now()
	rate := 2 * capacity
	var offered []float64
	nextAt, nextRate, nextSync := start, start.Add(time.Second), start
	completedAtStart := h.completed()
	for time.Since(start) < d {
		now := time.Now()
		if !now.Before(nextRate) {
			recent := float64(h.completedSince(now.Add(-5*time.Second))) / 5
			rate = 2 * max(capacity, recent)
			offered = append(offered, rate)
			nextRate = nextRate.Add(time.Second)
		}
		if !now.Before(nextSync) {
			img := next()
			done := track()
			r.syncWG.Go(func() {
				defer done()
				a := h.post("/v1/analyze", img)
				r.mu.Lock()
				r.syncByStatus[strconv.Itoa(a.status)]++
				r.mu.Unlock()
				switch {
				case a.err != nil && a.status == 0:
					fail("POST /v1/analyze: %v", a.err)
				case a.status == http.StatusServiceUnavailable, a.status == http.StatusTooManyRequests:
					checkRefusal("/v1/analyze", a)
				case a.status == http.StatusOK, a.status == http.StatusGatewayTimeout,
					a.status == http.StatusUnprocessableEntity && a.code == api.CodeNoFace:
					r.mu.Lock()
					r.syncTaken++
					r.mu.Unlock()
				default:
					fail("POST /v1/analyze → %d code %q", a.status, a.code)
				}
			})
			nextSync = nextSync.Add(syncEvery)
		}
		if wait := time.Until(nextAt); wait > 0 {
			time.Sleep(min(wait, time.Until(nextRate), time.Until(nextSync)))
			continue
		}
		img := next()
		r.submitted++
		done := track()
		wg.Go(func() {
			defer done()
			a := h.post("/v1/images", img)
			r.mu.Lock()
			r.byStatus[strconv.Itoa(a.status)]++
			if a.status == http.StatusAccepted && a.id != "" {
				r.accepted = append(r.accepted, a.id)
			}
			r.mu.Unlock()
			switch {
			case a.err != nil && a.status == 0:
				fail("POST /v1/images: %v", a.err)
			case a.status == http.StatusServiceUnavailable, a.status == http.StatusTooManyRequests:
				checkRefusal("/v1/images", a)
			case a.status == http.StatusAccepted && a.id == "":
				fail("POST /v1/images → 202 without an id: %v", a.err)
			}
		})
		nextAt = nextAt.Add(time.Duration(float64(time.Second) / rate))
	}
	elapsed := time.Since(start)
	wg.Wait()
	r.completedRate = float64(h.completed()-completedAtStart) / elapsed.Seconds()
	r.offeredMean = float64(r.submitted) / elapsed.Seconds()
	for _, o := range offered {
		r.offeredMax = max(r.offeredMax, o)
	}
	if r.retryAfterMin == math.MaxInt {
		r.retryAfterMin = 0
	}
	return r
}

// waitDone waits until every id has its final result (seen on the results
// subjects) and a stored outcome.
func (h *harness) waitDone(t *testing.T, ids []string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		h.mu.Lock()
		missing := 0
		for _, id := range ids {
			if _, ok := h.done[id]; !ok {
				missing++
			}
		}
		h.mu.Unlock()
		if missing == 0 {
			stored := pipelinetest.Outcomes(t, context.Background(), h.db)
			for _, id := range ids {
				if _, ok := stored[id]; !ok {
					missing++
				}
			}
			if missing == 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Logf("%d of %d accepted images have no outcome after %v", missing, len(ids), timeout)
			return // counted as lost
		}
		select {
		case <-h.wake:
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// waitIdle waits until every stage has acked everything and the recorder
// has stored every rejection.
func (h *harness) waitIdle(t *testing.T, timeout time.Duration) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	for {
		work := streamMsgs(t, ctx, h.nats.JS, fsnats.StreamWork)
		c, err := h.nats.JS.Consumer(ctx, fsnats.StreamResults, "recorder")
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		recording := info.NumPending + uint64(info.NumAckPending)
		if work == 0 && recording == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%v after the last outcome the work stream still holds %d messages and the recorder %d", timeout, work, recording)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// sample reads the process's memory, the work stream and the consumers.
func (h *harness) sample(ctx context.Context) sample {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := sample{HeapInuse: ms.HeapInuse, GoHeld: ms.Sys - ms.HeapReleased, RSS: rss(), Pending: map[string]int64{}}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if st, err := h.nats.JS.Stream(ctx, fsnats.StreamWork); err == nil {
		if info, err := st.Info(ctx); err == nil {
			s.StreamMsgs, s.StreamByte = info.State.Msgs, info.State.Bytes
		}
	}
	for _, name := range []string{fsnats.ConsumerIngest, fsnats.ConsumerDetect, fsnats.ConsumerEmbed, fsnats.ConsumerAttrs, fsnats.ConsumerAggregate} {
		c, err := h.nats.JS.Consumer(ctx, fsnats.StreamWork, name)
		if err != nil {
			continue
		}
		if info, err := c.Info(ctx); err == nil {
			s.Pending[name] = int64(info.NumPending) + int64(info.NumAckPending)
		}
	}
	return s
}

// refused reads facestream_api_refused_total{reason}.
func (h *harness) refused(t *testing.T, reason string) float64 {
	t.Helper()
	fams, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "facestream_api_refused_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("facestream_api_refused_total{reason=%q} is not exported", reason)
	return 0
}

// rss is VmRSS of /proc/self/status in bytes.
func rss() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// streamMsgs is the number of messages a stream holds.
func streamMsgs(t *testing.T, ctx context.Context, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// results counts the final result events (image.analyzed, image.rejected)
// per image id in the results stream.
func results(t *testing.T, ctx context.Context, js jetstream.JetStream) map[string]int {
	t.Helper()
	s, err := js.Stream(ctx, fsnats.StreamResults)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("results seq %d: %v", seq, err)
		}
		ev, err := events.Decode(&nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
		if err != nil {
			t.Errorf("results seq %d does not decode: %v", seq, err)
			continue
		}
		if typ := ev.CloudEvent.Type(); typ == events.TypeImageAnalyzed || typ == events.TypeImageRejected {
			out[ev.ImageID()]++
		}
	}
	return out
}

// jpegs reads the JPEG test images.
func jpegs(t *testing.T) [][]byte {
	t.Helper()
	var out [][]byte
	for _, p := range pipelinetest.Images(t) {
		switch strings.ToLower(filepath.Ext(p)) {
		case ".jpg", ".jpeg":
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.HasPrefix(b, []byte{0xFF, 0xD8, 0xFF}) { // a few are other formats under a .jpg name
				out = append(out, b)
			}
		}
	}
	if len(out) < 50 {
		t.Fatalf("only %d JPEG test images", len(out))
	}
	return out
}

// largest returns the size of the largest file and the pixels of the
// largest picture.
func largest(t *testing.T, images [][]byte) (size, pixels int64) {
	t.Helper()
	for _, b := range images {
		h, err := ingest.Validate(b, ingest.DefaultLimits)
		if err != nil {
			t.Fatalf("test picture: %v", err)
		}
		size, pixels = max(size, int64(len(b))), max(pixels, int64(h.Width)*int64(h.Height))
	}
	return size, pixels
}

// native is the resident memory the Go runtime does not account for.
func (s sample) native() uint64 { return s.RSS - min(s.RSS, s.GoHeld) }

// variant returns img with other bytes (another sha256) that decode to the
// same picture: submission n's imaging.Variant.
func variant(t *testing.T, img []byte, n int64) []byte {
	t.Helper()
	v, err := imaging.Variant(img, "overload submission "+strconv.FormatInt(n, 10))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mib(n uint64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }

// writeReport writes overload.json and overload.md into dir (a temp dir
// when empty) and logs the Markdown.
func writeReport(t *testing.T, dir string, r report) {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	p := r.Params
	var md bytes.Buffer
	fmt.Fprintf(&md, "# facestream overload report\n\n")
	fmt.Fprintf(&md, "`%s`: the in-process pipeline (every stage, concurrency %d, real models, in-process NATS with a file store, PostgreSQL) behind the HTTP edge. "+
		"Capacity measured with a closed loop of %d images for %v; then open-loop POST /v1/images at twice the capacity (or twice the last 5 s's completion rate when higher) for %v, "+
		"and a synchronous POST /v1/analyze every %v. Every submission a distinct image (%d test JPEGs, each with its own comment segment). "+
		"Work stream bounded to %d messages per stage, the edge admitting up to %d %% of that = %d messages in the whole stream.\n\n",
		t.Name(), p.Concurrency, p.ClosedLoop, p.CapacityWindow, p.Duration, syncEvery, p.Images,
		p.WorkMaxPerStage, p.HighWaterPct, p.HighWaterMsgs)
	fmt.Fprintf(&md, "| figure | value |\n|---|---|\n")
	row := func(k, format string, args ...any) {
		fmt.Fprintf(&md, "| %s | %s |\n", k, fmt.Sprintf(format, args...))
	}
	row("measured capacity", "%.2f images/s", r.CapacityPerSecond)
	row("offered rate (mean, max)", "%.2f, %.2f images/s", r.OfferedPerSecond, r.OfferedMax)
	row("completed during the overload", "%.2f images/s", r.CompletedPerSec)
	row("images of the capacity burst (all accepted, checked like the rest)", "%d", p.CapacityImages)
	row("submitted in the overload (POST /v1/images)", "%d", r.Submitted)
	row("accepted (202)", "%d", r.Accepted)
	row("refused 503 overloaded / 429", "%d / %d (Retry-After %d–%d s, on every one)", r.Refused503, r.Refused429, r.RetryAfterMin, r.RetryAfterMax)
	row("responses by status", "%s", statuses(r.ByStatus))
	row("synchronous POST /v1/analyze by status", "%s", statuses(r.SyncByStatus))
	row("analyzed", "%d", r.Analyzed)
	row("rejected (with a reason)", "%d (%s)", r.Rejected, statuses(r.RejectedBy))
	row("dead-lettered", "%d", r.DeadLettered)
	row("duplicated", "%d", r.Duplicated)
	row("lost", "%d", r.Lost)
	row("refused but stored", "%d", r.RefusedStored)
	row("max work stream backlog", "%d messages, %s (bound %d + slack %d)", r.MaxBacklogMsgs, mib(r.MaxBacklogBytes), p.HighWaterMsgs, p.BacklogSlack)
	row("max pending + ack pending of a stage", "%d (limit %d per stage)", r.MaxConsumerLag, p.WorkMaxPerStage)
	row("max HTTP requests in flight", "%d", r.MaxInFlight)
	row("Go heap in use: at capacity, max", "%s, %s (bound: + %s)", mib(r.BaseHeap), mib(r.MaxHeap), mib(uint64(p.MemoryAllowance)))
	row("resident memory: at capacity, max", "%s, %s (bound: + %s + %s native)", mib(r.BaseRSS), mib(r.MaxRSS), mib(uint64(p.MemoryAllowance)), mib(uint64(p.NativeAllowance)))
	row("of which not Go's (native): at capacity, max", "%s, %s", mib(r.BaseNative), mib(r.MaxNative))
	row("drain after the last submission", "%.0f s", r.DrainSeconds)
	row("whole run", "%.0f s", r.Seconds)
	if err := os.WriteFile(filepath.Join(dir, "overload.json"), append(js, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "overload.md"), md.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("overload report (%s):\n%s", dir, md.String())
}

func statuses(m map[string]int) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s: %d", k, v))
	}
	slices.Sort(parts)
	if len(parts) == 0 {
		return "—"
	}
	return strings.Join(parts, ", ")
}
