-- 0002_search: per-model HNSW indexes and the similarity search functions.
--
-- Embeddings of different models live in one table with an untyped vector
-- column. Each model gets its own partial HNSW index over a cast of the column
-- to that model's dimension:
--
--   CREATE INDEX embeddings_hnsw_<slug>_<dim>_<hash> ON facestream.embeddings
--     USING hnsw ((embedding::vector(<dim>)) vector_cosine_ops) WHERE model = '<model>';
--
-- A query uses it only when it repeats both the cast and the model filter,
-- which is what facestream.search_faces does with dynamic SQL.

CREATE FUNCTION facestream.embedding_index_name(p_model text, p_dim integer) RETURNS text
LANGUAGE sql IMMUTABLE STRICT
AS $$
    SELECT 'embeddings_hnsw_'
        || left(trim(BOTH '_' FROM regexp_replace(lower(p_model), '[^a-z0-9]+', '_', 'g')), 28)
        || '_' || p_dim || '_' || left(md5(p_model), 8)
$$;
COMMENT ON FUNCTION facestream.embedding_index_name(text, integer) IS 'Name of the HNSW index of a model''s embeddings: embeddings_hnsw_<slug>_<dim>_<hash>, where slug is the model name lower-cased with every run of other characters than a-z and 0-9 turned into _ (at most 28 characters) and hash the first 8 hex digits of md5(model), so distinct models never share a name. At most 58 characters. Example: embedding_index_name(''MobileFaceNet'', 128) = ''embeddings_hnsw_mobilefacenet_128_'' || left(md5(''MobileFaceNet''), 8).';

CREATE FUNCTION facestream.ensure_embedding_index(p_model text, p_dim integer) RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
    v_index text := facestream.embedding_index_name(p_model, p_dim);
    v_dim   integer;
BEGIN
    IF p_model IS NULL OR p_dim IS NULL THEN
        RAISE EXCEPTION 'ensure_embedding_index: model and dim are required' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Fast path: the model is known and its index exists.
    SELECT m.dim INTO v_dim FROM facestream.embedding_models m WHERE m.model = p_model;
    IF FOUND AND v_dim = p_dim AND to_regclass(format('facestream.%I', v_index)) IS NOT NULL THEN
        RETURN v_index;
    END IF;
    -- Slow path, once per model: serialise the callers that register this model.
    PERFORM pg_advisory_xact_lock(hashtextextended('facestream.embedding_index:' || p_model, 0));
    SELECT m.dim INTO v_dim FROM facestream.embedding_models m WHERE m.model = p_model;
    IF FOUND AND v_dim <> p_dim THEN
        RAISE EXCEPTION 'ensure_embedding_index: model % has dimension %, not %', p_model, v_dim, p_dim
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT FOUND THEN
        INSERT INTO facestream.embedding_models (model, dim, index_name) VALUES (p_model, p_dim, v_index);
    END IF;
    EXECUTE format(
        'CREATE INDEX IF NOT EXISTS %I ON facestream.embeddings USING hnsw ((embedding::vector(%s)) vector_cosine_ops) WHERE model = %L',
        v_index, p_dim, p_model);
    EXECUTE format('COMMENT ON INDEX facestream.%I IS %L', v_index,
        format('HNSW cosine index of the %s-dimensional embeddings of model %s (made by facestream.ensure_embedding_index).', p_dim, p_model));
    RETURN v_index;
END
$$;
COMMENT ON FUNCTION facestream.ensure_embedding_index(text, integer) IS 'Registers a recognition model with its dimension in embedding_models and creates its partial HNSW cosine index (named by embedding_index_name) if missing; returns the index name. Idempotent and safe to call concurrently; call it before storing the first embedding of a model (embeddings has a foreign key to embedding_models). Fails if the model is already registered with another dimension. It builds the index with a plain CREATE INDEX, which blocks writes to embeddings while it runs: on a large table, create the index first with CREATE INDEX CONCURRENTLY under the same name.';

CREATE FUNCTION facestream.search_faces_query(p_model text, p_dim integer, p_enrolled_only boolean) RETURNS text
LANGUAGE sql IMMUTABLE STRICT
AS $$
    SELECT format($q$
SELECT r.face_id, r.image_id, r.subject_id, r.similarity
FROM (
    SELECT e.face_id, f.image_id, f.subject_id,
           1 - (e.embedding::vector(%1$s) <=> $1::vector(%1$s)) AS similarity
    FROM facestream.embeddings e
    JOIN facestream.faces f ON f.id = e.face_id
    WHERE e.model = %2$L AND e.tenant_id = $2%3$s
    ORDER BY e.embedding::vector(%1$s) <=> $1::vector(%1$s)
    LIMIT $3
) r
WHERE $4::double precision IS NULL OR r.similarity >= $4
ORDER BY r.similarity DESC$q$,
        p_dim, p_model, CASE WHEN p_enrolled_only THEN ' AND f.subject_id IS NOT NULL' ELSE '' END)
$$;
COMMENT ON FUNCTION facestream.search_faces_query(text, integer, boolean) IS 'The SQL text that search_faces runs for a model of dimension dim, with parameters $1 query vector, $2 tenant, $3 k, $4 minimum similarity (or NULL). The model and the dimension are literals so the planner can use the model''s partial HNSW index. Exposed so the plan can be checked with EXPLAIN.';

-- search_faces sets pgvector's hnsw.* parameters in its SET clauses. Until the
-- vector library is loaded in this session they are unknown placeholders,
-- which only a superuser may put in a SET clause: calling a vector function
-- loads the library and defines them.
SELECT vector_dims('[1]'::vector);

CREATE FUNCTION facestream.search_faces(
    p_tenant         text,
    p_model          text,
    p_query          vector,
    p_k              integer DEFAULT 10,
    p_min_similarity double precision DEFAULT NULL,
    p_enrolled_only  boolean DEFAULT false,
    p_ef_search      integer DEFAULT 100
) RETURNS TABLE (face_id uuid, image_id uuid, subject_id uuid, similarity double precision)
LANGUAGE plpgsql
SET hnsw.ef_search = 100
SET hnsw.iterative_scan = 'strict_order'
SET jit = off -- a top-k query is short: compiling it would cost more than it saves
AS $$
DECLARE
    v_dim integer;
BEGIN
    IF p_tenant IS NULL OR p_model IS NULL OR p_query IS NULL THEN
        RAISE EXCEPTION 'search_faces: tenant, model and query are required' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_k IS NULL OR p_k < 1 OR p_k > 1000 THEN
        RAISE EXCEPTION 'search_faces: k must be between 1 and 1000, got %', p_k USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_ef_search IS NULL OR p_ef_search < 1 OR p_ef_search > 1000 THEN
        RAISE EXCEPTION 'search_faces: ef_search must be between 1 and 1000, got %', p_ef_search USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT m.dim INTO v_dim FROM facestream.embedding_models m WHERE m.model = p_model;
    IF NOT FOUND THEN
        RETURN; -- no embedding of this model was ever stored
    END IF;
    IF vector_dims(p_query) <> v_dim THEN
        RAISE EXCEPTION 'search_faces: query has % dimensions, model % has %', vector_dims(p_query), p_model, v_dim
            USING ERRCODE = 'data_exception';
    END IF;
    -- Local to this call: the SET clauses above restore the caller's values on return.
    PERFORM set_config('hnsw.ef_search', greatest(p_ef_search, p_k)::text, true);
    RETURN QUERY EXECUTE facestream.search_faces_query(p_model, v_dim, coalesce(p_enrolled_only, false))
        USING p_query, p_tenant, p_k, p_min_similarity;
END
$$;
COMMENT ON FUNCTION facestream.search_faces(text, text, vector, integer, double precision, boolean, integer) IS
'Nearest faces of a tenant to a query embedding, among the embeddings of one model only, nearest first.
Returns at most k rows (face_id, image_id, subject_id, similarity) with similarity = 1 - cosine distance, in [-1, 1].
Arguments: tenant, model, query (a vector with the model''s dimension), k (1..1000, default 10),
min_similarity (drop rows below it; default NULL keeps all), enrolled_only (only faces linked to a subject; default false),
ef_search (HNSW candidate list size, 1..1000, default 100; raised to k when smaller; pgvector''s own default 40 gives poor recall).
Uses the model''s HNSW index (facestream.ensure_embedding_index) with hnsw.iterative_scan = strict_order, so the tenant and
enrolled_only filters still yield k rows when enough exist (pgvector stops after hnsw.max_scan_tuples candidates).
Returns no rows for a model that has no embeddings; fails when the query has the wrong dimension.
Example: SELECT * FROM facestream.search_faces(''default'', ''mobilefacenet'', $1, 10);';

CREATE FUNCTION facestream.identify(
    p_tenant         text,
    p_model          text,
    p_query          vector,
    p_k              integer DEFAULT 5,
    p_min_similarity double precision DEFAULT NULL,
    p_ef_search      integer DEFAULT 100
) RETURNS TABLE (subject_id uuid, name text, similarity double precision, face_id uuid)
LANGUAGE sql
AS $$
    SELECT best.subject_id, s.name, best.similarity, best.face_id
    FROM (
        SELECT DISTINCT ON (r.subject_id) r.subject_id, r.similarity, r.face_id
        FROM facestream.search_faces(p_tenant, p_model, p_query, least(greatest(p_k * 10, 50), 1000),
                                     p_min_similarity, true, p_ef_search) r
        ORDER BY r.subject_id, r.similarity DESC
    ) best
    JOIN facestream.subjects s ON s.tenant_id = p_tenant AND s.id = best.subject_id
    ORDER BY best.similarity DESC
    LIMIT p_k
$$;
COMMENT ON FUNCTION facestream.identify(text, text, vector, integer, double precision, integer) IS
'Enrolled subjects of a tenant most similar to a query embedding of one model, best first: at most k rows
(subject_id, name, similarity, face_id) where similarity is that of the subject''s closest reference face (face_id).
Considers the nearest max(10*k, 50) reference faces (at most 1000) found by search_faces with enrolled_only.
Arguments as search_faces; min_similarity is the match threshold (e.g. 0.4 for ArcFace-like models; NULL returns the k best).';
