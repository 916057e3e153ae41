-- 0003_erasure: an erased image stays erased.
--
-- An image can be erased while it is still in the pipeline (its messages in
-- the work stream). Without a record of the erasure, the aggregate stage
-- (or the rejection recorder) would store it again when its message arrives.
-- erase_image now leaves a tombstone (the image id, its tenant and when), and
-- a trigger refuses every insert of an images row whose id has one, whoever
-- inserts it. Faces need their image row (foreign key) and embeddings their
-- face, so no face or embedding of an erased image can be stored either.
--
-- The race: erase_image and the trigger both take a transaction-level
-- advisory lock on the image id before they look. An insert that comes while
-- an erasure is under way waits for it, then sees its tombstone (the trigger
-- reads with a fresh snapshot in READ COMMITTED, the default); an erasure
-- that comes while an insert is under way waits for it, then deletes the row
-- it wrote.

CREATE TABLE facestream.erased_images (
    image_id  uuid PRIMARY KEY,
    tenant_id text NOT NULL,
    erased_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE facestream.erased_images IS 'Tombstones of erased images: no images row with one of these ids can be inserted again (trigger images_not_erased), so a message of the image still in the pipeline cannot store it again. Only the id is kept: nothing of the image itself. Written by facestream.erase_image.';
COMMENT ON COLUMN facestream.erased_images.tenant_id IS 'The tenant the image belonged to (no foreign key: a tombstone outlives its tenant).';

-- Erasures made before this migration left their ids in the audit log.
INSERT INTO facestream.erased_images (image_id, tenant_id, erased_at)
SELECT DISTINCT ON (target) target::uuid, coalesce(tenant_id, ''), at
FROM facestream.audit_log
WHERE action = 'image.erase' AND target ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
ORDER BY target, at
ON CONFLICT (image_id) DO NOTHING;

CREATE FUNCTION facestream.image_lock(p_image uuid) RETURNS void
LANGUAGE sql
AS $$ SELECT pg_advisory_xact_lock(hashtextextended('facestream.image:' || p_image::text, 0)) $$;
COMMENT ON FUNCTION facestream.image_lock(uuid) IS 'Takes the transaction-level advisory lock of an image id, which erase_image and the trigger images_not_erased take before they look, so that an erasure and a write of the same image never interleave.';

CREATE FUNCTION facestream.refuse_erased_image() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM facestream.image_lock(NEW.id);
    IF EXISTS (SELECT 1 FROM facestream.erased_images WHERE image_id = NEW.id) THEN
        RAISE EXCEPTION 'image % was erased', NEW.id
            USING ERRCODE = 'ZF410', HINT = 'an erased image is never stored again';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION facestream.refuse_erased_image() IS 'Trigger of images_not_erased: refuses the insert of an image that was erased, with SQLSTATE ZF410 (the store reports it as ErrErased). It takes the image''s lock (image_lock) first.';
CREATE TRIGGER images_not_erased BEFORE INSERT ON facestream.images
    FOR EACH ROW EXECUTE FUNCTION facestream.refuse_erased_image();

CREATE OR REPLACE FUNCTION facestream.erase_image(p_tenant text, p_image uuid) RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
    n_faces integer;
BEGIN
    PERFORM facestream.image_lock(p_image);
    SELECT count(*) INTO n_faces FROM facestream.faces WHERE tenant_id = p_tenant AND image_id = p_image;
    DELETE FROM facestream.images WHERE tenant_id = p_tenant AND id = p_image;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO facestream.erased_images (image_id, tenant_id) VALUES (p_image, p_tenant)
    ON CONFLICT (image_id) DO NOTHING;
    INSERT INTO facestream.audit_log (tenant_id, actor, action, target, details)
    VALUES (p_tenant, facestream.audit_actor(), 'image.erase', p_image::text, jsonb_build_object('faces', n_faces));
    RETURN true;
END
$$;
COMMENT ON FUNCTION facestream.erase_image(text, uuid) IS 'Erases an image of a tenant with its faces and embeddings, leaves a tombstone in erased_images (the image can never be stored again) and records image.erase in audit_log. Returns false when the tenant has no such image.';
