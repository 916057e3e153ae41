package api

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"

	"github.com/facestream/facestream/pkg/events"
)

var errNotFound = errors.New("not found")

// parseID reads a path id; anything but a UUID is simply not found.
func parseID(s string) (uuid.UUID, bool) {
	u, err := uuid.Parse(s)
	return u, err == nil && len(s) == 36
}

// loadImage reads an image of tenant with its faces.
func (s *Server) loadImage(ctx context.Context, tenant string, id uuid.UUID) (ImageOut, error) {
	var (
		o          ImageOut
		reason     *string
		w, h, n    *int32
		analyzedAt *time.Time
		submitted  time.Time
	)
	err := s.d.DB.QueryRow(ctx, `SELECT id::text, status, reject_reason, width, height, sha256, model_pack, face_count, submitted_at, analyzed_at
FROM facestream.images WHERE tenant_id = $1 AND id = $2`, tenant, id).Scan(&o.ID, &o.Status, &reason, &w, &h, &o.SHA256, &o.ModelPack, &n, &submitted, &analyzedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return ImageOut{}, errNotFound
	}
	if err != nil {
		return ImageOut{}, fmt.Errorf("load image: %w", err)
	}
	if reason != nil {
		o.RejectReason = *reason
	}
	if w != nil && h != nil {
		o.Width, o.Height = int(*w), int(*h)
	}
	if n != nil {
		o.FaceCount = int(*n)
	}
	o.SubmittedAt, o.AnalyzedAt = &submitted, analyzedAt
	o.Faces, err = s.loadFaces(ctx, tenant, `f.image_id = $2`, id)
	if err != nil {
		return ImageOut{}, err
	}
	return o, nil
}

// loadFaces reads the faces of tenant matching where ($2 is arg), with
// their embedding of any model.
func (s *Server) loadFaces(ctx context.Context, tenant, where string, arg any) ([]FaceOut, error) {
	rows, err := s.d.DB.Query(ctx, `
SELECT f.id::text, f.face_index, f.box_x1, f.box_y1, f.box_x2, f.box_y2, f.landmarks, f.det_score, f.age, f.gender,
       f.gender_score, f.emotion, f.emotion_scores, f.yaw, f.pitch, f.roll, f.sharpness, f.brightness, f.face_size,
       f.usable, coalesce(f.subject_id::text, ''), e.model, e.embedding
FROM facestream.faces f
LEFT JOIN LATERAL (SELECT model, embedding FROM facestream.embeddings WHERE face_id = f.id ORDER BY model LIMIT 1) e ON true
WHERE f.tenant_id = $1 AND `+where+` ORDER BY f.image_id, f.face_index`, tenant, arg)
	if err != nil {
		return nil, fmt.Errorf("load faces: %w", err)
	}
	defer rows.Close()
	out := []FaceOut{}
	for rows.Next() {
		var (
			f                    FaceOut
			lm                   []float32
			gender, emotion      *string
			gScore               *float32
			emo                  map[string]float32
			yaw, pitch, roll     *float32
			sharp, bright, fsize *float32
			usable               bool
			model                *string
			vec                  *pgvector.Vector
		)
		if err := rows.Scan(&f.ID, &f.Index, &f.Box[0], &f.Box[1], &f.Box[2], &f.Box[3], &lm, &f.Score, &f.Age, &gender,
			&gScore, &emotion, &emo, &yaw, &pitch, &roll, &sharp, &bright, &fsize, &usable, &f.SubjectID, &model, &vec); err != nil {
			return nil, fmt.Errorf("load faces: %w", err)
		}
		for i := 0; i < 5 && 2*i+1 < len(lm); i++ {
			f.Landmarks[i] = [2]float32{lm[2*i], lm[2*i+1]}
		}
		if gender != nil && gScore != nil {
			f.Gender = &events.Gender{Label: *gender, Score: *gScore}
		}
		if emotion != nil {
			f.Emotion = &events.Emotion{Label: *emotion, Score: emo[*emotion], Probabilities: emo}
		}
		if yaw != nil && pitch != nil && roll != nil {
			f.Pose = &events.Pose{Yaw: *yaw, Pitch: *pitch, Roll: *roll}
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
			f.Quality = q
		}
		if model != nil && vec != nil {
			f.model, f.vector = *model, vec.Slice()
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load faces: %w", err)
	}
	return out, nil
}

// loadFace reads one face of tenant by id (errNotFound when the tenant has
// none).
func (s *Server) loadFace(ctx context.Context, tenant, id string) (FaceOut, string, error) {
	u, ok := parseID(id)
	if !ok {
		return FaceOut{}, "", errNotFound
	}
	faces, err := s.loadFaces(ctx, tenant, `f.id = $2`, u)
	if err != nil {
		return FaceOut{}, "", err
	}
	if len(faces) == 0 {
		return FaceOut{}, "", errNotFound
	}
	var imageID string
	if err := s.d.DB.QueryRow(ctx, `SELECT image_id::text FROM facestream.faces WHERE tenant_id = $1 AND id = $2`, tenant, u).Scan(&imageID); err != nil {
		return FaceOut{}, "", fmt.Errorf("load face: %w", err)
	}
	return faces[0], imageID, nil
}

// inTenantTx runs f in a transaction whose audit actor is the API key.
func (s *Server) inTenantTx(ctx context.Context, c *call, f func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.d.DB, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('facestream.actor', $1, true)`, "api_key:"+c.key.Prefix); err != nil {
			return err
		}
		return f(tx)
	})
}
