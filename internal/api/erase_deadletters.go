package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/facestream/facestream/internal/store"
	fsnats "github.com/facestream/facestream/nats"
	"github.com/facestream/facestream/pkg/events"
)

// deadLetterFetch is how many dead letters (headers only) one fetch of the
// erasure's scan asks for, and deadLetterWait how long a fetch waits.
const (
	deadLetterFetch = 256
	deadLetterWait  = time.Second
)

// headerSubject is the CloudEvents subject attribute in binary mode: the
// image id of every facestream event about an image.
const headerSubject = events.HeaderPrefix + "subject"

// purgeDeadLetters removes the dead letters of image imageID (a UUID) from
// FACESTREAM_DLQ, overwriting them in the store (SecureDeleteMsg): a dead
// letter keeps the original message whole, an inline image included.
//
// Dead-letter subjects name the stage, not the image, so the erasure scans:
// it reads the headers of every dead letter stored when it starts (an
// ordered consumer, headers only) and deletes those whose subject attribute
// (ce-subject) is the image, compared as the database compares ids
// (store.ImageUUID). A dead letter without one (the original did not decode
// as an event) is read whole, and matched on the original's ce-subject.
// The scan costs one small message per dead letter stored (the stream keeps
// 14 days): erasures are rare, and a healthy pipeline keeps the stream near
// empty.
func (s *Server) purgeDeadLetters(ctx context.Context, imageID string) error {
	stream, err := s.d.JS.Stream(ctx, fsnats.StreamDLQ)
	if err != nil {
		return fmt.Errorf("purge dead letters: %w", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("purge dead letters: %w", err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	last := info.State.LastSeq
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{HeadersOnly: true})
	if err != nil {
		return fmt.Errorf("purge dead letters: %w", err)
	}
	var doomed []uint64
	// The scan ends at the last dead letter stored when it started, or when
	// nothing is left to read (the last one said so, or two fetches in a
	// row came back empty: a pull with messages pending is answered at
	// once, so only a dead letter removed meanwhile, by its age or another
	// erasure, can leave the end unseen).
	for done, empty := false, 0; !done && empty < 2; {
		batch, err := cons.Fetch(deadLetterFetch, jetstream.FetchMaxWait(deadLetterWait))
		if err != nil {
			return fmt.Errorf("purge dead letters: %w", err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			meta, err := msg.Metadata()
			if err != nil {
				return fmt.Errorf("purge dead letters: %w", err)
			}
			seq := meta.Sequence.Stream
			match, err := s.deadLetterOf(ctx, stream, seq, msg.Headers(), imageID)
			if err != nil {
				return err
			}
			if match {
				doomed = append(doomed, seq)
			}
			if seq >= last || meta.NumPending == 0 {
				done = true
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return fmt.Errorf("purge dead letters: %w", err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("purge dead letters: %w", ctx.Err())
		}
		if n == 0 {
			empty++
		} else {
			empty = 0
		}
	}
	for _, seq := range doomed {
		if err := stream.SecureDeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("purge dead letters: delete %d: %w", seq, err)
		}
	}
	return nil
}

// deadLetterOf reports whether the dead letter at seq, with headers h, is
// about image imageID.
func (s *Server) deadLetterOf(ctx context.Context, stream jetstream.Stream, seq uint64, h map[string][]string, imageID string) (bool, error) {
	if subj := header(h, headerSubject); subj != "" {
		return store.ImageUUID(subj).String() == imageID, nil
	}
	raw, err := stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("purge dead letters: read %d: %w", seq, err)
	}
	var dl events.DeadLetter
	if err := json.Unmarshal(raw.Data, &dl); err != nil {
		return false, nil // not a dead letter of ours: nothing of an image to find
	}
	subj := header(dl.Original.Header, headerSubject)
	return subj != "" && store.ImageUUID(subj).String() == imageID, nil
}

// header returns the first value of header name in h, matched
// case-insensitively.
func header(h map[string][]string, name string) string {
	for k, vs := range h {
		if strings.EqualFold(k, name) && len(vs) > 0 {
			return vs[0]
		}
	}
	return ""
}
