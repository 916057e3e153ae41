-- 0001_init: the facestream schema — tenants, API keys, images, faces,
-- embeddings, subjects, usage counters and the audit log.
--
-- Conventions: every row belongs to a tenant; child tables carry tenant_id and
-- reference their parent by (tenant_id, id), so a row can never point at
-- another tenant's data. Times are timestamptz. Identifiers of images and faces
-- are UUIDs chosen by the pipeline (the CloudEvent subject is the image id).

CREATE EXTENSION IF NOT EXISTS vector;

CREATE SCHEMA IF NOT EXISTS facestream;
COMMENT ON SCHEMA facestream IS 'facestream: face analysis results, embeddings (pgvector), enrolled subjects, API keys and usage. Managed by `facestream migrate`.';

-- tenants ---------------------------------------------------------------------
CREATE TABLE facestream.tenants (
    id         text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name       text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE facestream.tenants IS 'Tenants: every other row belongs to exactly one. The id is a short slug (lower-case letters, digits, _ and -); the tenant "default" always exists.';
COMMENT ON COLUMN facestream.tenants.id IS 'Slug used in every other table and in events, e.g. "default" or "acme".';
INSERT INTO facestream.tenants (id, name) VALUES ('default', 'Default tenant');

-- api_keys --------------------------------------------------------------------
CREATE TABLE facestream.api_keys (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id             text NOT NULL REFERENCES facestream.tenants (id) ON DELETE CASCADE,
    name                  text NOT NULL CHECK (name <> ''),
    prefix                text NOT NULL UNIQUE CHECK (prefix ~ '^[A-Za-z0-9_]{6,16}$'),
    secret_hash           bytea NOT NULL CHECK (length(secret_hash) = 32),
    scopes                text[] NOT NULL DEFAULT '{read}'
                          CHECK (cardinality(scopes) > 0 AND scopes <@ ARRAY['read', 'write', 'admin']::text[]),
    rate_limit_per_minute integer CHECK (rate_limit_per_minute > 0),
    created_at            timestamptz NOT NULL DEFAULT now(),
    expires_at            timestamptz,
    revoked_at            timestamptz,
    last_used_at          timestamptz
);
CREATE INDEX api_keys_tenant_idx ON facestream.api_keys (tenant_id);
COMMENT ON TABLE facestream.api_keys IS 'API keys of the HTTP edge. The key itself is never stored: only its public prefix (to find the row) and the SHA-256 of the whole key (to check it). A key is revoked by setting revoked_at, never deleted, so usage and audit rows keep their meaning.';
COMMENT ON COLUMN facestream.api_keys.prefix IS 'Public, unique leading part of the key (6-16 characters of [A-Za-z0-9_]), shown in listings and used to look the key up.';
COMMENT ON COLUMN facestream.api_keys.secret_hash IS 'SHA-256 of the whole key (32 bytes). Keys are long random strings, so a fast hash is enough; compare in constant time.';
COMMENT ON COLUMN facestream.api_keys.scopes IS 'Any of read, write, admin.';
COMMENT ON COLUMN facestream.api_keys.rate_limit_per_minute IS 'Requests per minute allowed for this key; NULL means the service default.';

-- subjects --------------------------------------------------------------------
CREATE TABLE facestream.subjects (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id  text NOT NULL REFERENCES facestream.tenants (id) ON DELETE CASCADE,
    name       text NOT NULL CHECK (name <> ''),
    metadata   jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id)
);
CREATE INDEX subjects_tenant_name_idx ON facestream.subjects (tenant_id, name);
COMMENT ON TABLE facestream.subjects IS 'Enrolled identities. A subject''s reference faces are the faces rows whose subject_id points at it; facestream.identify matches a query embedding against them.';
COMMENT ON COLUMN facestream.subjects.metadata IS 'Free-form JSON object owned by the user (external ids, labels).';

-- images ----------------------------------------------------------------------
CREATE TABLE facestream.images (
    id            uuid PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES facestream.tenants (id) ON DELETE CASCADE,
    sha256        text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    source        text NOT NULL DEFAULT '',
    filename      text,
    content_type  text,
    width         integer CHECK (width > 0),
    height        integer CHECK (height > 0),
    byte_size     bigint NOT NULL CHECK (byte_size >= 0),
    status        text NOT NULL DEFAULT 'accepted' CHECK (status IN ('accepted', 'analyzed', 'rejected')),
    reject_reason text,
    model_pack    text NOT NULL,
    face_count    integer CHECK (face_count >= 0),
    submitted_at  timestamptz NOT NULL DEFAULT now(),
    analyzed_at   timestamptz,
    UNIQUE (tenant_id, id),
    CHECK ((status = 'rejected') = (reject_reason IS NOT NULL)),
    CHECK (status <> 'analyzed' OR (face_count IS NOT NULL AND analyzed_at IS NOT NULL))
);
CREATE INDEX images_result_cache_idx ON facestream.images (tenant_id, sha256, model_pack, analyzed_at DESC)
    WHERE status = 'analyzed';
CREATE INDEX images_tenant_submitted_idx ON facestream.images (tenant_id, submitted_at DESC);
COMMENT ON TABLE facestream.images IS 'One row per submitted image (the pixels are never stored here). Deleting an image deletes its faces and their embeddings.';
COMMENT ON COLUMN facestream.images.id IS 'Image id chosen at submission; the ce-subject of every event about this image.';
COMMENT ON COLUMN facestream.images.sha256 IS 'Lower-case hex SHA-256 of the image bytes as submitted; with tenant_id and model_pack the key of the result cache (index images_result_cache_idx).';
COMMENT ON COLUMN facestream.images.source IS 'Who or what submitted the image (CloudEvent source, e.g. "/api/v1" or "/camera/7").';
COMMENT ON COLUMN facestream.images.status IS 'accepted (in the pipeline), analyzed (faces stored) or rejected (see reject_reason).';
COMMENT ON COLUMN facestream.images.model_pack IS 'Name of the model pack that analyses (or analysed) the image.';

-- faces -----------------------------------------------------------------------
CREATE TABLE facestream.faces (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id      text NOT NULL,
    image_id       uuid NOT NULL,
    face_index     integer NOT NULL CHECK (face_index >= 0),
    box_x1         real NOT NULL,
    box_y1         real NOT NULL,
    box_x2         real NOT NULL,
    box_y2         real NOT NULL,
    landmarks      real[] NOT NULL CHECK (cardinality(landmarks) = 10),
    det_score      real NOT NULL CHECK (det_score BETWEEN 0 AND 1),
    age            real CHECK (age >= 0),
    gender         text CHECK (gender IN ('female', 'male')),
    gender_score   real CHECK (gender_score BETWEEN 0 AND 1),
    emotion        text,
    emotion_scores jsonb CHECK (jsonb_typeof(emotion_scores) = 'object'),
    yaw            real,
    pitch          real,
    roll           real,
    sharpness      real,
    brightness     real,
    face_size      real CHECK (face_size >= 0),
    quality        real CHECK (quality BETWEEN 0 AND 1),
    usable         boolean NOT NULL DEFAULT true,
    model_pack     text NOT NULL,
    subject_id     uuid,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (image_id, face_index),
    UNIQUE (tenant_id, id),
    CHECK (box_x2 >= box_x1 AND box_y2 >= box_y1),
    FOREIGN KEY (tenant_id, image_id) REFERENCES facestream.images (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, subject_id) REFERENCES facestream.subjects (tenant_id, id) ON DELETE SET NULL (subject_id)
);
CREATE INDEX faces_subject_idx ON facestream.faces (tenant_id, subject_id) WHERE subject_id IS NOT NULL;
COMMENT ON TABLE facestream.faces IS 'Faces found in an image, with everything the pipeline measured. (image_id, face_index) is unique so the aggregate stage can upsert idempotently. A face with a subject_id is a reference face of that enrolled subject.';
COMMENT ON COLUMN facestream.faces.face_index IS 'Position of the face in the detector output of its image, from 0.';
COMMENT ON COLUMN facestream.faces.box_x1 IS 'Bounding box in pixels of the original (EXIF-oriented) image: (box_x1, box_y1) top-left, (box_x2, box_y2) bottom-right.';
COMMENT ON COLUMN facestream.faces.landmarks IS 'Five landmarks in image pixels as x0,y0,...,x4,y4: left eye, right eye, nose tip, left mouth corner, right mouth corner (as seen in the image).';
COMMENT ON COLUMN facestream.faces.det_score IS 'Detector confidence, 0..1.';
COMMENT ON COLUMN facestream.faces.age IS 'Estimated age in years; NULL when the pack has no age model.';
COMMENT ON COLUMN facestream.faces.gender_score IS 'Confidence of gender, 0..1.';
COMMENT ON COLUMN facestream.faces.emotion IS 'Most likely emotion class; emotion_scores holds the probability of every class, e.g. {"happy":0.91,"neutral":0.05,...}.';
COMMENT ON COLUMN facestream.faces.yaw IS 'Head pose in degrees (yaw, pitch, roll), estimated from the landmarks.';
COMMENT ON COLUMN facestream.faces.sharpness IS 'Quality measures: sharpness (variance of the Laplacian), brightness (mean, 0..255), face_size (shorter box side, pixels), quality (combined, 0..1); usable says whether the face is good enough to embed, match and enrol.';
COMMENT ON COLUMN facestream.faces.subject_id IS 'The enrolled subject this face is a reference of; set to NULL when the subject is deleted.';

-- embeddings ------------------------------------------------------------------
CREATE TABLE facestream.embedding_models (
    model      text PRIMARY KEY CHECK (model ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$'),
    dim        integer NOT NULL CHECK (dim BETWEEN 1 AND 2000),
    index_name text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (model, dim)
);
COMMENT ON TABLE facestream.embedding_models IS 'Recognition models whose embeddings are stored, with their dimension and the name of their HNSW index. Rows are added by facestream.ensure_embedding_index; an embedding can only be stored for a model listed here, with that model''s dimension.';

CREATE TABLE facestream.embeddings (
    face_id    uuid NOT NULL,
    tenant_id  text NOT NULL,
    model      text NOT NULL,
    dim        integer NOT NULL,
    embedding  vector NOT NULL CHECK (vector_dims(embedding) = dim),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (face_id, model),
    FOREIGN KEY (tenant_id, face_id) REFERENCES facestream.faces (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (model, dim) REFERENCES facestream.embedding_models (model, dim)
);
COMMENT ON TABLE facestream.embeddings IS 'Face embeddings, one per face and recognition model. The column has no fixed dimension so models of different sizes coexist; each model has its own partial HNSW index on embedding::vector(dim) (see facestream.ensure_embedding_index). Never compare embeddings of different models: always filter on model, or use facestream.search_faces.';
COMMENT ON COLUMN facestream.embeddings.embedding IS 'L2-normalised embedding; compare with cosine distance (<=>) against vectors of the same model only.';
COMMENT ON COLUMN facestream.embeddings.tenant_id IS 'Copy of the face''s tenant (enforced by the foreign key), so searches filter on it without a join.';

-- usage -----------------------------------------------------------------------
CREATE TABLE facestream.usage (
    tenant_id  text NOT NULL REFERENCES facestream.tenants (id) ON DELETE CASCADE,
    api_key_id uuid REFERENCES facestream.api_keys (id) ON DELETE CASCADE,
    day        date NOT NULL,
    requests   bigint NOT NULL DEFAULT 0 CHECK (requests >= 0),
    images     bigint NOT NULL DEFAULT 0 CHECK (images >= 0),
    faces      bigint NOT NULL DEFAULT 0 CHECK (faces >= 0),
    UNIQUE NULLS NOT DISTINCT (tenant_id, api_key_id, day)
);
COMMENT ON TABLE facestream.usage IS 'Daily usage counters per tenant and API key (api_key_id NULL: work that came in without a key, e.g. straight from NATS). Add to them with facestream.record_usage.';
COMMENT ON COLUMN facestream.usage.day IS 'UTC day.';

-- audit_log -------------------------------------------------------------------
CREATE TABLE facestream.audit_log (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    tenant_id text,
    actor     text NOT NULL,
    action    text NOT NULL CHECK (action ~ '^[a-z_]+\.[a-z_]+$'),
    target    text NOT NULL,
    details   jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_tenant_at_idx ON facestream.audit_log (tenant_id, at DESC);
COMMENT ON TABLE facestream.audit_log IS 'Who did what and when, for erasures and API key changes. Append-only. Rows outlive the tenant they name (no foreign key).';
COMMENT ON COLUMN facestream.audit_log.actor IS 'Who: the session setting facestream.actor when set (e.g. "api_key:AbCd1234", "cli:alice"), else the database role.';
COMMENT ON COLUMN facestream.audit_log.action IS 'What, as <object>.<verb>: api_key.create, api_key.revoke, api_key.update, image.erase, subject.erase.';
COMMENT ON COLUMN facestream.audit_log.target IS 'Which object: its id.';

CREATE FUNCTION facestream.audit_actor() RETURNS text
LANGUAGE sql STABLE
AS $$ SELECT coalesce(nullif(current_setting('facestream.actor', true), ''), session_user::text) $$;
COMMENT ON FUNCTION facestream.audit_actor() IS 'The actor written to audit_log: the setting facestream.actor when set (SET LOCAL facestream.actor = ''api_key:AbCd1234''), else the database role.';

CREATE FUNCTION facestream.audit_api_keys() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO facestream.audit_log (tenant_id, actor, action, target, details)
        VALUES (NEW.tenant_id, facestream.audit_actor(), 'api_key.create', NEW.id::text,
                jsonb_build_object('prefix', NEW.prefix, 'name', NEW.name, 'scopes', NEW.scopes,
                                   'rate_limit_per_minute', NEW.rate_limit_per_minute));
    ELSIF NEW.revoked_at IS NOT NULL AND OLD.revoked_at IS NULL THEN
        INSERT INTO facestream.audit_log (tenant_id, actor, action, target, details)
        VALUES (NEW.tenant_id, facestream.audit_actor(), 'api_key.revoke', NEW.id::text,
                jsonb_build_object('prefix', NEW.prefix));
    ELSE
        INSERT INTO facestream.audit_log (tenant_id, actor, action, target, details)
        VALUES (NEW.tenant_id, facestream.audit_actor(), 'api_key.update', NEW.id::text,
                jsonb_build_object('prefix', NEW.prefix, 'name', NEW.name, 'scopes', NEW.scopes,
                                   'rate_limit_per_minute', NEW.rate_limit_per_minute,
                                   'expires_at', NEW.expires_at, 'revoked_at', NEW.revoked_at));
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION facestream.audit_api_keys() IS 'Trigger: writes api_key.create, api_key.revoke and api_key.update rows to audit_log. Touching only last_used_at is not audited.';
CREATE TRIGGER api_keys_audit_insert AFTER INSERT ON facestream.api_keys
    FOR EACH ROW EXECUTE FUNCTION facestream.audit_api_keys();
CREATE TRIGGER api_keys_audit_update AFTER UPDATE OF name, prefix, secret_hash, scopes, rate_limit_per_minute, expires_at, revoked_at ON facestream.api_keys
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION facestream.audit_api_keys();

CREATE FUNCTION facestream.erase_image(p_tenant text, p_image uuid) RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
    n_faces integer;
BEGIN
    SELECT count(*) INTO n_faces FROM facestream.faces WHERE tenant_id = p_tenant AND image_id = p_image;
    DELETE FROM facestream.images WHERE tenant_id = p_tenant AND id = p_image;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO facestream.audit_log (tenant_id, actor, action, target, details)
    VALUES (p_tenant, facestream.audit_actor(), 'image.erase', p_image::text, jsonb_build_object('faces', n_faces));
    RETURN true;
END
$$;
COMMENT ON FUNCTION facestream.erase_image(text, uuid) IS 'Erases an image of a tenant with its faces and embeddings, and records image.erase in audit_log. Returns false when the tenant has no such image.';

CREATE FUNCTION facestream.erase_subject(p_tenant text, p_subject uuid) RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
    n_faces integer;
BEGIN
    DELETE FROM facestream.faces WHERE tenant_id = p_tenant AND subject_id = p_subject;
    GET DIAGNOSTICS n_faces = ROW_COUNT;
    DELETE FROM facestream.subjects WHERE tenant_id = p_tenant AND id = p_subject;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO facestream.audit_log (tenant_id, actor, action, target, details)
    VALUES (p_tenant, facestream.audit_actor(), 'subject.erase', p_subject::text, jsonb_build_object('faces', n_faces));
    RETURN true;
END
$$;
COMMENT ON FUNCTION facestream.erase_subject(text, uuid) IS 'Erases an enrolled subject of a tenant together with its reference faces (and their embeddings), and records subject.erase in audit_log. Returns false when the tenant has no such subject.';

CREATE FUNCTION facestream.record_usage(p_tenant text, p_api_key uuid, p_requests bigint, p_images bigint, p_faces bigint)
RETURNS void
LANGUAGE sql
AS $$
    INSERT INTO facestream.usage AS u (tenant_id, api_key_id, day, requests, images, faces)
    VALUES (p_tenant, p_api_key, (now() AT TIME ZONE 'UTC')::date, p_requests, p_images, p_faces)
    ON CONFLICT (tenant_id, api_key_id, day) DO UPDATE
    SET requests = u.requests + EXCLUDED.requests,
        images   = u.images + EXCLUDED.images,
        faces    = u.faces + EXCLUDED.faces
$$;
COMMENT ON FUNCTION facestream.record_usage(text, uuid, bigint, bigint, bigint) IS 'Adds to today''s (UTC) usage counters of a tenant and API key (NULL: no key), creating the row on first use. Safe under concurrency.';
