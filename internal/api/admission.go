package api

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	fsnats "github.com/facestream/facestream/nats"
)

// Reasons of facestream_api_refused_total.
const (
	refusedRateLimited = "rate_limited" // 429: the key's requests per minute
	refusedBacklog     = "backlog"      // 503: the work stream is above its high-water mark
	refusedStreamFull  = "stream_full"  // 503: JetStream refused the publish, image.submitted is full
)

// admissionRefresh is how often the work stream's state is read: one
// STREAM.INFO request per interval and edge process, whatever the load.
const admissionRefresh = 250 * time.Millisecond

// admission is the edge's global admission control: it refuses a new image
// while the work stream holds, all stages together, more than highWater
// percent of its per-subject limit (max_msgs_per_subject, or max_msgs when
// a stream is bounded that way), so that the backlog stays bounded and no
// stage's queue comes near the limit at which JetStream refuses publishes:
// each image holds one message, two for a moment while a stage hands it on.
//
// The stream's state is read at most every admissionRefresh; every image
// admitted since the read is added to it, so a burst cannot overshoot the
// mark between two reads (other replicas of the edge can, by what they
// admit in one interval). When the state cannot be read, the last one is
// used (at first: none, everything is admitted) and the stream's own limit
// still refuses publishes. It is safe for concurrent use.
type admission struct {
	js        jetstream.JetStream
	stream    string
	highWater int           // percent
	every     time.Duration // how often the stream is read (admissionRefresh)
	log       *slog.Logger
	refused   *prometheus.CounterVec
	now       func() time.Time

	mu        sync.Mutex
	readAt    time.Time // when the state was last read (zero: never)
	reading   bool
	failing   bool
	msgs      uint64 // in the stream at the last read
	added     uint64 // admitted since the last read began
	limit     int64  // the stream's per-subject (or stream-wide) message limit; <= 0: none
	consumers int
	rateAt    time.Time
	removed   uint64  // messages the stream has removed (acked) by rateAt
	rate      float64 // messages removed per second, smoothed
}

// newAdmission refuses images above highWater percent (50 when not
// positive) and registers facestream_api_refused_total with reg.
func newAdmission(js jetstream.JetStream, highWater int, reg prometheus.Registerer, log *slog.Logger) (*admission, error) {
	if highWater <= 0 {
		highWater = 50
	}
	a := &admission{js: js, stream: fsnats.StreamWork, highWater: highWater, every: admissionRefresh, log: log, now: time.Now,
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "facestream_api_refused_total",
			Help: "Requests the HTTP edge refused to take on, by reason: rate_limited (429, the key's requests per minute), backlog (503, the work stream above http.backlog_high_water), stream_full (503, JetStream refused the publish: new images are at their limit).",
		}, []string{"reason"})}
	for _, r := range []string{refusedRateLimited, refusedBacklog, refusedStreamFull} {
		a.refused.WithLabelValues(r)
	}
	if err := reg.Register(a.refused); err != nil {
		return nil, err
	}
	return a, nil
}

// admit takes on one image, or returns the 503 that refuses it.
func (a *admission) admit(ctx context.Context) *Problem {
	a.refresh(ctx)
	a.mu.Lock()
	defer a.mu.Unlock()
	if p := a.overLocked(); p != nil {
		return p
	}
	a.added++
	return nil
}

// check is admit without taking anything on: the 503, or nil while there
// is room.
func (a *admission) check(ctx context.Context) *Problem {
	a.refresh(ctx)
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.overLocked()
}

// full is the 503 of a publish that JetStream refused because the work
// stream is full.
func (a *admission) full() *Problem {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refused.WithLabelValues(refusedStreamFull).Inc()
	return overloaded(a.retryAfterLocked(), "the pipeline's queue of new images is full; submit the image again later")
}

func (a *admission) overLocked() *Problem {
	msgs := a.msgs + a.added
	if a.limit <= 0 || msgs*100 < uint64(a.limit)*uint64(a.highWater) {
		return nil
	}
	a.refused.WithLabelValues(refusedBacklog).Inc()
	return overloaded(a.retryAfterLocked(), fmt.Sprintf("the pipeline holds %d images' work, above the %d it admits (%d %% of %d per stage); submit the image again later",
		msgs, uint64(a.limit)*uint64(a.highWater)/100, a.highWater, a.limit))
}

func overloaded(retryAfter int, detail string) *Problem {
	p := problem(http.StatusServiceUnavailable, CodeOverloaded, detail)
	p.RetryAfter = retryAfter
	return p
}

// retryAfterLocked estimates the whole seconds until there is room again:
// the messages above the mark over the rate at which images leave the
// pipeline (the stream's removal rate over its consumers: an image passes
// each stage once), between 1 and 60; 5 while the rate is unknown.
func (a *admission) retryAfterLocked() int {
	imagesPerSecond := a.rate / float64(max(a.consumers, 1))
	if imagesPerSecond <= 0 {
		return 5
	}
	excess := 1.0
	if a.limit > 0 {
		mark := float64(a.limit) * float64(a.highWater) / 100
		excess = max(float64(a.msgs+a.added)-mark+1, 1)
	}
	return int(min(max(math.Ceil(excess/imagesPerSecond), 1), 60))
}

// refresh reads the stream's state when the last read is older than
// a.every and no other request is reading it.
func (a *admission) refresh(ctx context.Context) {
	a.mu.Lock()
	now := a.now()
	if a.reading || (!a.readAt.IsZero() && now.Sub(a.readAt) < a.every) {
		a.mu.Unlock()
		return
	}
	a.reading = true
	started := a.added
	a.mu.Unlock()

	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	var info *jetstream.StreamInfo
	s, err := a.js.Stream(rctx, a.stream)
	if err == nil {
		info, err = s.Info(rctx)
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	a.reading = false
	a.readAt = a.now()
	if err != nil {
		if !a.failing {
			a.log.WarnContext(ctx, "admission: cannot read the work stream; admitting on its last known state", "stream", a.stream, "err", err)
		}
		a.failing = true
		return
	}
	if a.failing {
		a.log.InfoContext(ctx, "admission: work stream readable again", "stream", a.stream)
	}
	a.failing = false
	// Images admitted while the request was out may not be in the answer:
	// they stay counted until the next read.
	st := info.State
	a.msgs, a.added = st.Msgs, a.added-started
	a.limit = info.Config.MaxMsgsPerSubject
	if a.limit <= 0 {
		a.limit = info.Config.MaxMsgs
	}
	a.consumers = st.Consumers
	removed := st.LastSeq - min(st.Msgs, st.LastSeq)
	if a.rateAt.IsZero() || removed < a.removed {
		a.rateAt, a.removed = a.readAt, removed
		return
	}
	if dt := a.readAt.Sub(a.rateAt).Seconds(); dt >= 1 {
		r := float64(removed-a.removed) / dt
		if a.rate == 0 {
			a.rate = r
		} else {
			a.rate = 0.7*a.rate + 0.3*r
		}
		a.rateAt, a.removed = a.readAt, removed
	}
}
