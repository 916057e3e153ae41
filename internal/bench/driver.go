package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/facestream/facestream/internal/imaging"
	fsnats "github.com/facestream/facestream/nats"
	"github.com/facestream/facestream/pkg/events"
)

// Outcome is what happened to one submitted image.
type Outcome struct {
	Path      string        `json:"path"`
	Faces     int           `json:"faces"`
	Rejected  string        `json:"rejected,omitempty"` // the reject reason
	Submitted time.Time     `json:"submitted"`
	Done      time.Time     `json:"done"`
	Latency   time.Duration `json:"latency_ns"`
}

// drive submits every image to the pipeline behind js (a path listed
// again as a variant of its bytes (imaging.Variant), which the result cache does not know),
// keeping at most inFlight images between submission and result, and
// returns each image's outcome in submission order. It reads results from an ordered consumer on
// the results stream (every type; so it follows pkg/events' subjects).
func drive(ctx context.Context, js jetstream.JetStream, images []string, inFlight int, inlineMax int) ([]Outcome, error) {
	data := make([][]byte, len(images))
	repeats := map[string]int{}
	for i, p := range images {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("drive: %w", err)
		}
		// A repeated image is sent as a variant: new bytes, same picture.
		if repeats[p] > 0 {
			if b, err = imaging.Variant(b, fmt.Sprintf("round %d", repeats[p])); err != nil {
				return nil, fmt.Errorf("drive: %s: %w", p, err)
			}
		}
		data[i] = b
		repeats[p]++
	}
	pub, err := events.NewPublisher(js, events.WithSource("/facestream/bench"))
	if err != nil {
		return nil, fmt.Errorf("drive: %w", err)
	}
	blobs := events.NewBlobStore(js)

	var (
		mu      sync.Mutex
		byID    = map[string]int{}
		outs    = make([]Outcome, len(images))
		pending = len(images)
		allDone = make(chan struct{})
		slots   = make(chan struct{}, max(inFlight, 1))
	)
	cons, err := js.OrderedConsumer(ctx, fsnats.StreamResults, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return nil, fmt.Errorf("drive: results consumer: %w", err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		now := time.Now()
		e, err := events.Decode(&nats.Msg{Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data()})
		if err != nil {
			return
		}
		faces, reason := 0, ""
		switch e.CloudEvent.Type() {
		case events.TypeImageAnalyzed:
			var a events.ImageAnalyzed
			if e.Decode(&a) != nil {
				return
			}
			faces = len(a.Faces)
		case events.TypeImageRejected:
			var r events.ImageRejected
			if e.Decode(&r) != nil {
				return
			}
			reason = string(r.Reason)
			if reason == "" {
				reason = "unknown"
			}
		default:
			return
		}
		mu.Lock()
		defer mu.Unlock()
		i, ok := byID[e.ImageID()]
		if !ok || !outs[i].Done.IsZero() {
			return
		}
		outs[i].Done, outs[i].Faces, outs[i].Rejected = now, faces, reason
		outs[i].Latency = now.Sub(outs[i].Submitted)
		<-slots
		if pending--; pending == 0 {
			close(allDone)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("drive: consume results: %w", err)
	}
	defer cc.Stop()

	for i := range images {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("drive: %w", ctx.Err())
		}
		id := uuid.NewString()
		s := events.Submission{ImageID: id, Image: data[i]}
		if len(data[i]) > inlineMax {
			ref, err := blobs.Put(ctx, "facestream-images", "submitted/"+id, "", data[i])
			if err != nil {
				return nil, fmt.Errorf("drive: put %s: %w", images[i], err)
			}
			s.Image, s.Ref = nil, &ref
		}
		e, err := events.NewImageSubmitted(s)
		if err != nil {
			return nil, fmt.Errorf("drive: %s: %w", images[i], err)
		}
		mu.Lock()
		byID[id] = i
		outs[i] = Outcome{Path: images[i], Submitted: time.Now()}
		mu.Unlock()
		if _, err := pub.Publish(ctx, e); err != nil {
			return nil, fmt.Errorf("drive: publish %s: %w", images[i], err)
		}
	}
	select {
	case <-allDone:
	case <-ctx.Done():
		mu.Lock()
		defer mu.Unlock()
		return nil, fmt.Errorf("drive: %d of %d images without a result: %w", pending, len(images), ctx.Err())
	}
	mu.Lock()
	defer mu.Unlock()
	if pending != 0 {
		return nil, errors.New("drive: results missing")
	}
	return outs, nil
}
