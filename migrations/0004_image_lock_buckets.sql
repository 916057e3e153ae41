-- 0004_image_lock_buckets: the image lock of 0003 in a bounded key space.
--
-- 0003 gave every image id its own transaction-level advisory lock, taken by
-- the images_not_erased trigger for every inserted row. A transaction that
-- inserts many images (a COPY, a bulk import) then holds one lock per row
-- until it commits and runs out of the shared lock table (SQLSTATE 53200,
-- "out of shared memory": max_locks_per_transaction × max_connections slots
-- for the whole server) after a few thousand rows.
--
-- The lock now names one of 1024 buckets of the id (the two-key form of the
-- advisory lock, first key the constant facestream image-lock class), so a
-- transaction holds at most 1024 image locks however many rows it writes.
-- An erasure and a write of the same image still never interleave; an
-- erasure may now also wait for a write of another image in its bucket,
-- which only costs that write's remaining milliseconds.

CREATE OR REPLACE FUNCTION facestream.image_lock(p_image uuid) RETURNS void
LANGUAGE sql
AS $$ SELECT pg_advisory_xact_lock(1179862861, hashtext(p_image::text) & 1023) $$;
COMMENT ON FUNCTION facestream.image_lock(uuid) IS 'Takes the transaction-level advisory lock of an image id''s bucket (1024 buckets, lock class 1179862861 = ''FSIM''), which erase_image and the trigger images_not_erased take before they look, so that an erasure and a write of the same image never interleave; a transaction holds at most 1024 such locks whatever it writes.';
