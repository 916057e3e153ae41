package api

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/pgvector/pgvector-go"

	"github.com/facestream/facestream/internal/face"
	"github.com/facestream/facestream/pkg/events"
)

type searchFilters struct {
	SubjectID    string     `json:"subject_id,omitempty"`
	EnrolledOnly bool       `json:"enrolled_only,omitempty"`
	From         *time.Time `json:"from,omitempty"`
	To           *time.Time `json:"to,omitempty"`
	Source       string     `json:"source,omitempty"`
}

type searchRequest struct {
	topKQuery
	MinSimilarity *float64       `json:"min_similarity,omitempty"`
	Filters       *searchFilters `json:"filters,omitempty"`
}

// topKQuery is what search and identify both take: the query face (an image,
// whose largest face is used, or a stored face id) and how many answers.
type topKQuery struct {
	Image  string `json:"image,omitempty"`
	FaceID string `json:"face_id,omitempty"`
	K      int    `json:"k,omitempty"`
}

func (q *topKQuery) topK() *topKQuery { return q }

// readTopK reads a search or identify request into req, defaults its k to
// defaultK, checks the range (1..100) and finds the query face. On failure
// it has written the problem and returns false.
func (s *Server) readTopK(w http.ResponseWriter, r *http.Request, c *call, req interface{ topK() *topKQuery }, defaultK int) (queryFace, bool) {
	in, p := readInput(r, s.lim, false)
	if p != nil {
		writeProblem(w, r, p)
		return queryFace{}, false
	}
	if p := in.decode(req); p != nil {
		writeProblem(w, r, p)
		return queryFace{}, false
	}
	q := req.topK()
	if q.K == 0 {
		q.K = defaultK
	}
	if q.K < 1 || q.K > 100 {
		writeProblem(w, r, problem(http.StatusBadRequest, CodeInvalidRequest, "k must be between 1 and 100"))
		return queryFace{}, false
	}
	face, p := s.queryFace(r.Context(), c, in, q.Image, q.FaceID, largest)
	if p != nil {
		writeProblem(w, r, p)
		return queryFace{}, false
	}
	return face, true
}

// SearchHit is one similar face.
type SearchHit struct {
	FaceID      string     `json:"face_id"`
	ImageID     string     `json:"image_id"`
	SubjectID   string     `json:"subject_id,omitempty"`
	Similarity  float64    `json:"similarity"`
	Box         events.Box `json:"box"`
	Source      string     `json:"source"`
	SubmittedAt time.Time  `json:"submitted_at"`
}

// SearchResult is the answer of POST /v1/search.
type SearchResult struct {
	Query     ComparedFace `json:"query"`
	Model     string       `json:"model"`
	Threshold float32      `json:"threshold"`
	Hits      []SearchHit  `json:"hits"`
}

// searchCandidates bounds how many nearest faces are filtered.
const searchCandidates = 1000

// POST /v1/search: the top k faces of the tenant most similar to the query
// face, by facestream.search_faces over the model's HNSW index, then the
// filters (subject, time range, source) on the nearest candidates. The query
// image's own faces (or the query face) are left out.
func (s *Server) search(w http.ResponseWriter, r *http.Request, c *call) {
	var req searchRequest
	q, ok := s.readTopK(w, r, c, &req, 10)
	if !ok {
		return
	}
	f := req.Filters
	if f == nil {
		f = &searchFilters{}
	}
	if f.SubjectID != "" {
		if _, ok := parseID(f.SubjectID); !ok {
			writeProblem(w, r, problem(http.StatusBadRequest, CodeInvalidRequest, "filters.subject_id is not a subject id"))
			return
		}
	}
	candidates := req.K + 64
	if f.SubjectID != "" || f.From != nil || f.To != nil || f.Source != "" {
		candidates = searchCandidates
	}
	rows, err := s.d.DB.Query(r.Context(), `
SELECT r.face_id::text, r.image_id::text, coalesce(r.subject_id::text, ''), r.similarity,
       f.box_x1, f.box_y1, f.box_x2, f.box_y2, i.source, i.submitted_at
FROM facestream.search_faces($1, $2, $3, $4, $5, $6, $14) r
JOIN facestream.faces f ON f.tenant_id = $1 AND f.id = r.face_id
JOIN facestream.images i ON i.tenant_id = $1 AND i.id = r.image_id
WHERE r.image_id::text <> $7 AND r.face_id::text <> $8
  AND ($9 = '' OR r.subject_id::text = $9)
  AND ($10::timestamptz IS NULL OR i.submitted_at >= $10)
  AND ($11::timestamptz IS NULL OR i.submitted_at < $11)
  AND ($12 = '' OR i.source = $12)
ORDER BY r.similarity DESC
LIMIT $13`,
		c.tenant(), q.face.model, pgvector.NewVector(q.face.vector), candidates, req.MinSimilarity, f.EnrolledOnly || f.SubjectID != "",
		excludeImage(req.FaceID, q.imageID), q.face.ID, f.SubjectID, f.From, f.To, f.Source, req.K, s.cfg.EfSearch)
	if err != nil {
		writeProblem(w, r, s.internal(r.Context(), "search", err))
		return
	}
	defer rows.Close()
	res := SearchResult{Query: ComparedFace{ImageID: q.imageID, FaceID: q.face.ID, Box: q.face.Box}, Model: q.face.model, Threshold: s.threshold, Hits: []SearchHit{}}
	for rows.Next() {
		var h SearchHit
		if err := rows.Scan(&h.FaceID, &h.ImageID, &h.SubjectID, &h.Similarity, &h.Box[0], &h.Box[1], &h.Box[2], &h.Box[3], &h.Source, &h.SubmittedAt); err != nil {
			writeProblem(w, r, s.internal(r.Context(), "search", err))
			return
		}
		res.Hits = append(res.Hits, h)
	}
	if err := rows.Err(); err != nil {
		writeProblem(w, r, s.internal(r.Context(), "search", err))
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// excludeImage is the image whose faces a search leaves out: the uploaded
// query image (its faces would find themselves), none for a face id.
func excludeImage(faceID, imageID string) string {
	if faceID != "" {
		return ""
	}
	return imageID
}

// queryFace resolves a request's face: face_id, or exactly one image.
func (s *Server) queryFace(ctx context.Context, c *call, in input, image, faceID string, pick func([]FaceOut) int) (queryFace, *Problem) {
	ims, p := s.images(in, image)
	if p != nil {
		return queryFace{}, p
	}
	switch {
	case faceID != "" && len(ims) == 0:
		return s.resolveFace(ctx, c, faceID, nil, pick)
	case faceID == "" && len(ims) == 1:
		return s.resolveFace(ctx, c, "", &ims[0], pick)
	}
	return queryFace{}, problem(http.StatusBadRequest, CodeInvalidRequest, "send either face_id or exactly one image")
}

type batchRequest struct {
	Images  []string   `json:"images,omitempty"`
	Options *optionsIn `json:"options,omitempty"`
}

// BatchItem is one image's outcome in a batch.
type BatchItem struct {
	Index  int       `json:"index"`
	Result *ImageOut `json:"result,omitempty"`
	Error  *Problem  `json:"error,omitempty"`
}

// BatchFace is one row (and column) of the similarity matrix.
type BatchFace struct {
	Image  int    `json:"image"`
	FaceID string `json:"face_id"`
}

// BatchResult is the answer of POST /v1/batch.
type BatchResult struct {
	Items []BatchItem `json:"items"`
	// Faces are the largest face (with an embedding) of each image that has
	// one, in image order; Matrix[i][j] is the cosine similarity of Faces[i]
	// and Faces[j] (1 on the diagonal).
	Faces     []BatchFace `json:"faces"`
	Matrix    [][]float32 `json:"matrix"`
	Threshold float32     `json:"threshold"`
	Model     string      `json:"model"`
}

// POST /v1/batch: N images analysed concurrently.
func (s *Server) batch(w http.ResponseWriter, r *http.Request, c *call) {
	in, p := readInput(r, s.lim, false)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	var req batchRequest
	if p := in.decode(&req); p != nil {
		writeProblem(w, r, p)
		return
	}
	ims, p := s.images(in, req.Images...)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	if len(ims) == 0 || len(ims) > s.cfg.MaxBatch {
		writeProblem(w, r, problem(http.StatusBadRequest, CodeInvalidRequest, "send between 1 and "+itoa(s.cfg.MaxBatch)+" images"))
		return
	}
	// Overloaded: refuse the whole batch rather than answer 200 with a 503
	// per image (an image may still be refused alone if the mark is reached
	// during the batch).
	if p := s.adm.check(r.Context()); p != nil {
		writeProblem(w, r, p)
		return
	}
	res := BatchResult{Items: make([]BatchItem, len(ims)), Faces: []BatchFace{}, Matrix: [][]float32{}, Threshold: s.threshold, Model: s.recognizer}
	var (
		wg  sync.WaitGroup
		sem = make(chan struct{}, 4)
	)
	for i, u := range ims {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			img, p := s.analyzeOne(r.Context(), c, u, req.Options.events())
			if p != nil {
				res.Items[i] = BatchItem{Index: i, Error: p}
				return
			}
			res.Items[i] = BatchItem{Index: i, Result: &img}
		})
	}
	wg.Wait()
	var vecs [][]float32
	for i, it := range res.Items {
		if it.Result == nil {
			continue
		}
		if j := largest(it.Result.Faces); j >= 0 && it.Result.Faces[j].model == s.recognizer {
			res.Faces = append(res.Faces, BatchFace{Image: i, FaceID: it.Result.Faces[j].ID})
			vecs = append(vecs, it.Result.Faces[j].vector)
		}
	}
	for i := range vecs {
		row := make([]float32, len(vecs))
		for j := range vecs {
			row[j] = face.Cosine(vecs[i], vecs[j])
		}
		res.Matrix = append(res.Matrix, row)
	}
	writeJSON(w, http.StatusOK, res)
}
