package bench

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/facestream/facestream/internal/api"
	"github.com/facestream/facestream/internal/auth"
	"github.com/facestream/facestream/internal/config"
	"github.com/facestream/facestream/internal/imaging"
)

// analyzeRoute is the route label of POST /v1/analyze in the edge's metrics.
const analyzeRoute = "POST /v1/analyze"

// SyncConfig configures the sync-latency benchmark: single-image POST
// /v1/analyze requests arriving open-loop (Poisson) at Load × Capacity per
// second against the in-process pipeline (service.RunAll with its HTTP API),
// each request's latency against its bound 2 × the image's model time +
// 20 ms (ModelTime).
type SyncConfig struct {
	// Service is the configuration the pipeline runs with; Database.URL
	// names a role that may create databases (a fresh one is used and
	// dropped).
	Service config.Config
	// Images are the JPEG or PNG files sent, in a seeded random order,
	// cycled; every request carries a byte-distinct variant (variant) so
	// that the result cache never answers. Warmup are sent first, one at a
	// time, and not counted.
	Images []string
	Warmup []string
	// Capacity is the pipeline's measured throughput (images/s), e.g. the
	// same bench run's in-process result, and CapacitySource says where it
	// came from. 0: measured here first, closed loop with InFlight images
	// in flight, as the in-process pipeline benchmark does.
	Capacity       float64
	CapacitySource string
	InFlight       int
	// Load is the share of Capacity offered (0.5 in the issue).
	Load float64
	// Duration is how long requests keep arriving.
	Duration time.Duration
	// Seed fixes the arrival times and the image order.
	Seed uint64
	// Logger receives progress; discarded when nil.
	Logger *slog.Logger
}

// SyncRequest is one request of the run.
type SyncRequest struct {
	Path   string  `json:"path"`
	AtMS   float64 `json:"at_ms"` // scheduled arrival, since the start
	Status int     `json:"status"`
	Reason string  `json:"reason,omitempty"` // reject reason or error
	Faces  int     `json:"faces"`
	Passes int     `json:"detector_passes"` // detector runs at the input size
	// SecondScaleRuns are its runs at detect.second_scale.
	SecondScaleRuns int     `json:"second_scale_runs"`
	LatencyMS       float64 `json:"latency_ms"` // scheduled arrival → whole answer read
	ModelMS         float64 `json:"model_ms"`
	BoundMS         float64 `json:"bound_ms"` // 2 × ModelMS + 20
	// StrictModelMS and StrictBoundMS count one detector run at the input
	// size (the raw model ceiling's definition) instead of the passes made.
	StrictModelMS float64 `json:"strict_model_ms"`
	StrictBoundMS float64 `json:"strict_bound_ms"`
	// DecodeMS is the image's decode (imaging.Decode + orientation) timed
	// alone in the bench process before the load; Megapixels its size.
	DecodeMS   float64 `json:"decode_ms"`
	Megapixels float64 `json:"megapixels"`
	// OpenAtArrival is the number of earlier requests still unanswered
	// when this one was sent: 0 means it found the pipeline idle (of this
	// benchmark's work).
	OpenAtArrival int `json:"open_at_arrival"`

	img int // index into the images
}

// answered reports whether the request got the analysis's answer: the
// result (200) or the image's rejection (4xx with a reason, e.g. no_face).
// Anything else — no answer, 5xx, a timeout, 429 — is a failure.
func (q SyncRequest) answered() bool {
	return q.Status == http.StatusOK || (q.Reason != "" && q.Status >= 400 && q.Status < 500 && q.Status != http.StatusTooManyRequests)
}

// BoundCheck is the requests' latency against their own bounds. A failed
// request (no answer, 5xx, timeout) counts as outside its bound.
type BoundCheck struct {
	Within      float64  `json:"within"`          // share of requests within their bound
	OverP99MS   float64  `json:"over_p99_ms"`     // p99 of latency − bound (≤ 0: pass)
	RatioP99    float64  `json:"ratio_p99"`       // p99 of latency ÷ bound
	BoundP50MS  float64  `json:"bound_p50_ms"`    // the bounds' own spread
	BoundP99MS  float64  `json:"bound_p99_ms"`    //
	ModelMeanMS float64  `json:"model_mean_ms"`   // mean model time of the requests
	Pass        bool     `json:"pass"`            // p99 of latency − bound ≤ 0
	Definition  string   `json:"definition"`      // what model time counts
	WorstPaths  []string `json:"worst,omitempty"` // the requests furthest over
	// InBound and OverBound describe the answered requests within and over
	// their bound: what sets the two apart.
	InBound   RequestGroup `json:"in_bound"`
	OverBound RequestGroup `json:"over_bound"`
	// Alone and Queued split the requests by whether they found the
	// pipeline idle (no earlier request open) or behind others: what
	// queueing adds at this load.
	Alone  ArrivalGroup `json:"alone"`
	Queued ArrivalGroup `json:"queued"`
}

// ArrivalGroup is the check over some of the requests.
type ArrivalGroup struct {
	N            int     `json:"n"`
	Within       float64 `json:"within"`
	OverP99MS    float64 `json:"over_p99_ms"`
	LatencyP50MS float64 `json:"latency_p50_ms"`
}

// arrivalGroup checks the requests for which pick is true.
func arrivalGroup(reqs []SyncRequest, bound func(SyncRequest) float64, pick func(SyncRequest) bool) ArrivalGroup {
	var (
		g         ArrivalGroup
		over, lat []float64
		within    int
	)
	for _, q := range reqs {
		if !pick(q) {
			continue
		}
		g.N++
		if !q.answered() {
			over = append(over, math.Inf(1))
			continue
		}
		over = append(over, q.LatencyMS-bound(q))
		lat = append(lat, q.LatencyMS)
		if q.LatencyMS <= bound(q) {
			within++
		}
	}
	if g.N == 0 {
		return g
	}
	slices.Sort(over)
	slices.Sort(lat)
	g.Within, g.OverP99MS, g.LatencyP50MS = float64(within)/float64(g.N), quantile(over, 0.99), quantile(lat, 0.5)
	return g
}

// RequestGroup is the mean of some requests.
type RequestGroup struct {
	N          int     `json:"n"`
	LatencyMS  float64 `json:"latency_ms"`
	BoundMS    float64 `json:"bound_ms"`
	DecodeMS   float64 `json:"decode_ms"`
	Megapixels float64 `json:"megapixels"`
	Faces      float64 `json:"faces"`
}

func (g *RequestGroup) add(q SyncRequest, bound float64) {
	g.N++
	g.LatencyMS += q.LatencyMS
	g.BoundMS += bound
	g.DecodeMS += q.DecodeMS
	g.Megapixels += q.Megapixels
	g.Faces += float64(q.Faces)
}

func (g *RequestGroup) mean() {
	if g.N == 0 {
		return
	}
	n := float64(g.N)
	g.LatencyMS, g.BoundMS, g.DecodeMS, g.Megapixels, g.Faces = g.LatencyMS/n, g.BoundMS/n, g.DecodeMS/n, g.Megapixels/n, g.Faces/n
}

// SyncResult is one sync-latency run.
type SyncResult struct {
	Settings       map[string]string `json:"settings"`
	CPUs           int               `json:"cpus"`
	Capacity       float64           `json:"capacity_images_per_s"`
	CapacitySource string            `json:"capacity_source"`
	Load           float64           `json:"load"`
	OfferedRate    float64           `json:"offered_per_s"`  // Load × Capacity
	ArrivalRate    float64           `json:"arrival_per_s"`  // arrivals drawn ÷ duration
	AchievedRate   float64           `json:"achieved_per_s"` // answers ÷ (last answer − first arrival)
	DurationS      float64           `json:"duration_s"`
	Requests       int               `json:"requests"`
	Analyzed       int               `json:"analyzed"`
	Rejected       map[string]int    `json:"rejected"`
	Failed         int               `json:"failed"`
	Faces          int               `json:"faces"`
	MaxOutstanding int               `json:"max_outstanding"` // requests open at once, at most
	Latency        Latency           `json:"latency"`         // answered requests
	Target         BoundCheck        `json:"target"`          // model time = the passes the pipeline makes
	Strict         BoundCheck        `json:"strict"`          // model time = one detector run
	Model          ModelTime         `json:"model_time"`
	// FaceMismatch counts images whose face count in the pipeline's answer
	// differs from the bench's own detector run (the passes come from the
	// latter): 0 means the two agree.
	FaceMismatch int `json:"face_mismatch"`
	// Where the time went during the load (metrics delta, mean ms): the
	// edge's own time for POST /v1/analyze, the pipeline's
	// image.submitted → result, and each stage's split.
	EdgeMS     float64            `json:"edge_mean_ms"`
	PipelineMS float64            `json:"pipeline_mean_ms"`
	Stages     []StageSplit       `json:"stages"`
	ModelRuns  map[string]float64 `json:"model_runs"`
	ModelRunMS map[string]float64 `json:"model_mean_ms"`
	// LoadAvg is the machine's 1-minute load average (/proc/loadavg) before
	// and after the load: what else ran on the cores.
	LoadAvg [2]float64 `json:"load_avg"`
	// Seconds is the time each phase of the benchmark took.
	Seconds    map[string]float64 `json:"phase_seconds"`
	PerRequest []SyncRequest      `json:"per_request"`
}

// RunSync runs the sync-latency benchmark.
func RunSync(ctx context.Context, cfg SyncConfig) (*SyncResult, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case len(cfg.Images) == 0:
		return nil, errors.New("sync: no images")
	case cfg.Load <= 0 || cfg.Duration <= 0:
		return nil, fmt.Errorf("sync: load %.2f over %v: both must be above 0", cfg.Load, cfg.Duration)
	}
	svc := cfg.Service
	data, err := readAll(cfg.Images)
	if err != nil {
		return nil, err
	}
	for i, d := range data {
		if _, err := imaging.Variant(d, "check"); err != nil {
			return nil, fmt.Errorf("sync: %s: %w", cfg.Images[i], err)
		}
	}
	warm, err := readAll(cfg.Warmup)
	if err != nil {
		return nil, err
	}

	phases := map[string]float64{}
	t0 := time.Now()
	phase := func(name string) {
		phases[name] = time.Since(t0).Seconds()
		t0 = time.Now()
	}
	// The model work of each image, before the pipeline starts.
	cfg.Logger.Info("sync latency: counting detector passes and timing bare model runs", "images", len(data))
	models, infos, err := detectorPasses(svc, data, cfg.Logger.With("component", "sync-models"))
	if models != nil {
		defer models.Close()
	}
	if err != nil {
		return nil, err
	}
	mt := ModelTime{SecondScale: svc.Detection.SecondScale, DetectorRuns: map[string]int{}}
	for _, in := range infos {
		k := fmt.Sprintf("%d×640", in.passes)
		if in.second > 0 {
			k += fmt.Sprintf(" + %d×%d", in.second, svc.Detection.SecondScale)
		}
		mt.DetectorRuns[k]++
	}
	phase("detector passes")
	if mt.PerRunBeforeMS, err = measureModelTime(models, svc, infos); err != nil {
		return nil, err
	}
	phase("model time before")

	dsn, drop, err := CreateDatabase(ctx, svc.Database.URL.Value(), "sync")
	if err != nil {
		return nil, err
	}
	defer drop()
	svc.Database.URL = config.Secret(dsn)
	dataDir, err := os.MkdirTemp("", "facestream-bench-sync-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dataDir)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	p, err := runAll(runCtx, svc, dataDir, cfg.Logger)
	if err != nil {
		stop()
		if p.wait != nil {
			err = errors.Join(err, p.wait())
		}
		return nil, err
	}
	phase("pipeline start")
	res, runErr := loadSync(runCtx, cfg, svc, p, data, warm)
	t0 = time.Now()
	stop()
	if err := p.wait(); err != nil {
		cfg.Logger.Warn("pipeline stopped with an error", "err", err)
	}
	if runErr != nil {
		return nil, runErr
	}
	phase("pipeline stop")
	if mt.PerRunAfterMS, err = measureModelTime(models, svc, infos); err != nil {
		return nil, err
	}
	phase("model time after")
	for k, v := range phases {
		res.Seconds[k] = v
	}
	mt.PerRunMS = meanRuns(mt.PerRunBeforeMS, mt.PerRunAfterMS)
	res.Model = mt
	res.score(infos)
	return res, nil
}

// loadSync warms up, measures the capacity if not given, offers the load
// and collects the answers and the metrics.
func loadSync(ctx context.Context, cfg SyncConfig, svc config.Config, p inProcess, data, warm [][]byte) (*SyncResult, error) {
	pool, err := pgxpool.New(ctx, svc.Database.URL.Value())
	if err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	// A key of its own, with a rate limit far above the load.
	apiKey, _, err := auth.NewStore(pool).Create(ctx, auth.CreateOptions{Tenant: "bench", Name: "sync latency", Scopes: []string{auth.ScopeWrite}, RateLimit: 1_000_000, Actor: "bench"})
	pool.Close()
	if err != nil {
		return nil, fmt.Errorf("sync: create key: %w", err)
	}
	tr := &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: svc.HTTP.AnalyzeTimeout + 10*time.Second}
	post := func(ctx context.Context, body []byte) (int, api.ImageOut, string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+p.httpAddr+"/v1/analyze", bytes.NewReader(body))
		if err != nil {
			return 0, api.ImageOut{}, "", err
		}
		req.Header.Set("Content-Type", contentType(body))
		req.Header.Set("Authorization", "Bearer "+apiKey)
		resp, err := client.Do(req)
		if err != nil {
			return 0, api.ImageOut{}, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return resp.StatusCode, api.ImageOut{}, "", err
		}
		var out api.ImageOut
		if resp.StatusCode == http.StatusOK {
			err = json.Unmarshal(b, &out)
			return resp.StatusCode, out, "", err
		}
		var prob api.Problem
		if json.Unmarshal(b, &prob) == nil && prob.Reason != "" {
			return resp.StatusCode, out, prob.Reason, nil
		}
		return resp.StatusCode, out, "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}

	res := &SyncResult{Settings: settingsOf(svc), CPUs: runtime.NumCPU(), Capacity: cfg.Capacity, CapacitySource: cfg.CapacitySource,
		Load: cfg.Load, Rejected: map[string]int{}, Seconds: map[string]float64{}}
	t0 := time.Now()
	cfg.Logger.Info("sync latency: warming up", "images", len(warm))
	for i, w := range warm {
		body, err := imaging.Variant(w, "warm-"+strconv.Itoa(i))
		if err != nil {
			return nil, fmt.Errorf("sync: warm up: %w", err)
		}
		if status, _, _, err := post(ctx, body); err != nil {
			return nil, fmt.Errorf("sync: warm up (status %d): %w", status, err)
		}
	}
	res.Seconds["warm-up"] = time.Since(t0).Seconds()
	if res.Capacity <= 0 {
		t0 = time.Now()
		if res.Capacity, err = measureCapacity(ctx, p.natsURL, svc, data, cfg.InFlight); err != nil {
			return nil, err
		}
		res.Seconds["capacity"] = time.Since(t0).Seconds()
		res.CapacitySource = fmt.Sprintf("measured before the load: %d images, %d in flight, through NATS", len(data), cfg.InFlight)
	}
	res.OfferedRate = cfg.Load * res.Capacity
	arrivals := poissonArrivals(rand.New(rand.NewPCG(cfg.Seed, 0x5eed)), res.OfferedRate, cfg.Duration)
	if len(arrivals) == 0 {
		return nil, fmt.Errorf("sync: no arrival in %v at %.2f/s", cfg.Duration, res.OfferedRate)
	}
	res.DurationS = cfg.Duration.Seconds()
	res.ArrivalRate = float64(len(arrivals)) / res.DurationS
	order := rand.New(rand.NewPCG(cfg.Seed, 0x0de5)).Perm(len(data))

	before, err := scrape(ctx, []string{p.metricsAddr})
	if err != nil {
		return nil, err
	}
	t0 = time.Now()
	res.LoadAvg[0] = loadAvg()
	cfg.Logger.Info("sync latency: offering load", "capacity", res.Capacity, "rate", res.OfferedRate, "requests", len(arrivals), "duration", cfg.Duration)
	var (
		wg                sync.WaitGroup
		mu                sync.Mutex
		open, maxOpen     int
		reqs              = make([]SyncRequest, len(arrivals))
		dones             = make([]time.Time, len(arrivals))
		start             = time.Now().Add(50 * time.Millisecond)
		errFirst          error
		clientErrs, other int
	)
	for k, at := range arrivals {
		i := order[k%len(order)]
		body, err := imaging.Variant(data[i], "r"+strconv.Itoa(k))
		if err != nil {
			return nil, err
		}
		sched := start.Add(at)
		select {
		case <-time.After(time.Until(sched)):
		case <-ctx.Done():
			wg.Wait()
			return nil, fmt.Errorf("sync: %w", ctx.Err())
		}
		mu.Lock()
		before := open
		open++
		maxOpen = max(maxOpen, open)
		mu.Unlock()
		wg.Go(func() {
			status, out, reason, err := post(ctx, body)
			done := time.Now()
			r := SyncRequest{Path: cfg.Images[i], AtMS: ms(at), Status: status, Reason: reason, Faces: out.FaceCount, LatencyMS: ms(done.Sub(sched)),
				OpenAtArrival: before, img: i}
			mu.Lock()
			defer mu.Unlock()
			open--
			if err != nil {
				r.Reason = err.Error()
				if errFirst == nil {
					errFirst = err
				}
				if status == 0 {
					clientErrs++
				} else {
					other++
				}
			}
			reqs[k], dones[k] = r, done
		})
	}
	wg.Wait()
	res.LoadAvg[1] = loadAvg()
	res.Seconds["load"] = time.Since(t0).Seconds()
	if clientErrs+other > 0 {
		cfg.Logger.Warn("sync latency: failed requests", "transport", clientErrs, "status", other, "first", errFirst)
	}
	time.Sleep(200 * time.Millisecond) // the last acks and metrics
	after, err := scrape(ctx, []string{p.metricsAddr})
	if err != nil {
		return nil, err
	}
	delta := after.sub(before)

	// Rates, latency and the pipeline's own split.
	res.Requests, res.MaxOutstanding, res.PerRequest = len(reqs), maxOpen, reqs
	var last time.Time
	outs := make([]Outcome, 0, len(reqs))
	lat := make([]time.Duration, 0, len(reqs))
	for k, r := range reqs {
		switch {
		case !r.answered():
			res.Failed++
			continue
		case r.Status == http.StatusOK:
			res.Analyzed++
			res.Faces += r.Faces
		default:
			res.Rejected[r.Reason]++
		}
		if dones[k].After(last) {
			last = dones[k]
		}
		d := time.Duration(r.LatencyMS * float64(time.Millisecond))
		lat = append(lat, d)
		outs = append(outs, Outcome{Path: r.Path, Faces: r.Faces, Rejected: r.Reason, Submitted: start.Add(arrivals[k]), Done: dones[k], Latency: d})
	}
	res.Latency = summarize(lat)
	if span := last.Sub(start.Add(arrivals[0])).Seconds(); span > 0 {
		res.AchievedRate = float64(len(lat)) / span
	}
	split := summarizeRun(InProcess, svc, outs, delta, after)
	res.Stages, res.ModelRuns, res.ModelRunMS = split.Stages, split.ModelRuns, split.ModelMS
	if e := delta[key("facestream_api_request_duration_seconds", "route", analyzeRoute)]; e.Count > 0 {
		res.EdgeMS = 1000 * e.Sum / e.Count
	}
	var sum, n float64
	for _, outcome := range []string{"analyzed", "rejected"} {
		v := delta[key("facestream_image_latency_seconds", "outcome", outcome)]
		sum, n = sum+v.Sum, n+v.Count
	}
	if n > 0 {
		res.PipelineMS = 1000 * sum / n
	}
	return res, nil
}

// score prices every request's model work and checks the latency against
// the bounds.
func (r *SyncResult) score(infos []imageInfo) {
	mismatch := map[int]bool{}
	for k := range r.PerRequest {
		q := &r.PerRequest[k]
		in := infos[q.img]
		q.Passes, q.SecondScaleRuns, q.DecodeMS, q.Megapixels = in.passes, in.second, in.decodeMS, float64(in.pixels)/1e6
		faces := q.Faces // 0 for a rejection or a failure
		if q.answered() && faces != in.faces {
			mismatch[q.img] = true
		}
		q.ModelMS = r.Model.imageMS(q.Passes, q.SecondScaleRuns, faces)
		q.StrictModelMS = r.Model.strictMS(faces)
		q.BoundMS = 2*q.ModelMS + 20
		q.StrictBoundMS = 2*q.StrictModelMS + 20
	}
	r.FaceMismatch = len(mismatch)
	check := func(model, bound func(SyncRequest) float64, def string) BoundCheck {
		c := BoundCheck{Definition: def}
		over := make([]float64, 0, len(r.PerRequest))
		ratio := make([]float64, 0, len(r.PerRequest))
		bounds := make([]float64, 0, len(r.PerRequest))
		type worst struct {
			over float64
			path string
		}
		var ws []worst
		within, sumModel := 0, 0.0
		for _, q := range r.PerRequest {
			b := bound(q)
			bounds = append(bounds, b)
			sumModel += model(q)
			if !q.answered() {
				over, ratio = append(over, math.Inf(1)), append(ratio, math.Inf(1))
				continue
			}
			over, ratio = append(over, q.LatencyMS-b), append(ratio, q.LatencyMS/b)
			if q.LatencyMS <= b {
				within++
				c.InBound.add(q, b)
			} else {
				c.OverBound.add(q, b)
			}
			ws = append(ws, worst{q.LatencyMS - b, fmt.Sprintf("%s %.0f ms (bound %.0f)", q.Path, q.LatencyMS, b)})
		}
		c.InBound.mean()
		c.OverBound.mean()
		slices.Sort(over)
		slices.Sort(ratio)
		slices.Sort(bounds)
		n := len(r.PerRequest)
		if n == 0 {
			return c
		}
		c.Within = float64(within) / float64(n)
		c.OverP99MS, c.RatioP99 = quantile(over, 0.99), quantile(ratio, 0.99)
		c.BoundP50MS, c.BoundP99MS = quantile(bounds, 0.5), quantile(bounds, 0.99)
		c.ModelMeanMS = sumModel / float64(n)
		c.Pass = c.OverP99MS <= 0
		c.Alone = arrivalGroup(r.PerRequest, bound, func(q SyncRequest) bool { return q.OpenAtArrival == 0 })
		c.Queued = arrivalGroup(r.PerRequest, bound, func(q SyncRequest) bool { return q.OpenAtArrival > 0 })
		slices.SortFunc(ws, func(a, b worst) int { return cmp.Compare(b.over, a.over) })
		for _, w := range ws[:min(5, len(ws))] {
			c.WorstPaths = append(c.WorstPaths, w.path)
		}
		return c
	}
	r.Target = check(func(q SyncRequest) float64 { return q.ModelMS }, func(q SyncRequest) float64 { return q.BoundMS },
		"every detector run the pipeline makes for the image (the second scale and rotation passes when it runs them) + the per-face models per face answered")
	r.Strict = check(func(q SyncRequest) float64 { return q.StrictModelMS }, func(q SyncRequest) float64 { return q.StrictBoundMS },
		"one detector run at the input size + the per-face models per face answered (the raw model ceiling's definition)")
}

// poissonArrivals draws the arrival times of a Poisson process of rate per
// second over d: exponential gaps of mean 1/rate.
func poissonArrivals(rng *rand.Rand, rate float64, d time.Duration) []time.Duration {
	if rate <= 0 {
		return nil
	}
	var out []time.Duration
	at := time.Duration(0)
	for {
		at += time.Duration(rng.ExpFloat64() / rate * float64(time.Second))
		if at >= d {
			return out
		}
		out = append(out, at)
	}
}

// measureCapacity drives the images through the pipeline closed loop
// (inFlight at once) and returns images per second.
func measureCapacity(ctx context.Context, natsURL string, svc config.Config, data [][]byte, inFlight int) (float64, error) {
	nc, err := nats.Connect(natsURL, nats.Name("facestream-bench-sync"))
	if err != nil {
		return 0, fmt.Errorf("sync: connect: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, err
	}
	// drive reads files: write this run's variants (the warm-up and the
	// load use other tags) to a temporary folder.
	dir, err := os.MkdirTemp("", "facestream-bench-capacity-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	paths := make([]string, len(data))
	for i, d := range data {
		v, err := imaging.Variant(d, "capacity-"+strconv.Itoa(i))
		if err != nil {
			return 0, err
		}
		paths[i] = fmt.Sprintf("%s/%d", dir, i)
		if err := os.WriteFile(paths[i], v, 0o600); err != nil {
			return 0, err
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	outs, err := drive(dctx, js, paths, max(inFlight, 1), int(svc.Limits.InlinePayloadMax))
	if err != nil {
		return 0, fmt.Errorf("sync: capacity: %w", err)
	}
	var first, last time.Time
	for _, o := range outs {
		if first.IsZero() || o.Submitted.Before(first) {
			first = o.Submitted
		}
		if o.Done.After(last) {
			last = o.Done
		}
	}
	if s := last.Sub(first).Seconds(); s > 0 {
		return float64(len(outs)) / s, nil
	}
	return 0, errors.New("sync: capacity: no time elapsed")
}

func readAll(paths []string) ([][]byte, error) {
	out := make([][]byte, len(paths))
	for i, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("sync: %w", err)
		}
		out[i] = b
	}
	return out, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// loadAvg is the 1-minute load average, 0 where /proc/loadavg is missing.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// contentType is the media type of a JPEG, PNG or WebP.
func contentType(data []byte) string {
	switch {
	case bytes.HasPrefix(data, []byte("\x89PNG")):
		return "image/png"
	case len(data) >= 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		return "image/webp"
	}
	return "image/jpeg"
}
