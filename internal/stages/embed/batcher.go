package embed

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// EmbedFunc embeds a batch of crops: one vector per crop, in order. The
// recognizer's Embed is one.
type EmbedFunc func(crops [][]byte) ([][]float32, error)

// BatcherConfig configures a Batcher.
type BatcherConfig struct {
	// Size is the largest batch; 16 by default.
	Size int
	// MaxWait is how long a partial batch waits for more crops after its
	// first crop arrived; 0 runs whatever is queued at once.
	MaxWait time.Duration
	// Registerer receives facestream_embed_batch_size; nil registers nothing.
	Registerer prometheus.Registerer
}

// ErrBatcherClosed is returned by Embed after Close.
var ErrBatcherClosed = errors.New("embed: batcher closed")

// Batcher gathers crops from concurrent Embed calls into batches and runs
// one EmbedFunc call per batch, on one goroutine. It is safe for concurrent
// use. Close stops it.
type Batcher struct {
	fn      EmbedFunc
	cfg     BatcherConfig
	items   chan item
	hist    prometheus.Histogram
	done    chan struct{}
	stopped chan struct{}
	once    sync.Once
}

type item struct {
	crop []byte
	i    int
	res  chan<- result
}

type result struct {
	i   int
	vec []float32
	err error
}

// NewBatcher starts a Batcher over fn.
func NewBatcher(fn EmbedFunc, cfg BatcherConfig) (*Batcher, error) {
	if cfg.Size <= 0 {
		cfg.Size = 16
	}
	if cfg.MaxWait < 0 {
		return nil, fmt.Errorf("new batcher: negative max wait %v", cfg.MaxWait)
	}
	hist := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "facestream_embed_batch_size",
		Help:    "Face crops per recognizer run of the embed stage.",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
	})
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(hist); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("new batcher: register metrics: %w", err)
			}
			hist = are.ExistingCollector.(prometheus.Histogram)
		}
	}
	b := &Batcher{
		fn: fn, cfg: cfg, hist: hist,
		items:   make(chan item, 4*cfg.Size),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go b.loop()
	return b, nil
}

// Embed returns one vector per crop, computed in batches shared with other
// callers. It returns early with ctx's error when ctx ends.
func (b *Batcher) Embed(ctx context.Context, crops [][]byte) ([][]float32, error) {
	if len(crops) == 0 {
		return nil, nil
	}
	res := make(chan result, len(crops))
	for i, c := range crops {
		select {
		case b.items <- item{crop: c, i: i, res: res}:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-b.done:
			return nil, ErrBatcherClosed
		}
	}
	out := make([][]float32, len(crops))
	var errs []error
	for range crops {
		select {
		case r := <-res:
			if r.err != nil {
				errs = append(errs, r.err)
			}
			out[r.i] = r.vec
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-b.stopped:
			return nil, ErrBatcherClosed
		}
	}
	if len(errs) > 0 {
		return nil, errs[0]
	}
	return out, nil
}

func (b *Batcher) loop() {
	defer close(b.stopped)
	batch := make([]item, 0, b.cfg.Size)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		// Wait for the first crop of a batch.
		select {
		case it := <-b.items:
			batch = append(batch, it)
		case <-b.done:
			return
		}
		// Fill it: take what is queued, then wait up to MaxWait for more.
		deadline := false
		if b.cfg.MaxWait > 0 {
			timer.Reset(b.cfg.MaxWait)
		}
	fill:
		for len(batch) < b.cfg.Size {
			select {
			case it := <-b.items:
				batch = append(batch, it)
				continue
			default:
			}
			if b.cfg.MaxWait <= 0 || deadline {
				break
			}
			select {
			case it := <-b.items:
				batch = append(batch, it)
			case <-timer.C:
				deadline = true
				break fill
			case <-b.done:
				break fill
			}
		}
		timer.Stop() // Go 1.23+ timers: no stale tick survives Stop or Reset
		b.run(batch)
		clear(batch)
		batch = batch[:0]
	}
}

func (b *Batcher) run(batch []item) {
	crops := make([][]byte, len(batch))
	for i, it := range batch {
		crops[i] = it.crop
	}
	b.hist.Observe(float64(len(batch)))
	vecs, err := b.fn(crops)
	if err == nil && len(vecs) != len(batch) {
		err = fmt.Errorf("embed batch: %d vectors for %d crops", len(vecs), len(batch))
	}
	for i, it := range batch {
		r := result{i: it.i, err: err}
		if err == nil {
			r.vec = vecs[i]
		}
		it.res <- r
	}
}

// Close stops the batcher; Embed calls waiting for it fail with
// ErrBatcherClosed. It is idempotent.
func (b *Batcher) Close() error {
	b.once.Do(func() { close(b.done) })
	<-b.stopped
	return nil
}
