package migrations_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgvector/pgvector-go"

	"github.com/facestream/facestream/internal/pgtest"
)

// model is a recognition model of the fixture.
type model struct {
	name string
	dim  int
}

var (
	alpha = model{"alpha-128", 128}
	beta  = model{"beta-512", 512}
	// gamma has alpha's dimension: the case where mixing models would go unnoticed.
	gamma = model{"gamma-128", 128}
)

// stored is one embedding the fixture wrote.
type stored struct {
	face, image, subject [16]byte
	enrolled             bool
	tenant               string
	model                model
	cluster              int
	vec                  []float32
}

// fixture holds faces of two tenants, each with an embedding of alpha and
// beta (and a few of gamma), drawn around per-identity centroids as real
// face embeddings are: faces of one identity are close, others are far.
type fixture struct {
	pool      *pgxpool.Pool
	centroids map[model][][]float32
	rows      []stored
	rng       *rand.Rand
}

const (
	clusters = 60
	perImage = 10
	noise    = 0.6 // |noise| relative to the unit centroid: same-identity cosine ≈ 0.73
)

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{pool: pgtest.NewMigrated(t), centroids: map[model][][]float32{}, rng: rand.New(rand.NewPCG(1, 2))}
	// Register the models, load, then index: building an HNSW index over
	// loaded rows is much faster than inserting into one, and this is the path
	// an operator takes when pre-creating an index.
	for _, m := range []model{alpha, beta, gamma} {
		exec(t, f.pool, "INSERT INTO facestream.embedding_models (model, dim, index_name) VALUES ($1, $2, facestream.embedding_index_name($1, $2))", m.name, m.dim)
		for range clusters {
			f.centroids[m] = append(f.centroids[m], f.around(nil, m.dim))
		}
	}
	addTenant(t, f.pool, "other")
	f.load(t, "default", 1200)
	f.load(t, "other", 300)
	for _, m := range []model{alpha, beta, gamma} {
		exec(t, f.pool, "SELECT facestream.ensure_embedding_index($1, $2)", m.name, m.dim)
	}
	exec(t, f.pool, "ANALYZE")
	return f
}

// around returns a unit vector near centre (a random unit vector when centre is nil).
func (f *fixture) around(centre []float32, dim int) []float32 {
	v := make([]float32, dim)
	scale := 1.0
	if centre != nil {
		scale = noise / math.Sqrt(float64(dim))
	}
	var norm float64
	for i := range v {
		x := f.rng.NormFloat64() * scale
		if centre != nil {
			x += float64(centre[i])
		}
		v[i] = float32(x)
		norm += x * x
	}
	for i := range v {
		v[i] = float32(float64(v[i]) / math.Sqrt(norm))
	}
	return v
}

// load stores n faces of tenant; faces 0..2 of each of the first 20 clusters
// are enrolled as that cluster's subject.
func (f *fixture) load(t *testing.T, tenant string, n int) {
	t.Helper()
	ctx := context.Background()
	subjects := map[int][16]byte{}
	for c := range 20 {
		id := newID()
		subjects[c] = id
		exec(t, f.pool, "INSERT INTO facestream.subjects (id, tenant_id, name) VALUES ($1, $2, $3)", id, tenant, "subject-"+string(rune('A'+c)))
	}
	var images, faces, embeddings [][]any
	var image [16]byte
	enrolledPerCluster := map[int]int{}
	for i := range n {
		if i%perImage == 0 {
			image = newID()
			images = append(images, []any{image, tenant, strings.Repeat("ab", 32), int64(1000), "analyzed", "dev", int32(perImage), time.Now()})
		}
		cluster := f.rng.IntN(clusters)
		face := newID()
		var subject any
		row := stored{face: face, image: image, tenant: tenant, cluster: cluster}
		if s, ok := subjects[cluster]; ok && enrolledPerCluster[cluster] < 3 {
			enrolledPerCluster[cluster]++
			subject, row.subject, row.enrolled = s, s, true
		}
		faces = append(faces, []any{face, tenant, image, int32(i % perImage), float32(0), float32(0), float32(10), float32(10),
			[]float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, float32(0.9), "dev", subject})
		for _, m := range []model{alpha, beta, gamma} {
			if m == gamma && i%10 != 0 {
				continue
			}
			r := row
			r.model, r.vec = m, f.around(f.centroids[m][cluster], m.dim)
			f.rows = append(f.rows, r)
			embeddings = append(embeddings, []any{face, tenant, m.name, int32(m.dim), pgvector.NewVector(r.vec)})
		}
	}
	copyRows(ctx, t, f.pool, "images", []string{"id", "tenant_id", "sha256", "byte_size", "status", "model_pack", "face_count", "analyzed_at"}, images)
	copyRows(ctx, t, f.pool, "faces", []string{"id", "tenant_id", "image_id", "face_index", "box_x1", "box_y1", "box_x2", "box_y2",
		"landmarks", "det_score", "model_pack", "subject_id"}, faces)
	copyRows(ctx, t, f.pool, "embeddings", []string{"face_id", "tenant_id", "model", "dim", "embedding"}, embeddings)
}

func copyRows(ctx context.Context, t *testing.T, pool *pgxpool.Pool, table string, cols []string, rows [][]any) {
	t.Helper()
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"facestream", table}, cols, pgx.CopyFromRows(rows)); err != nil {
		t.Fatalf("copy into %s: %v", table, err)
	}
}

// hit is one result row.
type hit struct {
	face       [16]byte
	similarity float64
}

// bruteForce is the exact answer: every embedding of tenant and m, by cosine similarity.
func (f *fixture) bruteForce(tenant string, m model, q []float32, k int, enrolledOnly bool) []hit {
	var hits []hit
	for _, r := range f.rows {
		if r.tenant != tenant || r.model != m || (enrolledOnly && !r.enrolled) {
			continue
		}
		hits = append(hits, hit{r.face, cosine(q, r.vec)})
	}
	slices.SortFunc(hits, func(a, b hit) int {
		switch {
		case a.similarity > b.similarity:
			return -1
		case a.similarity < b.similarity:
			return 1
		}
		return 0
	})
	return hits[:min(k, len(hits))]
}

func cosine(a, b []float32) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	return dot / math.Sqrt(na*nb)
}

func (f *fixture) search(t *testing.T, tenant string, m model, q []float32, k int, enrolledOnly bool) []hit {
	t.Helper()
	return f.searchPlan(t, tenant, m, q, k, enrolledOnly, false)
}

// searchPlan runs search_faces; with viaIndex it discourages the exact plan
// (a scan and a sort, which the planner prefers on small tables) and checks
// that the model's HNSW index was scanned.
func (f *fixture) searchPlan(t *testing.T, tenant string, m model, q []float32, k int, enrolledOnly, viaIndex bool) []hit {
	t.Helper()
	ctx := context.Background()
	var hits []hit
	err := pgx.BeginFunc(ctx, f.pool, func(tx pgx.Tx) error {
		if viaIndex {
			if _, err := tx.Exec(ctx, "SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off"); err != nil {
				return err
			}
		}
		rows, err := tx.Query(ctx,
			"SELECT face_id, similarity FROM facestream.search_faces($1, $2, $3, $4, p_enrolled_only => $5)",
			tenant, m.name, pgvector.NewVector(q), k, enrolledOnly)
		if err != nil {
			return err
		}
		var h hit
		if _, err := pgx.ForEachRow(rows, []any{&h.face, &h.similarity}, func() error {
			hits = append(hits, h)
			return nil
		}); err != nil {
			return err
		}
		if !viaIndex {
			return nil
		}
		var scans int64
		if err := tx.QueryRow(ctx, "SELECT pg_stat_get_xact_numscans(to_regclass('facestream.' || facestream.embedding_index_name($1, $2)))",
			m.name, m.dim).Scan(&scans); err != nil {
			return err
		}
		if scans < 1 {
			t.Errorf("search of %s did not scan its index", m.name)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("search_faces: %v", err)
	}
	return hits
}

func sameHits(t *testing.T, what string, got, want []hit) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d rows, want %d", what, len(got), len(want))
		return
	}
	for i := range want {
		if got[i].face != want[i].face || math.Abs(got[i].similarity-want[i].similarity) > 1e-5 {
			t.Errorf("%s: row %d is %s (%.6f), want %s (%.6f)", what, i,
				uuidString(got[i].face), got[i].similarity, uuidString(want[i].face), want[i].similarity)
			return
		}
	}
}

// TestSearchFaces compares search_faces with an exact brute-force search in
// Go, for two tenants and three models (two of the same dimension) stored
// side by side, both on the plan the planner picks for this small table (an
// exact scan) and through the HNSW index. Through the index, k is the size of
// the query's identity cluster: its members are well separated from the rest,
// so an approximate index still finds all of them, in exact order.
func TestSearchFaces(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, tenant := range []string{"default", "other"} {
		for _, m := range []model{alpha, beta, gamma} {
			for c := range 4 {
				q := f.around(f.centroids[m][c], m.dim)
				members, enrolled := f.clusterSize(tenant, m, c)
				for _, enrolledOnly := range []bool{false, true} {
					what := fmt.Sprintf("%s/%s/cluster %d/enrolled only %v", tenant, m.name, c, enrolledOnly)
					sameHits(t, what, f.search(t, tenant, m, q, 10, enrolledOnly), f.bruteForce(tenant, m, q, 10, enrolledOnly))
					k := members
					if enrolledOnly {
						k = enrolled
					}
					if k == 0 {
						continue
					}
					sameHits(t, what+"/via index", f.searchPlan(t, tenant, m, q, k, enrolledOnly, true), f.bruteForce(tenant, m, q, k, enrolledOnly))
				}
			}
		}
	}
}

// clusterSize counts the embeddings of tenant and m drawn around centroid c,
// and how many of those are enrolled.
func (f *fixture) clusterSize(tenant string, m model, c int) (members, enrolled int) {
	for _, r := range f.rows {
		if r.tenant == tenant && r.model == m && r.cluster == c {
			members++
			if r.enrolled {
				enrolled++
			}
		}
	}
	return members, enrolled
}

// TestSearchNeverMixesModelsOrTenants plants, for one query, an exact match
// under another model of the same dimension and under another tenant: neither
// may come back.
func TestSearchNeverMixesModelsOrTenants(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	q := f.around(f.centroids[alpha][0], alpha.dim)

	var decoyGamma, decoyOther [16]byte
	for _, r := range f.rows {
		if r.tenant == "default" && r.model == gamma && decoyGamma == [16]byte{} {
			decoyGamma = r.face
		}
		if r.tenant == "other" && r.model == alpha && decoyOther == [16]byte{} {
			decoyOther = r.face
		}
	}
	exec(t, f.pool, "UPDATE facestream.embeddings SET embedding = $1 WHERE face_id = $2 AND model = $3", pgvector.NewVector(q), decoyGamma, gamma.name)
	exec(t, f.pool, "UPDATE facestream.embeddings SET embedding = $1 WHERE face_id = $2 AND model = $3", pgvector.NewVector(q), decoyOther, alpha.name)

	got := f.search(t, "default", alpha, q, 50, false)
	if len(got) != 50 {
		t.Fatalf("%d rows, want 50", len(got))
	}
	for _, h := range got {
		if h.face == decoyOther {
			t.Errorf("tenant default got tenant other's face")
		}
		if h.face == decoyGamma && h.similarity > 0.999 {
			t.Errorf("search of %s compared against %s's embedding", alpha.name, gamma.name)
		}
	}
	if got := f.search(t, "other", alpha, q, 1, false); len(got) != 1 || got[0].face != decoyOther || got[0].similarity < 0.9999 {
		t.Errorf("tenant other does not find its exact match first: %v", got)
	}
	if got := f.search(t, "nobody", alpha, q, 10, false); len(got) != 0 {
		t.Errorf("unknown tenant got %d rows", len(got))
	}
	if got := f.search(t, "default", model{"never-stored", 128}, q, 10, false); len(got) != 0 {
		t.Errorf("unknown model got %d rows", len(got))
	}
	_, err := f.pool.Exec(ctx, "SELECT * FROM facestream.search_faces('default', $1, $2)", beta.name, pgvector.NewVector(q))
	wantCode(t, err, "22000")
	_, err = f.pool.Exec(ctx, "SELECT * FROM facestream.search_faces('default', $1, $2, 0)", alpha.name, pgvector.NewVector(q))
	wantCode(t, err, "22023")
}

// TestSearchUsesTheModelIndex proves, on a table large enough for the planner
// to prefer it over an exact scan and sort (at a thousand rows it does not,
// and the exact plan is the better one there), that search_faces's query is
// planned as a scan of the model's own HNSW index, and that calling the
// function really scans that index.
func TestSearchUsesTheModelIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewMigrated(t)
	const dim = 128
	image := addImage(t, pool, "default")
	exec(t, pool, `INSERT INTO facestream.faces (tenant_id, image_id, face_index, box_x1, box_y1, box_x2, box_y2, landmarks, det_score, model_pack)
		SELECT 'default', $1, g, 0, 0, 1, 1, '{0,0,0,0,0,0,0,0,0,0}', 0.5, 'dev' FROM generate_series(0, 3999) g`, image)
	// "big" has 4000 embeddings; "neighbour", of the same dimension, 500 of
	// the same faces, so the planner must pick big's partial index among two.
	for name, faces := range map[string]int{"big": 4000, "neighbour": 500} {
		exec(t, pool, "INSERT INTO facestream.embedding_models (model, dim, index_name) VALUES ($1, $2, facestream.embedding_index_name($1, $2))", name, dim)
		exec(t, pool, `INSERT INTO facestream.embeddings (face_id, tenant_id, model, dim, embedding)
			SELECT f.id, f.tenant_id, $1, $2, (SELECT array_agg(random() - 0.5) FROM generate_series(1, $2) WHERE f.face_index >= 0)::vector
			FROM facestream.faces f WHERE f.face_index < $3`, name, dim, faces)
		exec(t, pool, "SELECT facestream.ensure_embedding_index($1, $2)", name, dim)
	}
	exec(t, pool, "ANALYZE")

	q := make([]float32, dim)
	for i := range q {
		q[i] = float32(i%7) - 3
	}
	var index, query string
	if err := pool.QueryRow(ctx, "SELECT facestream.embedding_index_name('big', $1), facestream.search_faces_query('big', $1, false)", dim).Scan(&index, &query); err != nil {
		t.Fatal(err)
	}
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// The settings search_faces runs its query under.
		if _, err := tx.Exec(ctx, "SET LOCAL hnsw.ef_search = 100; SET LOCAL hnsw.iterative_scan = strict_order"); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "EXPLAIN "+query, pgvector.NewVector(q), "default", 10, nil)
		if err != nil {
			return err
		}
		var plan []string
		var line string
		if _, err := pgx.ForEachRow(rows, []any{&line}, func() error {
			plan = append(plan, line)
			return nil
		}); err != nil {
			return err
		}
		if text := strings.Join(plan, "\n"); !strings.Contains(text, "Index Scan using "+index) {
			t.Errorf("search is not planned on %s:\n%s", index, text)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("EXPLAIN: %v", err)
	}

	// pg_stat_get_xact_numscans counts this transaction's scans of an index.
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM facestream.search_faces('default', 'big', $1, 10)", pgvector.NewVector(q)).Scan(&n); err != nil {
			return err
		}
		var scans int64
		if err := tx.QueryRow(ctx, "SELECT pg_stat_get_xact_numscans(to_regclass('facestream.' || quote_ident($1)))", index).Scan(&scans); err != nil {
			return err
		}
		if n != 10 || scans < 1 {
			t.Errorf("search_faces returned %d rows with %d scans of %s; want 10 rows from the index", n, scans, index)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestIdentify(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	for c := range 3 {
		q := f.around(f.centroids[beta][c], beta.dim)
		// The exact answer: the best reference face of each subject.
		best := map[[16]byte]hit{}
		for _, r := range f.rows {
			if r.tenant == "default" && r.model == beta && r.enrolled {
				if s := cosine(q, r.vec); s > best[r.subject].similarity || best[r.subject].face == [16]byte{} {
					best[r.subject] = hit{r.face, s}
				}
			}
		}
		var want []hit
		for _, h := range best {
			want = append(want, h)
		}
		slices.SortFunc(want, func(a, b hit) int {
			if a.similarity > b.similarity {
				return -1
			}
			return 1
		})
		rows, err := f.pool.Query(ctx, "SELECT face_id, similarity FROM facestream.identify('default', $1, $2, 3)", beta.name, pgvector.NewVector(q))
		if err != nil {
			t.Fatal(err)
		}
		var got []hit
		var h hit
		if _, err := pgx.ForEachRow(rows, []any{&h.face, &h.similarity}, func() error {
			got = append(got, h)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		sameHits(t, "identify", got, want[:3])
	}
	var n int
	if err := f.pool.QueryRow(ctx, "SELECT count(*) FROM facestream.identify('default', $1, $2, 3, 0.99)", beta.name,
		pgvector.NewVector(f.around(f.centroids[beta][0], beta.dim))).Scan(&n); err != nil || n != 0 {
		t.Errorf("identify with min_similarity 0.99: %d rows (%v), want none", n, err)
	}
}
