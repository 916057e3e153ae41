package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/facestream/facestream/internal/resultcache"
	"github.com/facestream/facestream/internal/stages/crops"
	fsnats "github.com/facestream/facestream/nats"
	"github.com/facestream/facestream/pkg/events"
)

// DELETE /v1/images/{id}: erase an image for good.
func (s *Server) eraseImage(w http.ResponseWriter, r *http.Request, c *call) {
	id, ok := parseID(r.PathValue("id"))
	if !ok {
		writeProblem(w, r, problem(http.StatusNotFound, CodeNotFound, "no such image"))
		return
	}
	err := s.EraseImage(r.Context(), c.tenant(), id.String(), "api_key:"+c.key.Prefix)
	switch {
	case errors.Is(err, errNotFound):
		writeProblem(w, r, problem(http.StatusNotFound, CodeNotFound, "no such image"))
	case err != nil:
		writeProblem(w, r, s.internal(r.Context(), "erase image", err))
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// EraseImage erases image id of tenant: its rows (facestream.erase_image,
// which writes the audit row and the tombstone that keeps the image from
// being stored again), its payloads and crops in the object store, its
// result-cache entries (in-process and key-value; other processes' LRUs
// follow the bucket), its results in the results stream and its dead
// letters. The rows go first: an error afterwards leaves only copies that
// their TTLs remove, and the erasure can be repeated: erasing an erased
// image of the tenant again removes its copies again (all but the cache
// entry, whose key went with the row).
//
// The payload and crops of an image still in the pipeline (status
// accepted) are left to it: the stages after the erasure need them to
// reach aggregate, which ends the image as erased and deletes them (a stage
// that found them gone would reject the image as blob_missing, or
// dead-letter it with its faces); the bucket TTL removes them otherwise.
func (s *Server) EraseImage(ctx context.Context, tenant, id, actor string) error {
	var sha, pack, status string
	err := s.d.DB.QueryRow(ctx, `SELECT sha256, model_pack, status FROM facestream.images WHERE tenant_id = $1 AND id = $2::uuid`, tenant, id).Scan(&sha, &pack, &status)
	if errors.Is(err, pgx.ErrNoRows) {
		var again bool
		err := s.d.DB.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM facestream.erased_images WHERE tenant_id = $1 AND image_id = $2::uuid)`, tenant, id).Scan(&again)
		if err != nil {
			return fmt.Errorf("erase image %s: %w", id, err)
		}
		if !again {
			return errNotFound
		}
		return s.eraseCopies(ctx, tenant, id, "", "", true)
	}
	if err != nil {
		return fmt.Errorf("erase image %s: %w", id, err)
	}
	var erased bool
	err = pgx.BeginFunc(ctx, s.d.DB, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('facestream.actor', $1, true)`, actor); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT facestream.erase_image($1, $2::uuid)`, tenant, id).Scan(&erased)
	})
	if err != nil {
		return fmt.Errorf("erase image %s: %w", id, err)
	}
	if !erased {
		return errNotFound
	}
	return s.eraseCopies(ctx, tenant, id, sha, pack, status != "accepted")
}

// eraseCopies removes every copy of erased image id outside PostgreSQL; the
// result-cache entry only when sha is known, the blobs only when withBlobs.
func (s *Server) eraseCopies(ctx context.Context, tenant, id, sha, pack string, withBlobs bool) error {
	var errs []error
	// Object store: the edge's claim check, ingest's, and the crop sets.
	if withBlobs {
		idSum := sha256.Sum256([]byte(id))
		for _, key := range []string{blobKey(id), "ingest/" + hex.EncodeToString(idSum[:16]),
			crops.Key(id, events.CropAligned112), crops.Key(id, events.CropCentered96)} {
			if err := s.d.Blobs.Delete(ctx, events.BlobRef{Bucket: fsnats.BucketImages, Key: key}); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// Result cache.
	cache := s.d.Cache
	if cache == nil {
		kv, err := s.d.JS.KeyValue(ctx, fsnats.BucketCache)
		if err != nil {
			errs = append(errs, err)
		} else {
			cache = resultcache.New(resultcache.Config{KV: kv, Entries: -1})
		}
	}
	if cache != nil && sha != "" {
		if err := cache.Delete(ctx, resultcache.Key{Tenant: tenant, SHA256: sha, Pack: pack}); err != nil {
			errs = append(errs, err)
		}
	}
	// Results stream: every stored result of the image, by subject.
	if err := s.purgeResults(ctx, id); err != nil {
		errs = append(errs, err)
	}
	// Dead letters: they may carry the image inline.
	if err := s.purgeDeadLetters(ctx, id); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("erase image %s: %w", id, err)
	}
	return nil
}

func (s *Server) purgeResults(ctx context.Context, imageID string) error {
	stream, err := s.d.JS.Stream(ctx, fsnats.StreamResults)
	if err != nil {
		return fmt.Errorf("purge results: %w", err)
	}
	for _, typ := range []string{events.TypeImageAnalyzed, events.TypeImageRejected, events.TypeFaceMatched} {
		if err := stream.Purge(ctx, jetstream.WithPurgeSubject(events.ResultSubject(typ, imageID))); err != nil {
			return fmt.Errorf("purge results: %w", err)
		}
	}
	return nil
}

// DELETE /v1/subjects/{id}: erase a subject with its reference faces.
func (s *Server) eraseSubject(w http.ResponseWriter, r *http.Request, c *call) {
	id, ok := parseID(r.PathValue("id"))
	if !ok {
		writeProblem(w, r, problem(http.StatusNotFound, CodeNotFound, "no such subject"))
		return
	}
	var erased bool
	err := s.inTenantTx(r.Context(), c, func(tx pgx.Tx) error {
		return tx.QueryRow(r.Context(), `SELECT facestream.erase_subject($1, $2)`, c.tenant(), id).Scan(&erased)
	})
	switch {
	case err != nil:
		writeProblem(w, r, s.internal(r.Context(), "erase subject", err))
	case !erased:
		writeProblem(w, r, problem(http.StatusNotFound, CodeNotFound, "no such subject"))
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}
