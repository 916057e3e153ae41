-- 0005_cached_detail: what a cached answer was missing.
--
-- The result cache's database tier (store.LookupCached) answers a repeated
-- image from the stored analysis. Two things of the original answer were
-- not stored and so came back empty: which detector found the faces, and
-- why a face failed the quality gate (the face's quality reason).

ALTER TABLE facestream.images ADD COLUMN detector text;
COMMENT ON COLUMN facestream.images.detector IS 'The detection model of the model pack that found the faces (the analysis event''s detector); NULL for images stored before 0005 and for rejected images.';

ALTER TABLE facestream.faces ADD COLUMN quality_reason text;
COMMENT ON COLUMN facestream.faces.quality_reason IS 'The first quality threshold the face failed (events.QualityReason, e.g. too_small, blurry); NULL when it is usable or was stored before 0005.';
