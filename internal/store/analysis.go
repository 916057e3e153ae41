package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"

	"github.com/facestream/facestream/pkg/events"
)

var shaRe = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Analysis is the result of analysing one image, as SaveAnalysis stores it.
type Analysis struct {
	// Image is what ingest established; Image.ImageID and Image.SHA256 are
	// required. Image.Tenant empty means DefaultTenant.
	Image events.ImageInfo
	// Pack is the model pack that analysed the image (required).
	Pack string
	// Source is who submitted the image (the CloudEvent source), optional.
	Source string
	// ContentType is the media type of the image, optional.
	ContentType string
	// Detector is the detection model that found the faces, optional.
	Detector string
	// Faces are stored by their Index; a face's Embedding, when set, is
	// stored for its model.
	Faces []events.Face
	// AnalyzedAt is when the analysis finished. It is part of the result,
	// not the time of storing, so that storing twice changes nothing.
	AnalyzedAt time.Time
}

// SaveAnalysis stores an analysis in one transaction: the image row (status
// analyzed, face count, times), its faces (upserted by image and face index;
// faces beyond len(Faces) left by an earlier analysis are removed) and their
// embeddings. The tenant is created when missing and each model's HNSW index
// once per process. Storing the same analysis again leaves the same rows.
// An image id already stored for another tenant is ErrInvalid; an image
// that was erased (facestream.erase_image) is ErrErased and nothing is
// stored, whether the erasure committed before or while this runs.
func (s *Store) SaveAnalysis(ctx context.Context, a Analysis) error {
	tenant := TenantOf(a.Image.Tenant)
	switch {
	case a.Image.ImageID == "":
		return fmt.Errorf("save analysis: no image id: %w", ErrInvalid)
	case !tenantRe.MatchString(tenant):
		return fmt.Errorf("save analysis of %s: tenant %q: %w", a.Image.ImageID, tenant, ErrInvalid)
	case !shaRe.MatchString(a.Image.SHA256):
		return fmt.Errorf("save analysis of %s: sha256 %q: %w", a.Image.ImageID, a.Image.SHA256, ErrInvalid)
	case a.Pack == "":
		return fmt.Errorf("save analysis of %s: no model pack: %w", a.Image.ImageID, ErrInvalid)
	}
	seen := map[int]bool{}
	for _, f := range a.Faces {
		if f.Index < 0 || seen[f.Index] {
			return fmt.Errorf("save analysis of %s: face index %d negative or repeated: %w", a.Image.ImageID, f.Index, ErrInvalid)
		}
		seen[f.Index] = true
		if e := f.Embedding; e != nil {
			if e.Model == "" || len(e.Vector) == 0 {
				return fmt.Errorf("save analysis of %s: face %d: embedding without model or vector: %w", a.Image.ImageID, f.Index, ErrInvalid)
			}
			if err := s.ensureIndex(ctx, e.Model, len(e.Vector)); err != nil {
				return fmt.Errorf("save analysis of %s: %w", a.Image.ImageID, err)
			}
		}
	}
	imageID := ImageUUID(a.Image.ImageID)
	analyzedAt := utc(a.AnalyzedAt)
	if analyzedAt.IsZero() {
		return fmt.Errorf("save analysis of %s: no analysis time: %w", a.Image.ImageID, ErrInvalid)
	}
	submittedAt := utc(a.Image.SubmittedAt)
	if submittedAt.IsZero() {
		submittedAt = analyzedAt
	}

	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := ensureTenant(ctx, tx, tenant); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `
INSERT INTO facestream.images AS i (id, tenant_id, sha256, source, content_type, width, height, byte_size,
    status, reject_reason, model_pack, face_count, submitted_at, analyzed_at, detector)
VALUES ($1, $2, $3, $4, nullif($5, ''), nullif($6, 0), nullif($7, 0), $8, 'analyzed', NULL, $9, $10, $11, $12, nullif($13, ''))
ON CONFLICT (id) DO UPDATE SET
    sha256 = EXCLUDED.sha256, source = EXCLUDED.source, content_type = EXCLUDED.content_type,
    width = EXCLUDED.width, height = EXCLUDED.height, byte_size = EXCLUDED.byte_size,
    status = 'analyzed', reject_reason = NULL, model_pack = EXCLUDED.model_pack,
    face_count = EXCLUDED.face_count, submitted_at = EXCLUDED.submitted_at, analyzed_at = EXCLUDED.analyzed_at,
    detector = EXCLUDED.detector
WHERE i.tenant_id = EXCLUDED.tenant_id`,
			imageID, tenant, a.Image.SHA256, a.Source, a.ContentType, a.Image.Width, a.Image.Height, a.Image.Size,
			a.Pack, len(a.Faces), submittedAt, analyzedAt, a.Detector)
		if err != nil {
			return fmt.Errorf("upsert image: %w", classify(err))
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("upsert image: id %s belongs to another tenant: %w", imageID, ErrInvalid)
		}

		var b pgx.Batch
		b.Queue(`DELETE FROM facestream.faces WHERE tenant_id = $1 AND image_id = $2 AND face_index >= $3`,
			tenant, imageID, len(a.Faces))
		for _, f := range a.Faces {
			queueFace(&b, tenant, imageID, a.Pack, f)
		}
		if err := tx.SendBatch(ctx, &b).Close(); err != nil {
			return fmt.Errorf("upsert faces: %w", classify(err))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save analysis of %s: %w", a.Image.ImageID, err)
	}
	return nil
}

// queueFace queues the upsert of one face and its embedding (or the removal
// of embeddings it no longer has).
func queueFace(b *pgx.Batch, tenant string, imageID uuid.UUID, pack string, f events.Face) {
	id := faceUUID(imageID, f.Index)
	var (
		age, genderScore    *float32
		gender, emotion     *string
		emoScores           map[string]float32
		yaw, pitch, roll    *float32
		sharp, bright, size *float32
		usable              = true
		reason              *string
	)
	if at := f.Attributes; at != nil {
		if at.Age != nil {
			v := max(*at.Age, 0)
			age = &v
		}
		if g := at.Gender; g != nil {
			gender, genderScore = &g.Label, &g.Score
		}
		if e := at.Emotion; e != nil {
			emotion, emoScores = &e.Label, e.Probabilities
		}
		if p := at.Pose; p != nil {
			yaw, pitch, roll = &p.Yaw, &p.Pitch, &p.Roll
		}
		if q := at.Quality; q != nil {
			sharp, bright, size, usable = &q.Sharpness, &q.Brightness, &q.FaceSize, q.Usable
			if q.Reason != "" {
				r := string(q.Reason)
				reason = &r
			}
		}
	}
	lm := make([]float32, 0, 10)
	for _, p := range f.Landmarks {
		lm = append(lm, p[0], p[1])
	}
	var scores any
	if emoScores != nil {
		scores = emoScores
	}
	b.Queue(`
INSERT INTO facestream.faces AS f (id, tenant_id, image_id, face_index, box_x1, box_y1, box_x2, box_y2, landmarks,
    det_score, age, gender, gender_score, emotion, emotion_scores, yaw, pitch, roll, sharpness, brightness,
    face_size, usable, model_pack, quality_reason)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)
ON CONFLICT (image_id, face_index) DO UPDATE SET
    box_x1 = EXCLUDED.box_x1, box_y1 = EXCLUDED.box_y1, box_x2 = EXCLUDED.box_x2, box_y2 = EXCLUDED.box_y2,
    landmarks = EXCLUDED.landmarks, det_score = EXCLUDED.det_score, age = EXCLUDED.age, gender = EXCLUDED.gender,
    gender_score = EXCLUDED.gender_score, emotion = EXCLUDED.emotion, emotion_scores = EXCLUDED.emotion_scores,
    yaw = EXCLUDED.yaw, pitch = EXCLUDED.pitch, roll = EXCLUDED.roll, sharpness = EXCLUDED.sharpness,
    brightness = EXCLUDED.brightness, face_size = EXCLUDED.face_size, usable = EXCLUDED.usable,
    model_pack = EXCLUDED.model_pack, quality_reason = EXCLUDED.quality_reason`,
		id, tenant, imageID, f.Index, f.Box[0], f.Box[1], f.Box[2], f.Box[3], lm,
		f.Score, age, gender, genderScore, emotion, scores, yaw, pitch, roll, sharp, bright,
		size, usable, pack, reason)
	if e := f.Embedding; e != nil {
		b.Queue(`DELETE FROM facestream.embeddings WHERE face_id = $1 AND model <> $2`, id, e.Model)
		b.Queue(`
INSERT INTO facestream.embeddings (face_id, tenant_id, model, dim, embedding) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (face_id, model) DO UPDATE SET dim = EXCLUDED.dim, embedding = EXCLUDED.embedding`,
			id, tenant, e.Model, len(e.Vector), pgvector.NewVector(e.Vector))
	} else {
		b.Queue(`DELETE FROM facestream.embeddings WHERE face_id = $1`, id)
	}
}

// Rejection is an image that will not be analysed, as SaveRejection stores
// it.
type Rejection struct {
	ImageID string
	// Tenant empty means DefaultTenant.
	Tenant  string
	Reason  events.RejectReason
	Message string
	// SHA256 and Size describe the rejected bytes when known; an unknown
	// sha256 is stored as 64 zeros (the column is required).
	SHA256 string
	Size   int64
	// Pack is the model pack the image was submitted for (required).
	Pack        string
	Source      string
	SubmittedAt time.Time
}

// SaveRejection records that an image was rejected: status rejected with the
// reason. It is idempotent and never overwrites an analysed image (it then
// does nothing and returns nil). An erased image is ErrErased and nothing is
// stored.
func (s *Store) SaveRejection(ctx context.Context, r Rejection) error {
	tenant := TenantOf(r.Tenant)
	switch {
	case r.ImageID == "":
		return fmt.Errorf("save rejection: no image id: %w", ErrInvalid)
	case !tenantRe.MatchString(tenant):
		return fmt.Errorf("save rejection of %s: tenant %q: %w", r.ImageID, tenant, ErrInvalid)
	case r.Reason == "":
		return fmt.Errorf("save rejection of %s: no reason: %w", r.ImageID, ErrInvalid)
	case r.Pack == "":
		return fmt.Errorf("save rejection of %s: no model pack: %w", r.ImageID, ErrInvalid)
	}
	sha := r.SHA256
	if !shaRe.MatchString(sha) {
		sha = zeroSHA
	}
	submittedAt := utc(r.SubmittedAt)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := ensureTenant(ctx, tx, tenant); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `
INSERT INTO facestream.images AS i (id, tenant_id, sha256, source, byte_size, status, reject_reason, model_pack, submitted_at)
VALUES ($1, $2, $3, $4, $5, 'rejected', $6, $7, coalesce($8, now()))
ON CONFLICT (id) DO UPDATE SET status = 'rejected', reject_reason = EXCLUDED.reject_reason,
    sha256 = EXCLUDED.sha256, byte_size = EXCLUDED.byte_size, model_pack = EXCLUDED.model_pack,
    submitted_at = EXCLUDED.submitted_at
WHERE i.tenant_id = EXCLUDED.tenant_id AND i.status <> 'analyzed'`,
			ImageUUID(r.ImageID), tenant, sha, r.Source, max(r.Size, 0), string(r.Reason), r.Pack, nullTime(submittedAt))
		if err != nil {
			return fmt.Errorf("upsert image: %w", classify(err))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save rejection of %s: %w", r.ImageID, err)
	}
	return nil
}

// ImageErased reports whether image imageID was erased
// (facestream.erase_image): its id can never be stored again.
func (s *Store) ImageErased(ctx context.Context, imageID string) (bool, error) {
	var erased bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM facestream.erased_images WHERE image_id = $1)`,
		ImageUUID(imageID)).Scan(&erased)
	if err != nil {
		return false, fmt.Errorf("check erasure of %s: %w", imageID, err)
	}
	return erased, nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// Cached is a stored analysis found by LookupCached.
type Cached struct {
	// ImageID is the database id (a UUID) of the image analysed earlier.
	ImageID    string
	Width      int
	Height     int
	AnalyzedAt time.Time
	// Detector is the detection model that found the faces; empty for an
	// analysis stored before migration 0005.
	Detector string
	// Recognizer is the embedding model of the faces; empty when no face
	// has an embedding.
	Recognizer string
	// Faces carry what was stored: box, landmarks, score, embedding and
	// attributes, a quality's reason included (ID and Match are left
	// empty).
	Faces []events.Face
}

// LookupCached returns the most recent stored analysis of the same bytes
// (sha256) for tenant with pack, and false when there is none.
func (s *Store) LookupCached(ctx context.Context, tenant, sha256, pack string) (Cached, bool, error) {
	tenant = TenantOf(tenant)
	var (
		c        Cached
		imageID  uuid.UUID
		w, h     *int32
		detector *string
	)
	err := s.pool.QueryRow(ctx, `
SELECT id, width, height, analyzed_at, detector FROM facestream.images
WHERE tenant_id = $1 AND sha256 = $2 AND model_pack = $3 AND status = 'analyzed'
ORDER BY analyzed_at DESC, id LIMIT 1`, tenant, sha256, pack).Scan(&imageID, &w, &h, &c.AnalyzedAt, &detector)
	if errors.Is(err, pgx.ErrNoRows) {
		return Cached{}, false, nil
	}
	if err != nil {
		return Cached{}, false, fmt.Errorf("lookup cached %s: %w", sha256, err)
	}
	c.ImageID = imageID.String()
	if detector != nil {
		c.Detector = *detector
	}
	if w != nil {
		c.Width = int(*w)
	}
	if h != nil {
		c.Height = int(*h)
	}
	rows, err := s.pool.Query(ctx, `
SELECT f.face_index, f.box_x1, f.box_y1, f.box_x2, f.box_y2, f.landmarks, f.det_score, f.age, f.gender,
       f.gender_score, f.emotion, f.emotion_scores, f.yaw, f.pitch, f.roll, f.sharpness, f.brightness,
       f.face_size, f.usable, f.quality_reason, e.model, e.embedding
FROM facestream.faces f
LEFT JOIN LATERAL (SELECT model, embedding FROM facestream.embeddings
                   WHERE face_id = f.id ORDER BY model LIMIT 1) e ON true
WHERE f.tenant_id = $1 AND f.image_id = $2
ORDER BY f.face_index`, tenant, imageID)
	if err != nil {
		return Cached{}, false, fmt.Errorf("lookup cached %s: faces: %w", sha256, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			f                    events.Face
			lm                   []float32
			age, gScore          *float32
			gender, emotion      *string
			emoScores            map[string]float32
			yaw, pitch, roll     *float32
			sharp, bright, fsize *float32
			usable               bool
			reason               *string
			model                *string
			vec                  *pgvector.Vector
		)
		if err := rows.Scan(&f.Index, &f.Box[0], &f.Box[1], &f.Box[2], &f.Box[3], &lm, &f.Score, &age, &gender,
			&gScore, &emotion, &emoScores, &yaw, &pitch, &roll, &sharp, &bright, &fsize, &usable, &reason, &model, &vec); err != nil {
			return Cached{}, false, fmt.Errorf("lookup cached %s: scan face: %w", sha256, err)
		}
		for i := 0; i < 5 && 2*i+1 < len(lm); i++ {
			f.Landmarks[i] = [2]float32{lm[2*i], lm[2*i+1]}
		}
		at := &events.Attributes{Age: age}
		if gender != nil && gScore != nil {
			at.Gender = &events.Gender{Label: *gender, Score: *gScore}
		}
		if emotion != nil {
			e := &events.Emotion{Label: *emotion, Probabilities: emoScores}
			e.Score = emoScores[*emotion]
			at.Emotion = e
		}
		if yaw != nil && pitch != nil && roll != nil {
			at.Pose = &events.Pose{Yaw: *yaw, Pitch: *pitch, Roll: *roll}
		}
		if sharp != nil || bright != nil || fsize != nil {
			q := &events.Quality{DetScore: f.Score, Usable: usable}
			if sharp != nil {
				q.Sharpness = *sharp
			}
			if bright != nil {
				q.Brightness = *bright
			}
			if fsize != nil {
				q.FaceSize = *fsize
			}
			if reason != nil {
				q.Reason = events.QualityReason(*reason)
			}
			at.Quality = q
		}
		if *at != (events.Attributes{}) {
			f.Attributes = at
		}
		if model != nil && vec != nil {
			v := vec.Slice()
			f.Embedding = &events.Embedding{Model: *model, Dim: len(v), Vector: v}
			c.Recognizer = *model
		}
		c.Faces = append(c.Faces, f)
	}
	if err := rows.Err(); err != nil {
		return Cached{}, false, fmt.Errorf("lookup cached %s: faces: %w", sha256, err)
	}
	if c.Faces == nil {
		c.Faces = []events.Face{}
	}
	return c, true, nil
}

// MatchSubjects finds, for each vector, the enrolled subject of tenant most
// similar to it among the reference faces of model (facestream.identify),
// if its similarity reaches threshold. The result has one entry per vector,
// nil where no subject matches. efSearch is the search's hnsw.ef_search
// (identify's default, 100, when 0 or less).
func (s *Store) MatchSubjects(ctx context.Context, tenant, model string, vectors [][]float32, threshold float32, efSearch int) ([]*events.Match, error) {
	tenant = TenantOf(tenant)
	out := make([]*events.Match, len(vectors))
	if len(vectors) == 0 {
		return out, nil
	}
	if efSearch <= 0 {
		efSearch = 100
	}
	var b pgx.Batch
	for _, v := range vectors {
		b.Queue(`SELECT subject_id, name, similarity FROM facestream.identify($1, $2, $3, 1, $4, $5)`,
			tenant, model, pgvector.NewVector(v), float64(threshold), efSearch)
	}
	br := s.pool.SendBatch(ctx, &b)
	defer br.Close()
	for i := range vectors {
		var (
			id   uuid.UUID
			name string
			sim  float64
		)
		err := br.QueryRow().Scan(&id, &name, &sim)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("match subjects (%s): %w", model, classify(err))
		}
		out[i] = &events.Match{SubjectID: id.String(), SubjectName: name, Similarity: float32(sim), Threshold: threshold}
	}
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("match subjects (%s): %w", model, classify(err))
	}
	return out, nil
}
