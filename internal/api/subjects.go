package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"
)

func itoa(n int) string { return strconv.Itoa(n) }

// Subject is an enrolled identity.
type Subject struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Metadata  json.RawMessage `json:"metadata"`
	FaceCount int             `json:"face_count"`
	CreatedAt time.Time       `json:"created_at"`
}

type subjectRequest struct {
	Name     *string         `json:"name,omitempty"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

const subjectColumns = `s.id::text, s.name, s.metadata, (SELECT count(*) FROM facestream.faces f WHERE f.tenant_id = s.tenant_id AND f.subject_id = s.id), s.created_at`

func scanSubject(row pgx.Row) (Subject, error) {
	var sj Subject
	var meta []byte
	err := row.Scan(&sj.ID, &sj.Name, &meta, &sj.FaceCount, &sj.CreatedAt)
	sj.Metadata = meta
	return sj, err
}

func validMetadata(m json.RawMessage) bool {
	return len(m) == 0 || strings.HasPrefix(strings.TrimSpace(string(m)), "{")
}

// POST /v1/subjects
func (s *Server) createSubject(w http.ResponseWriter, r *http.Request, c *call) {
	in, p := readInput(r, s.lim, false)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	var req subjectRequest
	if p := in.decode(&req); p != nil {
		writeProblem(w, r, p)
		return
	}
	if req.Name == nil || strings.TrimSpace(*req.Name) == "" || !validMetadata(req.Metadata) {
		writeProblem(w, r, problem(http.StatusBadRequest, CodeInvalidRequest, "a subject needs a non-empty name; metadata must be a JSON object"))
		return
	}
	meta := []byte(req.Metadata)
	if len(meta) == 0 {
		meta = []byte("{}")
	}
	if _, err := s.d.DB.Exec(r.Context(), `INSERT INTO facestream.tenants (id) VALUES ($1) ON CONFLICT DO NOTHING`, c.tenant()); err != nil {
		writeProblem(w, r, s.internal(r.Context(), "create subject", err))
		return
	}
	sj, err := scanSubject(s.d.DB.QueryRow(r.Context(), `WITH s AS (INSERT INTO facestream.subjects (tenant_id, name, metadata) VALUES ($1, $2, $3) RETURNING *)
SELECT s.id::text, s.name, s.metadata, 0, s.created_at FROM s`, c.tenant(), strings.TrimSpace(*req.Name), meta))
	if err != nil {
		writeProblem(w, r, s.internal(r.Context(), "create subject", err))
		return
	}
	w.Header().Set("Location", "/v1/subjects/"+sj.ID)
	writeJSON(w, http.StatusCreated, sj)
}

// GET /v1/subjects?name=&limit=&offset=
func (s *Server) listSubjects(w http.ResponseWriter, r *http.Request, c *call) {
	limit, offset := 100, 0
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeProblem(w, r, problem(http.StatusBadRequest, CodeInvalidRequest, "limit must be 1..1000"))
			return
		}
		limit = n
	}
	if v := r.URL.Query().Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeProblem(w, r, problem(http.StatusBadRequest, CodeInvalidRequest, "offset must be 0 or more"))
			return
		}
		offset = n
	}
	rows, err := s.d.DB.Query(r.Context(), `SELECT `+subjectColumns+` FROM facestream.subjects s
WHERE s.tenant_id = $1 AND ($2 = '' OR s.name = $2) ORDER BY s.created_at, s.id LIMIT $3 OFFSET $4`,
		c.tenant(), r.URL.Query().Get("name"), limit, offset)
	if err != nil {
		writeProblem(w, r, s.internal(r.Context(), "list subjects", err))
		return
	}
	defer rows.Close()
	out := []Subject{}
	for rows.Next() {
		sj, err := scanSubject(rows)
		if err != nil {
			writeProblem(w, r, s.internal(r.Context(), "list subjects", err))
			return
		}
		out = append(out, sj)
	}
	if err := rows.Err(); err != nil {
		writeProblem(w, r, s.internal(r.Context(), "list subjects", err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"subjects": out})
}

func (s *Server) subjectOr404(w http.ResponseWriter, r *http.Request, c *call) (Subject, bool) {
	id, ok := parseID(r.PathValue("id"))
	if !ok {
		writeProblem(w, r, problem(http.StatusNotFound, CodeNotFound, "no such subject"))
		return Subject{}, false
	}
	sj, err := scanSubject(s.d.DB.QueryRow(r.Context(), `SELECT `+subjectColumns+` FROM facestream.subjects s WHERE s.tenant_id = $1 AND s.id = $2`, c.tenant(), id))
	if errors.Is(err, pgx.ErrNoRows) {
		writeProblem(w, r, problem(http.StatusNotFound, CodeNotFound, "no such subject"))
		return Subject{}, false
	}
	if err != nil {
		writeProblem(w, r, s.internal(r.Context(), "load subject", err))
		return Subject{}, false
	}
	return sj, true
}

// GET /v1/subjects/{id}
func (s *Server) getSubject(w http.ResponseWriter, r *http.Request, c *call) {
	if sj, ok := s.subjectOr404(w, r, c); ok {
		writeJSON(w, http.StatusOK, sj)
	}
}

// PATCH /v1/subjects/{id}: rename and/or replace the metadata.
func (s *Server) renameSubject(w http.ResponseWriter, r *http.Request, c *call) {
	in, p := readInput(r, s.lim, false)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	var req subjectRequest
	if p := in.decode(&req); p != nil {
		writeProblem(w, r, p)
		return
	}
	if (req.Name != nil && strings.TrimSpace(*req.Name) == "") || !validMetadata(req.Metadata) || (req.Name == nil && len(req.Metadata) == 0) {
		writeProblem(w, r, problem(http.StatusBadRequest, CodeInvalidRequest, "send a non-empty name and/or a metadata object"))
		return
	}
	sj, ok := s.subjectOr404(w, r, c)
	if !ok {
		return
	}
	var name *string
	if req.Name != nil {
		n := strings.TrimSpace(*req.Name)
		name = &n
	}
	var meta []byte
	if len(req.Metadata) > 0 {
		meta = req.Metadata
	}
	if _, err := s.d.DB.Exec(r.Context(), `UPDATE facestream.subjects SET name = coalesce($3, name), metadata = coalesce($4, metadata)
WHERE tenant_id = $1 AND id = $2::uuid`, c.tenant(), sj.ID, name, meta); err != nil {
		writeProblem(w, r, s.internal(r.Context(), "rename subject", err))
		return
	}
	s.getSubject(w, r, c)
}

type enrollRequest struct {
	FaceID string `json:"face_id,omitempty"`
	Image  string `json:"image,omitempty"`
}

// POST /v1/subjects/{id}/faces: make a face (by id, or the best face of an
// uploaded image) a reference face of the subject.
func (s *Server) enroll(w http.ResponseWriter, r *http.Request, c *call) {
	in, p := readInput(r, s.lim, false)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	var req enrollRequest
	if p := in.decode(&req); p != nil {
		writeProblem(w, r, p)
		return
	}
	sj, ok := s.subjectOr404(w, r, c)
	if !ok {
		return
	}
	q, p := s.queryFace(r.Context(), c, in, req.Image, req.FaceID, bestForEnrolment)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	if _, err := s.d.DB.Exec(r.Context(), `UPDATE facestream.faces SET subject_id = $3::uuid WHERE tenant_id = $1 AND id = $2::uuid`, c.tenant(), q.face.ID, sj.ID); err != nil {
		writeProblem(w, r, s.internal(r.Context(), "enroll", err))
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"subject_id": sj.ID, "face_id": q.face.ID, "image_id": q.imageID, "box": q.face.Box})
}

type identifyRequest struct {
	topKQuery
}

// Candidate is a subject considered by identify.
type Candidate struct {
	SubjectID  string  `json:"subject_id"`
	Name       string  `json:"name"`
	Similarity float64 `json:"similarity"`
	FaceID     string  `json:"face_id"`
}

// IdentifyResult is the answer of POST /v1/subjects/identify.
type IdentifyResult struct {
	// Result is "match" (Subject is the best candidate at or above the
	// threshold) or "unknown" (no enrolled subject reaches it).
	Result     string       `json:"result"`
	Subject    *Candidate   `json:"subject"`
	Threshold  float32      `json:"threshold"`
	Query      ComparedFace `json:"query"`
	Candidates []Candidate  `json:"candidates"`
}

// POST /v1/subjects/identify: 1:N against the tenant's enrolled subjects.
func (s *Server) identify(w http.ResponseWriter, r *http.Request, c *call) {
	var req identifyRequest
	q, ok := s.readTopK(w, r, c, &req, 5)
	if !ok {
		return
	}
	rows, err := s.d.DB.Query(r.Context(), `SELECT subject_id::text, name, similarity, face_id::text FROM facestream.identify($1, $2, $3, $4, NULL, $5)`,
		c.tenant(), q.face.model, pgvector.NewVector(q.face.vector), req.K, s.cfg.EfSearch)
	if err != nil {
		writeProblem(w, r, s.internal(r.Context(), "identify", err))
		return
	}
	defer rows.Close()
	res := IdentifyResult{Result: "unknown", Threshold: s.threshold, Query: ComparedFace{ImageID: q.imageID, FaceID: q.face.ID, Box: q.face.Box}, Candidates: []Candidate{}}
	for rows.Next() {
		var cd Candidate
		if err := rows.Scan(&cd.SubjectID, &cd.Name, &cd.Similarity, &cd.FaceID); err != nil {
			writeProblem(w, r, s.internal(r.Context(), "identify", err))
			return
		}
		res.Candidates = append(res.Candidates, cd)
	}
	if err := rows.Err(); err != nil {
		writeProblem(w, r, s.internal(r.Context(), "identify", err))
		return
	}
	if len(res.Candidates) > 0 && q.face.model == s.recognizer && res.Candidates[0].Similarity >= float64(s.threshold) {
		best := res.Candidates[0]
		res.Result, res.Subject = "match", &best
	}
	writeJSON(w, http.StatusOK, res)
}
