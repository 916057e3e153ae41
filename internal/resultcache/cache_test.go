package resultcache_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/facestream/facestream/internal/natstest"
	"github.com/facestream/facestream/internal/pgtest"
	"github.com/facestream/facestream/internal/resultcache"
	"github.com/facestream/facestream/internal/store"
	fsnats "github.com/facestream/facestream/nats"
	"github.com/facestream/facestream/pkg/events"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, natstest.KnownClientGoroutines())
}

const sha = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

func entry(id string) resultcache.Entry {
	return resultcache.Entry{
		ImageID: id, Recognizer: "m4",
		Faces: []events.Face{{Index: 0, Box: events.Box{1, 2, 3, 4}, Score: 0.9, ID: "dropped",
			Embedding: &events.Embedding{Model: "m4", Dim: 4, Vector: events.Vector{1, 0, 0, 0}}}},
		AnalyzedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}
}

func TestLRUEvicts(t *testing.T) {
	ctx := context.Background()
	c := resultcache.New(resultcache.Config{Entries: 2})
	for _, p := range []string{"a", "b", "c"} {
		if err := c.Put(ctx, resultcache.Key{SHA256: sha, Pack: p}, entry(p)); err != nil {
			t.Fatal(err)
		}
	}
	if c.Len() != 2 {
		t.Errorf("len = %d", c.Len())
	}
	if _, _, ok, _ := c.Get(ctx, resultcache.Key{SHA256: sha, Pack: "a"}); ok {
		t.Error("oldest entry not evicted")
	}
	e, tier, ok, err := c.Get(ctx, resultcache.Key{SHA256: sha, Pack: "c"})
	if err != nil || !ok || tier != resultcache.TierMemory || e.ImageID != "c" || e.Faces[0].ID != "" {
		t.Errorf("get c = %+v %s %v %v", e, tier, ok, err)
	}
}

func TestTiers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv := natstest.Start(t)
	if _, err := fsnats.Apply(ctx, srv.JS, fsnats.WithMemoryStorage()); err != nil {
		t.Fatal(err)
	}
	kv, err := srv.JS.KeyValue(ctx, fsnats.BucketCache)
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(pgtest.NewMigrated(t))

	// Replica A puts; replica B (empty LRU) finds it in the bucket.
	a := resultcache.New(resultcache.Config{KV: kv, Store: st})
	b := resultcache.New(resultcache.Config{KV: kv, Store: st})
	k := resultcache.Key{Tenant: "acme", SHA256: sha, Pack: "dev"}
	if err := a.Put(ctx, k, entry("x")); err != nil {
		t.Fatal(err)
	}
	e, tier, ok, err := b.Get(ctx, k)
	if err != nil || !ok || tier != resultcache.TierKV || e.ImageID != "x" || e.Faces[0].Embedding == nil {
		t.Fatalf("replica b: %+v %s %v %v", e, tier, ok, err)
	}
	if _, tier, _, _ := b.Get(ctx, k); tier != resultcache.TierMemory {
		t.Errorf("second get from tier %s, want memory", tier)
	}

	// Only the database knows an analysis: found there, then in the bucket.
	an := store.Analysis{
		Image:      events.ImageInfo{ImageID: "db-1", Tenant: "acme", SHA256: sha, Width: 10, Height: 10, Size: 5},
		Pack:       "other",
		Faces:      entry("").Faces,
		AnalyzedAt: time.Now(),
	}
	an.Faces[0].ID = ""
	if err := st.SaveAnalysis(ctx, an); err != nil {
		t.Fatal(err)
	}
	k2 := resultcache.Key{Tenant: "acme", SHA256: sha, Pack: "other"}
	e, tier, ok, err = a.Get(ctx, k2)
	if err != nil || !ok || tier != resultcache.TierDatabase || e.ImageID != store.ImageUUID("db-1").String() || len(e.Faces) != 1 {
		t.Fatalf("database tier: %+v %s %v %v", e, tier, ok, err)
	}
	if _, tier, ok, _ := b.Get(ctx, k2); !ok || tier != resultcache.TierKV {
		t.Errorf("after a database hit, replica b found tier %s (ok=%v), want kv", tier, ok)
	}
	if _, _, ok, err := a.Get(ctx, resultcache.Key{Tenant: "acme", SHA256: sha, Pack: "none"}); ok || err != nil {
		t.Errorf("miss: ok=%v err=%v", ok, err)
	}
}

// TestWatchDropsEntriesErasedElsewhere: two processes' caches on one NATS
// server. An erasure through one (Delete) must stop the other answering
// from its in-process LRU too, not only from the bucket.
func TestWatchDropsEntriesErasedElsewhere(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv := natstest.Start(t)
	if _, err := fsnats.Apply(ctx, srv.JS, fsnats.WithMemoryStorage()); err != nil {
		t.Fatal(err)
	}
	kv, err := srv.JS.KeyValue(ctx, fsnats.BucketCache)
	if err != nil {
		t.Fatal(err)
	}
	eraser := resultcache.New(resultcache.Config{KV: kv})
	other := resultcache.New(resultcache.Config{KV: kv})
	for _, c := range []*resultcache.Cache{eraser, other} {
		if err := c.Watch(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Watch(ctx); err != nil { // a second call changes nothing
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := c.Close(); err != nil {
				t.Error(err)
			}
			if err := c.Close(); err != nil { // idempotent
				t.Error(err)
			}
		})
	}
	erased := resultcache.Key{Tenant: "acme", SHA256: sha, Pack: "dev"}
	kept := resultcache.Key{Tenant: "acme", SHA256: sha, Pack: "other"}
	for _, k := range []resultcache.Key{erased, kept} {
		if err := eraser.Put(ctx, k, entry(k.Pack)); err != nil {
			t.Fatal(err)
		}
		// The other process answers from the bucket, then from its LRU.
		if _, tier, ok, err := other.Get(ctx, k); err != nil || !ok || tier != resultcache.TierKV {
			t.Fatalf("other process, first get: %s %v %v", tier, ok, err)
		}
		if _, tier, ok, err := other.Get(ctx, k); err != nil || !ok || tier != resultcache.TierMemory {
			t.Fatalf("other process, second get: %s %v %v", tier, ok, err)
		}
	}

	if err := eraser.Delete(ctx, erased); err != nil {
		t.Fatal(err)
	}
	if _, tier, ok, err := eraser.Get(ctx, erased); ok || err != nil {
		t.Errorf("the erasing process still answers from %s (%v)", tier, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, tier, ok, err := other.Get(ctx, erased)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the other process still answers the erased entry from %s", tier)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if other.Len() != 1 {
		t.Errorf("the other process's LRU holds %d entries, want only the one not erased", other.Len())
	}
	if e, tier, ok, err := other.Get(ctx, kept); err != nil || !ok || tier != resultcache.TierMemory || e.ImageID != "other" {
		t.Errorf("the entry not erased: %+v %s %v %v", e, tier, ok, err)
	}
}

// TestWatchEndsWithItsContext: a watch stops when its context ends (goleak
// in TestMain finds a goroutine left behind), and Close afterwards is fine.
func TestWatchEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv := natstest.Start(t)
	if _, err := fsnats.Apply(ctx, srv.JS, fsnats.WithMemoryStorage()); err != nil {
		t.Fatal(err)
	}
	kv, err := srv.JS.KeyValue(ctx, fsnats.BucketCache)
	if err != nil {
		t.Fatal(err)
	}
	c := resultcache.New(resultcache.Config{KV: kv})
	wctx, stop := context.WithCancel(ctx)
	if err := c.Watch(wctx); err != nil {
		t.Fatal(err)
	}
	stop()
	if err := c.Close(); err != nil {
		t.Errorf("close after the context ended: %v", err)
	}
	// Without a bucket, or without an LRU, there is nothing to watch.
	for _, cfg := range []resultcache.Config{{}, {KV: kv, Entries: -1}} {
		c := resultcache.New(cfg)
		if err := c.Watch(ctx); err != nil {
			t.Errorf("watch %+v: %v", cfg, err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("close %+v: %v", cfg, err)
		}
	}
}
