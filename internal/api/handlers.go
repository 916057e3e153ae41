package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/facestream/facestream/internal/face"
	"github.com/facestream/facestream/pkg/events"
)

// optionsIn are the analysis options a request may set.
type optionsIn struct {
	MaxFaces    int  `json:"max_faces,omitempty"`
	MinFaceSize int  `json:"min_face_size,omitempty"`
	SkipCache   bool `json:"skip_cache,omitempty"`
}

func (o *optionsIn) events() events.RequestOptions {
	if o == nil {
		return events.RequestOptions{}
	}
	return events.RequestOptions{MaxFaces: o.MaxFaces, MinFaceSize: o.MinFaceSize, SkipCache: o.SkipCache}
}

type imageRequest struct {
	Image   string     `json:"image,omitempty"`
	Options *optionsIn `json:"options,omitempty"`
}

// images collects a request's images: multipart files first, then the
// JSON strings, each decoded and size-checked.
func (s *Server) images(in input, strs ...string) ([]upload, *Problem) {
	out := append([]upload(nil), in.Images...)
	for _, str := range strs {
		if str == "" {
			continue
		}
		u, p := decodeImageString(str, s.lim)
		if p != nil {
			return nil, p
		}
		out = append(out, u)
	}
	return out, nil
}

func (s *Server) oneImage(in input, str string) (upload, *Problem) {
	ims, p := s.images(in, str)
	if p != nil {
		return upload{}, p
	}
	if len(ims) != 1 {
		p := problem(http.StatusBadRequest, CodeInvalidRequest, "send exactly one image (a multipart file, or \"image\" as base64 or a data URL)")
		if len(ims) == 0 {
			p.Code, p.Title, p.Reason = CodeInvalidImage, titles[CodeInvalidImage], string(events.RejectEmpty)
		}
		return upload{}, p
	}
	return ims[0], nil
}

// POST /v1/images: submit, answer 202 at once.
func (s *Server) submitImage(w http.ResponseWriter, r *http.Request, c *call) {
	in, p := readInput(r, s.lim, true)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	var req imageRequest
	if p := in.decode(&req); p != nil {
		writeProblem(w, r, p)
		return
	}
	u, p := s.oneImage(in, req.Image)
	if p == nil {
		p = s.checkImage(u)
	}
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	if p := s.adm.admit(r.Context()); p != nil {
		writeProblem(w, r, p)
		return
	}
	id := uuid.NewString()
	// The row exists at once (status accepted), so that GET answers from the
	// start; the pipeline's result replaces it.
	if err := s.recordAccepted(r.Context(), c, id, u); err != nil {
		writeProblem(w, r, s.internal(r.Context(), "submit image", err))
		return
	}
	if err := s.publishAs(r.Context(), c, id, u, req.Options.events()); err != nil {
		// Not taken on: no row may stay "accepted" for an image that never
		// reaches the pipeline.
		if derr := s.forgetAccepted(r.Context(), c, id); derr != nil {
			s.log.ErrorContext(r.Context(), "remove the row of an image not submitted", "image_id", id, "err", derr)
		}
		writeProblem(w, r, s.publishProblem(r.Context(), "submit image", err))
		return
	}
	loc := "/v1/images/" + id
	w.Header().Set("Location", loc)
	writeJSON(w, http.StatusAccepted, map[string]string{"id": id, "status": "accepted", "location": loc})
}

// GET /v1/images/{id}
func (s *Server) getImage(w http.ResponseWriter, r *http.Request, c *call) {
	id, ok := parseID(r.PathValue("id"))
	if !ok {
		writeProblem(w, r, problem(http.StatusNotFound, CodeNotFound, "no such image"))
		return
	}
	img, err := s.loadImage(r.Context(), c.tenant(), id)
	switch {
	case errors.Is(err, errNotFound):
		writeProblem(w, r, problem(http.StatusNotFound, CodeNotFound, "no such image"))
	case err != nil:
		writeProblem(w, r, s.internal(r.Context(), "load image", err))
	default:
		writeJSON(w, http.StatusOK, img)
	}
}

// analyzeOne analyses one upload synchronously and returns its result or
// the problem (a rejection, a timeout).
func (s *Server) analyzeOne(ctx context.Context, c *call, u upload, opts events.RequestOptions) (ImageOut, *Problem) {
	id, out, p := s.analyzeSync(ctx, c, u, opts)
	if p != nil {
		return ImageOut{ID: id}, p
	}
	if out.rejected != nil {
		return ImageOut{ID: id, Status: "rejected", RejectReason: string(out.rejected.Reason), RejectMessage: out.rejected.Message, Faces: []FaceOut{}}, rejectedProblem(out.rejected)
	}
	return imageFromAnalyzed(out.analyzed), nil
}

// POST /v1/analyze: submit and wait.
func (s *Server) analyze(w http.ResponseWriter, r *http.Request, c *call) {
	in, p := readInput(r, s.lim, true)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	var req imageRequest
	if p := in.decode(&req); p != nil {
		writeProblem(w, r, p)
		return
	}
	u, p := s.oneImage(in, req.Image)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	img, p := s.analyzeOne(r.Context(), c, u, req.Options.events())
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	writeJSON(w, http.StatusOK, img)
}

// queryFace is the face a compare, search or identify request is about:
// given by id, or the largest face of an uploaded image.
type queryFace struct {
	face    FaceOut
	imageID string
}

// resolveFace finds the query face: by face id (404 when the tenant has
// none), or by analysing the image and taking its largest face.
func (s *Server) resolveFace(ctx context.Context, c *call, faceID string, u *upload, pick func([]FaceOut) int) (queryFace, *Problem) {
	if faceID != "" {
		f, imageID, err := s.loadFace(ctx, c.tenant(), faceID)
		if errors.Is(err, errNotFound) {
			return queryFace{}, problem(http.StatusNotFound, CodeNotFound, "no such face: "+faceID)
		}
		if err != nil {
			return queryFace{}, s.internal(ctx, "load face", err)
		}
		if f.vector == nil {
			return queryFace{}, problem(http.StatusUnprocessableEntity, CodeNoFace, "face "+faceID+" has no embedding")
		}
		return queryFace{face: f, imageID: imageID}, nil
	}
	img, p := s.analyzeOne(ctx, c, *u, events.RequestOptions{})
	if p != nil {
		return queryFace{}, p
	}
	i := pick(img.Faces)
	if i < 0 {
		p := problem(http.StatusUnprocessableEntity, CodeNoFace, "no face with an embedding in the image")
		p.Reason = string(events.RejectNoFace)
		return queryFace{}, p
	}
	return queryFace{face: img.Faces[i], imageID: img.ID}, nil
}

type compareRequest struct {
	Images  []string `json:"images,omitempty"`
	FaceIDs []string `json:"face_ids,omitempty"`
}

// CompareResult is the answer of POST /v1/compare.
type CompareResult struct {
	Similarity float32        `json:"similarity"`
	Threshold  float32        `json:"threshold"`
	Verdict    string         `json:"verdict"` // same or different
	Same       bool           `json:"same"`
	Model      string         `json:"model"`
	Faces      []ComparedFace `json:"faces"`
}

// ComparedFace names a compared face.
type ComparedFace struct {
	ImageID string     `json:"image_id"`
	FaceID  string     `json:"face_id"`
	Box     events.Box `json:"box"`
}

// POST /v1/compare: two images (their largest faces) or two face ids.
func (s *Server) compare(w http.ResponseWriter, r *http.Request, c *call) {
	in, p := readInput(r, s.lim, false)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	var req compareRequest
	if p := in.decode(&req); p != nil {
		writeProblem(w, r, p)
		return
	}
	ims, p := s.images(in, req.Images...)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	if len(ims)+len(req.FaceIDs) != 2 || (len(ims) > 0 && len(req.FaceIDs) > 0) {
		writeProblem(w, r, problem(http.StatusBadRequest, CodeInvalidRequest, "send two images or two face_ids"))
		return
	}
	qs := make([]queryFace, 2)
	probs := make([]*Problem, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			if len(req.FaceIDs) > 0 {
				qs[i], probs[i] = s.resolveFace(r.Context(), c, req.FaceIDs[i], nil, largest)
			} else {
				qs[i], probs[i] = s.resolveFace(r.Context(), c, "", &ims[i], largest)
			}
		})
	}
	wg.Wait()
	for _, p := range probs {
		if p != nil {
			writeProblem(w, r, p)
			return
		}
	}
	a, b := qs[0].face, qs[1].face
	if a.model != b.model || len(a.vector) != len(b.vector) {
		writeProblem(w, r, problem(http.StatusConflict, CodeModelMismatch, "the faces were embedded by "+a.model+" and "+b.model+": embeddings of different models are never compared"))
		return
	}
	if a.model != s.recognizer || s.threshold <= 0 {
		writeProblem(w, r, problem(http.StatusConflict, CodeModelMismatch, "the faces were embedded by "+a.model+", not by the running pack's recognizer "+s.recognizer+": no threshold to decide with"))
		return
	}
	sim := face.Cosine(a.vector, b.vector)
	res := CompareResult{Similarity: sim, Threshold: s.threshold, Same: sim >= s.threshold, Verdict: "different", Model: a.model}
	if res.Same {
		res.Verdict = "same"
	}
	for _, q := range qs {
		res.Faces = append(res.Faces, ComparedFace{ImageID: q.imageID, FaceID: q.face.ID, Box: q.face.Box})
	}
	writeJSON(w, http.StatusOK, res)
}

// forgetAccepted removes the row recordAccepted stored, while it is still
// only accepted.
func (s *Server) forgetAccepted(ctx context.Context, c *call, id string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, err := s.d.DB.Exec(ctx, `DELETE FROM facestream.images WHERE id = $1::uuid AND tenant_id = $2 AND status = 'accepted'`, id, c.tenant())
	return err
}

// recordAccepted stores the row of a submitted image, status accepted.
func (s *Server) recordAccepted(ctx context.Context, c *call, id string, u upload) error {
	sum := sha256.Sum256(u.Data)
	_, err := s.d.DB.Exec(ctx, `WITH t AS (INSERT INTO facestream.tenants (id) VALUES ($2) ON CONFLICT DO NOTHING)
INSERT INTO facestream.images (id, tenant_id, sha256, source, content_type, byte_size, status, model_pack)
VALUES ($1::uuid, $2, $3, '/api/v1', nullif($4, ''), $5, 'accepted', $6)`,
		id, c.tenant(), hex.EncodeToString(sum[:]), u.ContentType, len(u.Data), s.d.Pack.Name)
	return err
}
