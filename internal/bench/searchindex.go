package bench

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgvector/pgvector-go"
)

// SearchIndex is one HNSW index configuration of the search benchmark. The
// zero value is facestream's own: the index facestream.ensure_embedding_index
// builds, with whatever parameters the migrations give it.
type SearchIndex struct {
	// M and EfConstruction are pgvector's hnsw build parameters.
	M              int `json:"m,omitempty"`
	EfConstruction int `json:"ef_construction,omitempty"`
	// Halfvec indexes the embeddings cast to halfvec(dim) (2-byte floats)
	// instead of vector(dim). search_faces casts to vector, so it cannot use
	// such an index: the benchmark then runs search_faces_query's SQL with
	// the casts changed to halfvec and the hnsw settings search_faces sets.
	Halfvec bool `json:"halfvec,omitempty"`
}

// IsProduction reports whether c is the index ensure_embedding_index builds.
func (c SearchIndex) IsProduction() bool { return c == SearchIndex{} }

// String is c as ParseSearchIndexes reads it: "16:64", "32:128:halfvec", or
// "production" for the zero value.
func (c SearchIndex) String() string {
	if c.IsProduction() {
		return "production"
	}
	s := fmt.Sprintf("%d:%d", c.M, c.EfConstruction)
	if c.Halfvec {
		s += ":halfvec"
	}
	return s
}

// ParseSearchIndexes reads a comma-separated list of index configurations,
// each "m:ef_construction" or "m:ef_construction:halfvec", or "production"
// for the index ensure_embedding_index builds. The empty string is the
// production index alone. The limits are pgvector's: m in 2..100,
// ef_construction in 4..1000 and at least 2·m.
func ParseSearchIndexes(s string) ([]SearchIndex, error) {
	if strings.TrimSpace(s) == "" {
		return []SearchIndex{{}}, nil
	}
	var out []SearchIndex
	seen := map[SearchIndex]bool{}
	for item := range strings.SplitSeq(s, ",") {
		c, err := parseSearchIndex(strings.TrimSpace(item))
		if err != nil {
			return nil, fmt.Errorf("parse search index %q: %w", item, err)
		}
		if seen[c] {
			return nil, fmt.Errorf("parse search index %q: listed twice", item)
		}
		seen[c] = true
		out = append(out, c)
	}
	return out, nil
}

func parseSearchIndex(s string) (SearchIndex, error) {
	if s == "production" {
		return SearchIndex{}, nil
	}
	parts := strings.Split(s, ":")
	var c SearchIndex
	switch {
	case len(parts) == 3 && parts[2] == "halfvec":
		c.Halfvec = true
	case len(parts) != 2:
		return c, fmt.Errorf("want m:ef_construction, m:ef_construction:halfvec or production")
	}
	var err error
	if c.M, err = strconv.Atoi(parts[0]); err != nil {
		return c, fmt.Errorf("m: %w", err)
	}
	if c.EfConstruction, err = strconv.Atoi(parts[1]); err != nil {
		return c, fmt.Errorf("ef_construction: %w", err)
	}
	switch {
	case c.M < 2 || c.M > 100:
		return c, fmt.Errorf("m %d: want 2..100", c.M)
	case c.EfConstruction < 4 || c.EfConstruction > 1000:
		return c, fmt.Errorf("ef_construction %d: want 4..1000", c.EfConstruction)
	case c.EfConstruction < 2*c.M:
		return c, fmt.Errorf("ef_construction %d: want at least 2·m = %d", c.EfConstruction, 2*c.M)
	}
	return c, nil
}

// createSQL is the CREATE INDEX of c, which is not the production one: the
// definition ensure_embedding_index uses (migration 0002: a partial HNSW
// cosine index on the cast to the model's dimension, named by
// embedding_index_name) with c's parameters. TestSearchIndexMirrorsProduction
// checks the two stay alike.
func (c SearchIndex) createSQL(index, model string, dim int) string {
	typ := "vector"
	if c.Halfvec {
		typ = "halfvec"
	}
	return fmt.Sprintf(`CREATE INDEX %s ON facestream.embeddings USING hnsw ((embedding::%s(%d)) %s_cosine_ops) WITH (m = %d, ef_construction = %d) WHERE model = '%s'`,
		pgx.Identifier{index}.Sanitize(), typ, dim, typ, c.M, c.EfConstruction, strings.ReplaceAll(model, "'", "''"))
}

// SearchIndexResult is one index configuration built and measured over the
// search benchmark's data.
type SearchIndexResult struct {
	Index SearchIndex `json:"index"`
	// Definition is pg_get_indexdef of the index built.
	Definition   string  `json:"definition"`
	BuildSeconds float64 `json:"build_seconds"`
	Bytes        int64   `json:"bytes"`
	// LoadBefore and LoadAfter are the host's 1-minute load average before
	// the build and after the ef_search sweep (empty where unknown): the
	// machine is shared, and timings depend on it.
	LoadBefore float64       `json:"load_before,omitempty"`
	LoadAfter  float64       `json:"load_after,omitempty"`
	Points     []SearchPoint `json:"points"`
	// Chosen is the smallest ef_search measured with recall@10 ≥ 0.95.
	Chosen *SearchPoint `json:"chosen,omitempty"`
}

// buildIndex builds c's index of the model's embeddings on conn (the
// session's maintenance settings apply) and returns its name.
func buildIndex(ctx context.Context, conn *pgxpool.Conn, c SearchIndex, model string, dim int) (string, error) {
	var index string
	if c.IsProduction() {
		if err := conn.QueryRow(ctx, `SELECT facestream.ensure_embedding_index($1, $2)`, model, dim).Scan(&index); err != nil {
			return "", fmt.Errorf("search bench: build index %s: %w", c, err)
		}
		return index, nil
	}
	if err := conn.QueryRow(ctx, `SELECT facestream.embedding_index_name($1, $2)`, model, dim).Scan(&index); err != nil {
		return "", fmt.Errorf("search bench: index name: %w", err)
	}
	if _, err := conn.Exec(ctx, c.createSQL(index, model, dim)); err != nil {
		return "", fmt.Errorf("search bench: build index %s: %w", c, err)
	}
	return index, nil
}

// searchQuery is how the benchmark asks one index for the top 10.
type searchQuery struct {
	// sql has parameters $1 tenant, $2 model, $3 query, $4 ef_search
	// (search_faces), or, for a halfvec index, $1 query, $2 tenant, $3 k,
	// $4 minimum similarity (search_faces_query's, with its casts changed
	// to halfvec; the session then carries search_faces' hnsw settings).
	sql string
	// plan is the statement search_faces runs for sql, for EXPLAIN, with
	// search_faces_query's parameters.
	plan    string
	halfvec bool
	// firstWalk is plan as a top-10 face_id query, which the benchmark runs
	// under search_faces' settings but with hnsw.iterative_scan off (empty
	// for a halfvec index).
	firstWalk string
}

func newSearchQuery(ctx context.Context, conn *pgxpool.Conn, c SearchIndex, model string, dim int) (searchQuery, error) {
	var q string
	if err := conn.QueryRow(ctx, `SELECT facestream.search_faces_query($1, $2, false)`, model, dim).Scan(&q); err != nil {
		return searchQuery{}, fmt.Errorf("search bench: search_faces_query: %w", err)
	}
	if !c.Halfvec {
		return searchQuery{
			sql:       `SELECT face_id FROM facestream.search_faces(p_tenant => $1, p_model => $2, p_query => $3, p_k => 10, p_ef_search => $4)`,
			plan:      q,
			firstWalk: `SELECT face_id FROM (` + q + `) s`,
		}, nil
	}
	cast := fmt.Sprintf("::vector(%d)", dim)
	if n := strings.Count(q, cast); n != 4 {
		return searchQuery{}, fmt.Errorf("search bench: search_faces_query has %d casts %s, want 4 (embedding and query, in the similarity and the ORDER BY): update the halfvec variant", n, cast)
	}
	q = strings.ReplaceAll(q, cast, fmt.Sprintf("::halfvec(%d)", dim))
	return searchQuery{sql: `SELECT face_id FROM (` + q + `) s`, plan: q, halfvec: true}, nil
}

// args are sql's arguments for query vector v at ef_search ef.
func (q searchQuery) args(tenant, model string, v []float32, ef int) []any {
	if q.halfvec {
		return []any{pgvector.NewHalfVector(v), tenant, 10, nil}
	}
	return []any{tenant, model, pgvector.NewVector(v), ef}
}

// planArgs are plan's arguments for query vector v.
func (q searchQuery) planArgs(tenant string, v []float32) []any {
	if q.halfvec {
		return []any{pgvector.NewHalfVector(v), tenant, 10, nil}
	}
	return []any{pgvector.NewVector(v), tenant, 10, nil}
}

// prepare readies conn's session for a sweep at ef: a halfvec query runs
// without search_faces, so the session gets the hnsw settings search_faces
// sets for each call (ef_search raised to k, strict-order iterative scan,
// no JIT). For any other index the session gets the settings of the
// first-walk comparison: the same but with the iterative scan off
// (search_faces' own SET clauses override them for its calls).
func (q searchQuery) prepare(ctx context.Context, conn *pgxpool.Conn, ef int) error {
	iterative := "strict_order"
	if !q.halfvec {
		iterative = "off"
	}
	for _, s := range []string{
		fmt.Sprintf("SET hnsw.ef_search = %d", max(ef, 10)),
		"SET hnsw.iterative_scan = " + iterative,
		"SET jit = off",
	} {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("search bench: %s: %w", s, err)
		}
	}
	return nil
}

// usesIndex fails unless the plan of q for v scans index: a sequential
// scan would measure exact search instead.
func (q searchQuery) usesIndex(ctx context.Context, conn *pgxpool.Conn, index, tenant string, v []float32) error {
	rows, err := conn.Query(ctx, "EXPLAIN "+q.plan, q.planArgs(tenant, v)...)
	if err != nil {
		return fmt.Errorf("search bench: explain: %w", err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("search bench: explain: %w", err)
	}
	if plan := strings.Join(lines, "\n"); !strings.Contains(plan, index) {
		return fmt.Errorf("search bench: the search does not use index %s:\n%s", index, plan)
	}
	return nil
}

// indexBlocks is how many blocks of index this database's sessions have
// found in shared_buffers (hit) and read from outside them (read) so far,
// this session's included: its pending statistics are flushed first.
func indexBlocks(ctx context.Context, conn *pgxpool.Conn, index string) (hit, read int64, err error) {
	if _, err := conn.Exec(ctx, "SELECT pg_stat_force_next_flush()"); err != nil {
		return 0, 0, fmt.Errorf("search bench: flush statistics: %w", err)
	}
	if err := conn.QueryRow(ctx, `SELECT coalesce(idx_blks_hit, 0), coalesce(idx_blks_read, 0) FROM pg_statio_all_indexes WHERE schemaname = 'facestream' AND indexrelname = $1`, index).
		Scan(&hit, &read); err != nil {
		return 0, 0, fmt.Errorf("search bench: index block statistics: %w", err)
	}
	return hit, read, nil
}

// measureIndex builds c's index over the stored embeddings, sweeps
// efSearch over the queries (one untimed pass warms the index pages, then
// the timed pass) and drops the index again when drop is set.
func measureIndex(ctx context.Context, conn *pgxpool.Conn, c SearchIndex, model string, dim int, efSearch []int,
	queries [][]float32, truth []topK, identities [][2]int, drop bool, log *slog.Logger,
) (*SearchIndexResult, error) {
	r := &SearchIndexResult{Index: c, LoadBefore: loadAvg()}
	log.Info("building index", "index", c.String(), "load", r.LoadBefore)
	start := time.Now()
	index, err := buildIndex(ctx, conn, c, model, dim)
	if err != nil {
		return nil, err
	}
	r.BuildSeconds = time.Since(start).Seconds()
	if err := conn.QueryRow(ctx, `SELECT pg_relation_size(format('facestream.%I', $1::text)::regclass), pg_get_indexdef(format('facestream.%I', $1::text)::regclass)`, index).
		Scan(&r.Bytes, &r.Definition); err != nil {
		return nil, fmt.Errorf("search bench: index size: %w", err)
	}
	log.Info("index built", "index", c.String(), "seconds", r.BuildSeconds, "bytes", r.Bytes)
	q, err := newSearchQuery(ctx, conn, c, model, dim)
	if err != nil {
		return nil, err
	}
	if err := q.usesIndex(ctx, conn, index, searchTenant, queries[0]); err != nil {
		return nil, err
	}
	for _, ef := range efSearch {
		if err := q.prepare(ctx, conn, ef); err != nil {
			return nil, err
		}
		for pass := range 2 {
			var lat, walkLat []time.Duration
			var recalls, idRecalls []float64
			same := 0
			// The timed pass interleaves the first-walk comparison; its
			// index blocks are counted apart.
			var walkHit, walkRead int64
			hit0, read0, err := indexBlocks(ctx, conn, index)
			if err != nil {
				return nil, err
			}
			// firstWalk times the comparison search of query i.
			firstWalk := func(i int) ([]uuid.UUID, error) {
				h0, r0, err := indexBlocks(ctx, conn, index)
				if err != nil {
					return nil, err
				}
				got, d, err := timedSearch(ctx, conn, q.firstWalk, q.planArgs(searchTenant, queries[i]))
				if err != nil {
					return nil, err
				}
				h1, r1, err := indexBlocks(ctx, conn, index)
				if err != nil {
					return nil, err
				}
				walkHit, walkRead = walkHit+h1-h0, walkRead+r1-r0
				walkLat = append(walkLat, d)
				return got, nil
			}
			// Every other query runs the comparison first, so that neither
			// side always finds the other's pages in the CPU caches.
			compare := pass == 1 && q.firstWalk != ""
			for i, qv := range queries {
				var other []uuid.UUID
				if compare && i%2 == 1 {
					if other, err = firstWalk(i); err != nil {
						return nil, err
					}
				}
				got, d, err := timedSearch(ctx, conn, q.sql, q.args(searchTenant, model, qv, ef))
				if err != nil {
					return nil, err
				}
				lat = append(lat, d)
				recalls = append(recalls, truth[i].recall(got))
				idRecalls = append(idRecalls, truth[i].identityRecall(got, identities[i]))
				if compare && i%2 == 0 {
					if other, err = firstWalk(i); err != nil {
						return nil, err
					}
				}
				if compare && slices.Equal(got, other) {
					same++
				}
			}
			if pass == 0 {
				continue
			}
			hit1, read1, err := indexBlocks(ctx, conn, index)
			if err != nil {
				return nil, err
			}
			l := summarize(lat)
			n := float64(len(queries))
			p := SearchPoint{EfSearch: ef, P50MS: l.P50, P95MS: l.P95, MeanMS: l.Mean, MinRecall: slices.Min(recalls),
				IndexBlocks:     float64(hit1+read1-hit0-read0-walkHit-walkRead) / n,
				IndexBlocksRead: float64(read1-read0-walkRead) / n}
			if len(walkLat) > 0 {
				wl := summarize(walkLat)
				p.FirstWalkP50MS, p.FirstWalkP95MS, p.FirstWalkSame = wl.P50, wl.P95, float64(same)/n
			}
			for _, x := range recalls {
				p.Recall10 += x / float64(len(recalls))
			}
			for _, x := range idRecalls {
				p.IdentityRecall += x / float64(len(idRecalls))
			}
			r.Points = append(r.Points, p)
			log.Info("searched", "index", c.String(), "ef_search", ef, "p50_ms", p.P50MS, "p95_ms", p.P95MS, "recall@10", p.Recall10,
				"identity_recall", p.IdentityRecall, "index_blocks", p.IndexBlocks, "index_blocks_read", p.IndexBlocksRead)
		}
	}
	r.LoadAfter = loadAvg()
	for i := range r.Points {
		if r.Points[i].Recall10 >= 0.95 {
			r.Chosen = &r.Points[i]
			break
		}
	}
	if _, err := conn.Exec(ctx, "RESET hnsw.ef_search; RESET hnsw.iterative_scan; RESET jit"); err != nil {
		return nil, fmt.Errorf("search bench: reset: %w", err)
	}
	if drop {
		if _, err := conn.Exec(ctx, "DROP INDEX facestream."+pgx.Identifier{index}.Sanitize()); err != nil {
			return nil, fmt.Errorf("search bench: drop index %s: %w", c, err)
		}
	}
	return r, nil
}

// timedSearch runs one top-10 query and returns the face ids it found and
// how long it took, rows read included.
func timedSearch(ctx context.Context, conn *pgxpool.Conn, sql string, args []any) ([]uuid.UUID, time.Duration, error) {
	t0 := time.Now()
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("search bench: search: %w", err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, 0, fmt.Errorf("search bench: search: %w", err)
	}
	return got, time.Since(t0), nil
}

// label is c for the report's build table.
func (c SearchIndex) label() string {
	if c.IsProduction() {
		return "production (`ensure_embedding_index`)"
	}
	return c.String()
}
