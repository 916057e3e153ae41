package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/facestream/facestream/internal/stages/ingest"
	"github.com/facestream/facestream/pkg/events"
)

// imagesBucket is the object store bucket of claim checks.
const imagesBucket = "facestream-images"

// blobKey is where the edge puts an image too large for a message.
func blobKey(imageID string) string { return "api/" + imageID }

// checkImage applies ingest's validation at the edge: a bad image is a 4xx
// at once instead of a rejection later.
func (s *Server) checkImage(u upload) *Problem {
	if _, err := ingest.Validate(u.Data, s.ingestLimits()); err != nil {
		var rej *ingest.Rejection
		if errors.As(err, &rej) {
			status, code := http.StatusUnprocessableEntity, CodeInvalidImage
			switch rej.Reason {
			case events.RejectTooLarge:
				status, code = http.StatusRequestEntityTooLarge, CodeImageTooLarge
			case events.RejectEmpty:
				status = http.StatusBadRequest
			}
			p := problem(status, code, rej.Message)
			p.Reason = string(rej.Reason)
			return p
		}
		return problem(http.StatusUnprocessableEntity, CodeInvalidImage, err.Error())
	}
	return nil
}

// outcome is an image's final event: exactly one of the two is set.
type outcome struct {
	analyzed *events.ImageAnalyzed
	rejected *events.ImageRejected
}

// analyzeSync publishes an image and waits for its image.analyzed or
// image.rejected. It listens on the image's own result subjects (core NATS,
// subscribed before the publish), so no stream is scanned.
func (s *Server) analyzeSync(ctx context.Context, c *call, u upload, opts events.RequestOptions) (string, outcome, *Problem) {
	if p := s.checkImage(u); p != nil {
		return "", outcome{}, p
	}
	if p := s.adm.admit(ctx); p != nil {
		return "", outcome{}, p
	}
	nc := s.d.JS.Conn()
	ch := make(chan *nats.Msg, 4)
	id := uuid.NewString()
	var subs []*nats.Subscription
	defer func() {
		for _, sub := range subs {
			_ = sub.Unsubscribe()
		}
	}()
	for _, typ := range []string{events.TypeImageAnalyzed, events.TypeImageRejected} {
		sub, err := nc.ChanSubscribe(events.ResultSubject(typ, id), ch)
		if err != nil {
			return "", outcome{}, s.internal(ctx, "subscribe to results", err)
		}
		subs = append(subs, sub)
	}
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := nc.FlushWithContext(fctx); err != nil {
		return "", outcome{}, s.internal(ctx, "subscribe to results", err)
	}
	if err := s.publishAs(ctx, c, id, u, opts); err != nil {
		return "", outcome{}, s.publishProblem(ctx, "publish", err)
	}
	timer := time.NewTimer(s.cfg.AnalyzeTimeout)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return id, outcome{}, problem(http.StatusGatewayTimeout, CodeTimeout, "the request ended before the analysis")
		case <-timer.C:
			return id, outcome{}, problem(http.StatusGatewayTimeout, CodeTimeout,
				fmt.Sprintf("image %s was not analysed within %v; GET /v1/images/%s later", id, s.cfg.AnalyzeTimeout, id))
		case m := <-ch:
			e, err := events.Decode(m)
			if err != nil {
				continue
			}
			switch e.CloudEvent.Type() {
			case events.TypeImageAnalyzed:
				var a events.ImageAnalyzed
				if err := e.Decode(&a); err != nil {
					return id, outcome{}, s.internal(ctx, "decode result", err)
				}
				c.faces += int64(len(a.Faces))
				return id, outcome{analyzed: &a}, nil
			case events.TypeImageRejected:
				var rj events.ImageRejected
				if err := e.Decode(&rj); err != nil {
					return id, outcome{}, s.internal(ctx, "decode result", err)
				}
				return id, outcome{rejected: &rj}, nil
			}
		}
	}
}

// publishAs is publish under a chosen id.
func (s *Server) publishAs(ctx context.Context, c *call, id string, u upload, opts events.RequestOptions) error {
	sub := events.Submission{ImageID: id, Tenant: c.tenant(), Options: opts, ContentType: u.ContentType, Image: u.Data}
	if int64(len(u.Data)) > s.cfg.InlineMax {
		ref, err := s.d.Blobs.Put(ctx, imagesBucket, blobKey(id), u.ContentType, u.Data)
		if err != nil {
			return err
		}
		sub.Image, sub.Ref = nil, &ref
	}
	e, err := events.NewImageSubmitted(sub)
	if err != nil {
		return err
	}
	if _, err := s.pub.Publish(ctx, e); err != nil {
		if sub.Ref != nil {
			// Nothing will read the claim check: do not leave it for the TTL.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if derr := s.d.Blobs.Delete(dctx, *sub.Ref); derr != nil {
				s.log.WarnContext(ctx, "delete the claim check of an image not submitted", "image_id", id, "err", derr)
			}
			cancel()
		}
		return err
	}
	c.images++
	return nil
}

// publishProblem answers a submission whose publish failed: 503 with
// Retry-After when the work stream is full (the image was not taken on;
// send it again later), 500 otherwise.
func (s *Server) publishProblem(ctx context.Context, what string, err error) *Problem {
	if errors.Is(err, events.ErrStreamFull) {
		s.log.WarnContext(ctx, what+": the work stream is full", "err", err)
		return s.adm.full()
	}
	return s.internal(ctx, what, err)
}

// rejectedProblem is the problem of a rejected image.
func rejectedProblem(rj *events.ImageRejected) *Problem {
	status, code := http.StatusUnprocessableEntity, CodeInvalidImage
	switch rj.Reason {
	case events.RejectNoFace:
		code = CodeNoFace
	case events.RejectTooLarge:
		status, code = http.StatusRequestEntityTooLarge, CodeImageTooLarge
	case events.RejectErased: // erased while it was analysed: it no longer exists
		status, code = http.StatusNotFound, CodeNotFound
	}
	p := problem(status, code, rj.Message)
	p.Reason = string(rj.Reason)
	return p
}

func (s *Server) internal(ctx context.Context, what string, err error) *Problem {
	s.log.ErrorContext(ctx, what, "err", err)
	return problem(http.StatusInternalServerError, CodeInternal, what+" failed")
}
