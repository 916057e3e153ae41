package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/facestream/facestream/internal/resultcache"
	"github.com/facestream/facestream/internal/stages/aggregate"
	fsnats "github.com/facestream/facestream/nats"
	"github.com/facestream/facestream/pkg/events"
)

// eraseInFlight submits each image and erases it as soon as it is accepted,
// while its messages are still in the pipeline. Once the pipeline is idle,
// none of them may be stored (in any status), held in the object store,
// cached, or have a stored result other than image.rejected with reason
// erased — whichever of the erasure and the analysis came first.
func eraseInFlight(t *testing.T, e *env, writer, admin, reader string, imgs ...[]byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var ids []string
	for _, img := range imgs {
		r := e.do(t, jsonReq(http.MethodPost, "/v1/images", writer, map[string]any{"image": b64(img), "options": map[string]any{"skip_cache": true}}))
		var out struct{ ID string }
		if r.status != http.StatusAccepted || json.Unmarshal(r.body, &out) != nil || out.ID == "" {
			t.Fatalf("submit: %d %s", r.status, trim(r.body))
		}
		if r = e.do(t, request{method: http.MethodDelete, path: "/v1/images/" + out.ID, key: admin}); r.status != http.StatusNoContent {
			t.Fatalf("erase %s in flight: %d %s", out.ID, r.status, trim(r.body))
		}
		ids = append(ids, out.ID)
	}

	// Wait until every stage and the recorder have nothing left.
	consumers := map[string]string{aggregate.ConsumerRecorder: fsnats.StreamResults}
	for _, s := range []string{events.StageIngest, events.StageDetect, events.StageEmbed, events.StageAttrs, events.StageAggregate} {
		consumers[s] = fsnats.StreamWork
	}
	deadline := time.Now().Add(90 * time.Second)
	for busy := true; busy; {
		busy = false
		for name, stream := range consumers {
			c, err := e.nats.JS.Consumer(ctx, stream, name)
			if err != nil {
				t.Fatal(err)
			}
			info, err := c.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.NumPending > 0 || info.NumAckPending > 0 {
				busy = true
			}
		}
		if busy && time.Now().After(deadline) {
			t.Fatal("the pipeline never became idle")
		}
		if busy {
			time.Sleep(50 * time.Millisecond)
		}
	}

	results, err := e.nats.JS.Stream(ctx, fsnats.StreamResults)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := e.nats.JS.ObjectStore(ctx, fsnats.BucketImages)
	if err != nil {
		t.Fatal(err)
	}
	objects, err := obj.List(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
		t.Fatal(err)
	}
	endedErased := 0
	for i, id := range ids {
		var n int
		if err := e.db.QueryRow(ctx, `SELECT (SELECT count(*) FROM facestream.images WHERE id = $1::uuid)
 + (SELECT count(*) FROM facestream.faces WHERE image_id = $1::uuid)`, id).Scan(&n); err != nil || n != 0 {
			t.Errorf("image %s erased in flight: %d rows (%v)", id, n, err)
		}
		if r := e.do(t, request{method: http.MethodGet, path: "/v1/images/" + id, key: reader}); r.status != http.StatusNotFound {
			t.Errorf("GET %s after erasing it in flight: %d", id, r.status)
		}
		idSum := sha256.Sum256([]byte(id))
		for _, o := range objects {
			if strings.Contains(o.Name, id) || o.Name == "ingest/"+hex.EncodeToString(idSum[:16]) {
				t.Errorf("object store keeps %s", o.Name)
			}
		}
		for _, typ := range []string{events.TypeImageAnalyzed, events.TypeFaceMatched} {
			if _, err := results.GetLastMsgForSubject(ctx, events.ResultSubject(typ, id)); !errors.Is(err, jetstream.ErrMsgNotFound) {
				t.Errorf("the results stream keeps a %s of %s (%v)", typ, id, err)
			}
		}
		m, err := results.GetLastMsgForSubject(ctx, events.ResultSubject(events.TypeImageRejected, id))
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound): // analysed before the erasure, which purged the result
		case err != nil:
			t.Fatal(err)
		default:
			var rej events.ImageRejected
			if err := json.Unmarshal(m.Data, &rej); err != nil || rej.Reason != events.RejectErased || rej.SHA256 != "" {
				t.Errorf("the result of %s: %s (%v); want image.rejected erased, without its sha256", id, m.Data, err)
			}
			endedErased++
		}
		kv, err := e.nats.JS.KeyValue(ctx, fsnats.BucketCache)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(imgs[i])
		key := resultcache.Key{Tenant: "acme", SHA256: hex.EncodeToString(sum[:]), Pack: e.deps.Pack.Name}
		if ent, err := kv.Get(ctx, key.String()); err == nil {
			var c resultcache.Entry
			if json.Unmarshal(ent.Value(), &c) == nil && c.ImageID == id {
				t.Errorf("the cache bucket holds the result of %s", id)
			}
		}
	}
	t.Logf("%d of %d images erased in flight ended as image.rejected erased; the others were analysed before the erasure removed them", endedErased, len(ids))
}
