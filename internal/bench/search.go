package bench

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgvector/pgvector-go"
	pgxvec "github.com/pgvector/pgvector-go/pgx"

	"github.com/facestream/facestream/migrations"
)

// SearchConfig configures the similarity-search benchmark.
type SearchConfig struct {
	// AdminDSN names the server and a role that may create databases; the
	// benchmark runs in a fresh database and drops it afterwards.
	AdminDSN string
	// Vectors is the number of stored embeddings, Dim their dimension.
	Vectors, Dim int
	// FacesPerIdentity is the mean cluster size (each identity gets
	// 1..2×FacesPerIdentity−1 faces).
	FacesPerIdentity int
	// Queries is the number of search queries (new faces of known identities).
	Queries int
	// IntrinsicDim, when above 0, draws the identity centres from a random
	// IntrinsicDim-dimensional subspace (then normalised): real face
	// embeddings are not spread evenly over the sphere; different people's
	// cosine has a standard deviation of about 1/sqrt(IntrinsicDim). 0 draws
	// the centres uniformly on the whole sphere (the hardest case).
	IntrinsicDim int
	// EfSearch lists the hnsw.ef_search values measured.
	EfSearch []int
	// Indexes lists the index configurations built and measured one after
	// the other over the same data and queries; empty is the production
	// index alone (what ensure_embedding_index builds).
	Indexes []SearchIndex
	// MaintenanceWorkMem is the maintenance_work_mem of the index build.
	MaintenanceWorkMem string
	// Seed makes the data reproducible.
	Seed   uint64
	Logger *slog.Logger
}

// SearchResult is what the search benchmark measured.
type SearchResult struct {
	Vectors, Dim, Identities, Queries int
	Model                             string
	// Intra-identity and inter-identity cosine similarity (mean), to show the
	// data is clustered like real embeddings.
	SameIdentityCos, OtherIdentityCos float64
	IntrinsicDim                      int
	CopySeconds                       float64 // images + faces + embeddings
	EmbeddingRowsPerSec               float64 // vectors ÷ CopySeconds
	MaintenanceWorkMem                string
	SharedBuffers                     string
	// Indexes holds each index configuration measured, in the order built.
	Indexes []*SearchIndexResult
}

// SearchPoint is top-10 search at one ef_search.
type SearchPoint struct {
	EfSearch  int     `json:"ef_search"`
	P50MS     float64 `json:"p50_ms"`
	P95MS     float64 `json:"p95_ms"`
	MeanMS    float64 `json:"mean_ms"`
	Recall10  float64 `json:"recall_at_10"`
	MinRecall float64 `json:"min_recall_at_10"`
	// IdentityRecall is the share of the query identity's stored faces
	// that exact top-10 finds which the index also returns: the matches
	// that matter for recognition.
	IdentityRecall float64 `json:"identity_recall"`
	// IndexBlocks is the index blocks each query read (mean): the work of
	// the search, which the machine's load does not change; IndexBlocksRead
	// those of them that were not in shared_buffers (read from the OS).
	IndexBlocks     float64 `json:"index_blocks"`
	IndexBlocksRead float64 `json:"index_blocks_read"`
	// FirstWalkP50MS and FirstWalkP95MS time the same searches with
	// pgvector's iterative scan off (search_faces' query and settings except
	// hnsw.iterative_scan, which search_faces sets to strict_order so that
	// its filters still fill k rows), interleaved with the timed searches
	// query by query so that both see the same machine: what the iterative
	// scan's bookkeeping costs a search that never needs a second batch.
	// FirstWalkSame is the share of the queries for which the two returned
	// the same faces in the same order. Not measured for halfvec indexes.
	FirstWalkP50MS float64 `json:"first_walk_p50_ms,omitempty"`
	FirstWalkP95MS float64 `json:"first_walk_p95_ms,omitempty"`
	FirstWalkSame  float64 `json:"first_walk_same,omitempty"`
}

const searchTenant = "bench"

// RunSearch runs the search benchmark.
func RunSearch(ctx context.Context, cfg SearchConfig) (*SearchResult, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	log := cfg.Logger
	dsn, drop, err := CreateDatabase(ctx, cfg.AdminDSN, "search")
	if err != nil {
		return nil, err
	}
	defer drop()
	pcfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	pcfg.AfterConnect = pgxvec.RegisterTypes
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	if _, err := migrations.Up(ctx, pool); err != nil {
		return nil, fmt.Errorf("search bench: migrate: %w", err)
	}
	res := &SearchResult{Vectors: cfg.Vectors, Dim: cfg.Dim, Queries: cfg.Queries, Model: "mobilefacenet", MaintenanceWorkMem: cfg.MaintenanceWorkMem, IntrinsicDim: cfg.IntrinsicDim}
	gen := newGenerator(cfg)
	queries := gen.queries(cfg.Queries)
	truth := make([]topK, len(queries))

	if _, err := pool.Exec(ctx, `INSERT INTO facestream.tenants (id) VALUES ($1)`, searchTenant); err != nil {
		return nil, err
	}
	if _, err := pool.Exec(ctx, `INSERT INTO facestream.embedding_models (model, dim, index_name) VALUES ($1, $2, facestream.embedding_index_name($1, $2))`, res.Model, cfg.Dim); err != nil {
		return nil, err
	}

	// COPY images, then faces, then embeddings: one image per face cluster
	// member keeps the rows simple; the ids are derived from the index.
	log.Info("generating and copying", "vectors", cfg.Vectors)
	start := time.Now()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	now := time.Now().UTC()
	sha := strings.Repeat("0", 64)
	n := cfg.Vectors
	i := 0
	if _, err := conn.Conn().CopyFrom(ctx, pgx.Identifier{"facestream", "images"},
		[]string{"id", "tenant_id", "sha256", "byte_size", "status", "model_pack", "face_count", "analyzed_at"},
		pgx.CopyFromFunc(func() ([]any, error) {
			if i == n {
				return nil, nil
			}
			i++
			return []any{idOf("image", i-1), searchTenant, sha, int64(1000), "analyzed", "dev", int32(1), now}, nil
		})); err != nil {
		return nil, fmt.Errorf("search bench: copy images: %w", err)
	}
	landmarks := make([]float32, 10)
	i = 0
	if _, err := conn.Conn().CopyFrom(ctx, pgx.Identifier{"facestream", "faces"},
		[]string{"id", "tenant_id", "image_id", "face_index", "box_x1", "box_y1", "box_x2", "box_y2", "landmarks", "det_score", "model_pack"},
		pgx.CopyFromFunc(func() ([]any, error) {
			if i == n {
				return nil, nil
			}
			i++
			return []any{idOf("face", i-1), searchTenant, idOf("image", i-1), int32(0), float32(0), float32(0), float32(100), float32(100), landmarks, float32(0.9), "dev"}, nil
		})); err != nil {
		return nil, fmt.Errorf("search bench: copy faces: %w", err)
	}
	i = 0
	if _, err := conn.Conn().CopyFrom(ctx, pgx.Identifier{"facestream", "embeddings"},
		[]string{"face_id", "tenant_id", "model", "dim", "embedding"},
		pgx.CopyFromFunc(func() ([]any, error) {
			if i == n {
				return nil, nil
			}
			v := gen.next()
			for q := range queries {
				truth[q].add(dot(queries[q], v), i)
			}
			i++
			return []any{idOf("face", i-1), searchTenant, res.Model, int32(cfg.Dim), pgvector.NewVector(v)}, nil
		})); err != nil {
		return nil, fmt.Errorf("search bench: copy embeddings: %w", err)
	}
	res.CopySeconds = time.Since(start).Seconds()
	res.EmbeddingRowsPerSec = float64(n) / res.CopySeconds
	res.Identities = gen.identities
	res.SameIdentityCos, res.OtherIdentityCos = gen.sameCos.mean(), gen.otherCos.mean()
	log.Info("copied", "seconds", res.CopySeconds, "identities", res.Identities)

	// ANALYZE for the planner; VACUUM sets the visibility map as on a
	// long-lived table.
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE facestream.embeddings"); err != nil {
		return nil, err
	}
	if err := conn.QueryRow(ctx, "SHOW shared_buffers").Scan(&res.SharedBuffers); err != nil {
		return nil, err
	}
	// Build each index the way facestream does (or with the configuration's
	// parameters), with more memory, then sweep ef_search; drop it before
	// the next.
	if _, err := conn.Exec(ctx, "SET maintenance_work_mem = '"+cfg.MaintenanceWorkMem+"'"); err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "SET max_parallel_maintenance_workers = 1"); err != nil {
		return nil, err
	}
	indexes := cfg.Indexes
	if len(indexes) == 0 {
		indexes = []SearchIndex{{}}
	}
	for i, c := range indexes {
		r, err := measureIndex(ctx, conn, c, res.Model, cfg.Dim, cfg.EfSearch, queries, truth, gen.rows, i < len(indexes)-1, log)
		if err != nil {
			return nil, err
		}
		res.Indexes = append(res.Indexes, r)
	}
	return res, nil
}

// idOf is a deterministic UUID for row i of a kind.
func idOf(kind string, i int) uuid.UUID {
	return uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "facestream-bench/%s/%d", kind, i))
}

// generator makes clustered embeddings: identity centres uniform on the
// unit sphere, each identity's faces its centre plus Gaussian noise of a
// per-identity spread (same-identity cosine about 0.55–0.8, as for a real
// recognizer; different identities near 0), renormalised. Queries are new
// faces of identities that are stored (the first ones generated).
type generator struct {
	rng        *rand.Rand
	dim, mean  int
	centre     []float32
	spread     float64
	left       int
	identities int
	pending    [][2]any    // query identities still to store: centre, spread
	rows       [][2]int    // per query identity: first row, row count
	row        int         // rows generated
	basis      [][]float32 // IntrinsicDim vectors spanning the centres' subspace
	inQuery    bool        // the current identity is a query's
	sameCos    avg
	otherCos   avg
	prev       []float32
	prevCentre []float32
}

type avg struct {
	sum float64
	n   int
}

func (a *avg) add(v float64) { a.sum += v; a.n++ }
func (a avg) mean() float64 {
	if a.n == 0 {
		return 0
	}
	return a.sum / float64(a.n)
}

func newGenerator(cfg SearchConfig) *generator {
	g := &generator{rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)), dim: cfg.Dim, mean: max(cfg.FacesPerIdentity, 1)}
	for range cfg.IntrinsicDim {
		v := make([]float32, g.dim)
		for i := range v {
			v[i] = float32(g.rng.NormFloat64())
		}
		g.basis = append(g.basis, v)
	}
	return g
}

// centre draws an identity centre.
func (g *generator) centreVec() []float32 {
	if len(g.basis) == 0 {
		return g.unit()
	}
	v := make([]float32, g.dim)
	for _, b := range g.basis {
		z := float32(g.rng.NormFloat64())
		for i := range v {
			v[i] += z * b[i]
		}
	}
	return normalize(v)
}

func (g *generator) unit() []float32 {
	v := make([]float32, g.dim)
	for i := range v {
		v[i] = float32(g.rng.NormFloat64())
	}
	return normalize(v)
}

// newSpread is a per-identity noise σ per dimension:
// cos(face, centre) ≈ 1/sqrt(1+dim·σ²).
func (g *generator) newSpread() float64 { return 0.07 + 0.04*g.rng.Float64() }

func (g *generator) sample(centre []float32, spread float64) []float32 {
	v := make([]float32, g.dim)
	for i := range v {
		v[i] = centre[i] + float32(spread*g.rng.NormFloat64())
	}
	return normalize(v)
}

// next returns the next stored embedding.
func (g *generator) next() []float32 {
	if g.left == 0 {
		g.prevCentre = g.centre
		if len(g.pending) > 0 {
			g.centre, g.spread = g.pending[0][0].([]float32), g.pending[0][1].(float64)
			g.pending = g.pending[1:]
			g.rows = append(g.rows, [2]int{g.row, 0})
			g.inQuery = true
		} else {
			g.centre, g.spread = g.centreVec(), g.newSpread()
			g.inQuery = false
		}
		if g.prevCentre != nil {
			g.otherCos.add(float64(dot(g.prevCentre, g.centre)))
		}
		g.left = 1 + g.rng.IntN(2*g.mean-1)
		g.identities++
		g.prev = nil
	}
	g.left--
	if g.inQuery {
		g.rows[len(g.rows)-1][1]++
	}
	g.row++
	v := g.sample(g.centre, g.spread)
	if g.prev != nil && g.sameCos.n < 100000 {
		g.sameCos.add(float64(dot(g.prev, v)))
	}
	g.prev = v
	return v
}

// queries returns n query embeddings, each a new face of an identity that
// next will store.
func (g *generator) queries(n int) [][]float32 {
	out := make([][]float32, n)
	for i := range out {
		c, s := g.centreVec(), g.newSpread()
		g.pending = append(g.pending, [2]any{c, s})
		out[i] = g.sample(c, s)
	}
	return out
}

func normalize(v []float32) []float32 {
	var n float64
	for _, x := range v {
		n += float64(x) * float64(x)
	}
	inv := float32(1 / math.Sqrt(n))
	for i := range v {
		v[i] *= inv
	}
	return v
}

func dot(a, b []float32) float32 {
	var s float32
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// topK keeps the 10 best (highest similarity) row indexes.
type topK struct {
	sim [10]float32
	idx [10]int
	n   int
}

func (t *topK) add(sim float32, idx int) {
	if t.n == 10 && sim <= t.sim[9] {
		return
	}
	i := min(t.n, 9)
	if t.n < 10 {
		t.n++
	}
	for i > 0 && t.sim[i-1] < sim {
		t.sim[i], t.idx[i] = t.sim[i-1], t.idx[i-1]
		i--
	}
	t.sim[i], t.idx[i] = sim, idx
}

// recall is the share of the exact top 10 found in got.
func (t *topK) recall(got []uuid.UUID) float64 {
	want := map[uuid.UUID]bool{}
	for i := range t.n {
		want[idOf("face", t.idx[i])] = true
	}
	hit := 0
	for _, id := range got {
		if want[id] {
			hit++
		}
	}
	return float64(hit) / float64(max(t.n, 1))
}

func (s *SearchResult) markdown(b *strings.Builder) {
	fmt.Fprintf(b, "## Similarity search, %d × %d-d embeddings\n\n", s.Vectors, s.Dim)
	shape := "centres uniform on the whole sphere"
	if s.IntrinsicDim > 0 {
		shape = fmt.Sprintf("centres in a random %d-dimensional subspace", s.IntrinsicDim)
	}
	fmt.Fprintf(b, "%d identities (clusters, %s; mean same-identity cosine %.2f, different identities %.2f), %d queries (new faces of stored identities), top-10 through `facestream.search_faces`, recall@10 against exact search; identity recall = the query identity's faces in the exact top 10 that the index also returns.\n\n",
		s.Identities, shape, s.SameIdentityCos, s.OtherIdentityCos, s.Queries)
	fmt.Fprintf(b, "COPY images + faces + embeddings: %.1f s (%.0f embeddings/s). Index builds with maintenance_work_mem %s and one parallel worker; shared_buffers %s.\n\n",
		s.CopySeconds, s.EmbeddingRowsPerSec, s.MaintenanceWorkMem, s.SharedBuffers)
	b.WriteString("| index (m:ef_construction) | build s | size MiB | load avg before → after |\n|---|---|---|---|\n")
	for _, r := range s.Indexes {
		fmt.Fprintf(b, "| %s | %.1f | %.0f | %.2f → %.2f |\n", r.Index.label(), r.BuildSeconds, float64(r.Bytes)/(1<<20), r.LoadBefore, r.LoadAfter)
	}
	b.WriteString("\n| index | ef_search | p50 ms | p95 ms | mean ms | recall@10 | worst query | identity recall | index blocks/query (not in shared_buffers) | iterative scan off: p50 / p95 ms (same rows) |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range s.Indexes {
		for _, p := range r.Points {
			firstWalk := "—"
			if p.FirstWalkP50MS > 0 {
				firstWalk = fmt.Sprintf("%.2f / %.2f (%.0f %%)", p.FirstWalkP50MS, p.FirstWalkP95MS, 100*p.FirstWalkSame)
			}
			fmt.Fprintf(b, "| %s | %d | %.2f | %.2f | %.2f | %.3f | %.1f | %.3f | %.0f (%.0f) | %s |\n", r.Index, p.EfSearch, p.P50MS, p.P95MS, p.MeanMS, p.Recall10, p.MinRecall, p.IdentityRecall, p.IndexBlocks, p.IndexBlocksRead, firstWalk)
		}
	}
	b.WriteString("\nIterative scan off: the same searches with `search_faces`' query and settings but pgvector's `hnsw.iterative_scan` off (`search_faces` sets `strict_order`, so that its filters still fill k rows), timed query by query between the measured ones: what the iterative scan costs a search that needs no second batch. The share of queries that got the same rows in the same order in brackets.\n\n")
	for _, r := range s.Indexes {
		if r.Index.Halfvec {
			b.WriteString("halfvec indexes are searched with search_faces_query's SQL cast to halfvec and search_faces' hnsw settings (search_faces casts to vector, so it cannot use them).\n\n")
			break
		}
	}
	for _, r := range s.Indexes {
		if r.Chosen != nil {
			fmt.Fprintf(b, "- %s: recall@10 ≥ 0.95 first at ef_search %d, p95 %.2f ms (recall@10 %.3f).\n", r.Index, r.Chosen.EfSearch, r.Chosen.P95MS, r.Chosen.Recall10)
		} else {
			fmt.Fprintf(b, "- %s: no ef_search measured reached recall@10 0.95.\n", r.Index)
		}
	}
	b.WriteString("\n")
}

// identityRecall is the share of the query identity's rows (first, count)
// within the exact top 10 that got also holds; 1 when the exact top 10
// holds none.
func (t *topK) identityRecall(got []uuid.UUID, rows [2]int) float64 {
	want := map[uuid.UUID]bool{}
	for i := range t.n {
		if r := t.idx[i]; r >= rows[0] && r < rows[0]+rows[1] {
			want[idOf("face", r)] = true
		}
	}
	if len(want) == 0 {
		return 1
	}
	hit := 0
	for _, id := range got {
		if want[id] {
			hit++
		}
	}
	return float64(hit) / float64(len(want))
}
