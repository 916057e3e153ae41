package resultcache

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/facestream/facestream/internal/store"
	"github.com/facestream/facestream/pkg/events"
)

// ExtCachedFrom is the CloudEvents extension the ingest stage sets on a
// faces.analyzed answered from the cache: the id of the image whose
// analysis it repeats. The aggregate stage reads it to mark the result
// cached (ImageAnalyzed.Cached, CachedFrom).
const ExtCachedFrom = "cachedfrom"

// DefaultEntries is the default size of the in-process LRU.
const DefaultEntries = 1024

// maxKVValue bounds an entry stored in the key-value bucket, below the NATS
// server's default max_payload (1 MB) with room for headers. Larger entries
// (hundreds of faces) live in the LRU and PostgreSQL only.
const maxKVValue = 900 << 10

// Key identifies a cached result.
type Key struct {
	Tenant string
	SHA256 string
	Pack   string
}

// String returns the key-value bucket key of k: "r." and the hex SHA-256 of
// the tenant, pack and image sha256 (bucket keys allow few characters).
func (k Key) String() string {
	sum := sha256.Sum256([]byte(store.TenantOf(k.Tenant) + "\x00" + k.Pack + "\x00" + k.SHA256))
	return "r." + hex.EncodeToString(sum[:])
}

// Entry is a cached analysis.
type Entry struct {
	// ImageID is the image whose analysis this is.
	ImageID    string `json:"image_id"`
	Detector   string `json:"detector,omitempty"`
	Recognizer string `json:"recognizer,omitempty"`
	// Faces carry box, landmarks, score, embedding and attributes; ID and
	// Match are not cached (they belong to an image and a moment).
	Faces      []events.Face `json:"faces"`
	AnalyzedAt time.Time     `json:"analyzed_at"`
}

// Tier names where Get found an entry.
type Tier string

// The tiers.
const (
	TierMemory   Tier = "memory"
	TierKV       Tier = "kv"
	TierDatabase Tier = "database"
)

// Config configures a Cache. Every tier is optional.
type Config struct {
	// Entries bounds the in-process LRU; 0 means DefaultEntries, negative
	// turns the LRU off.
	Entries int
	// KV is the facestream-cache key-value bucket; nil turns the tier off.
	KV jetstream.KeyValue
	// Store is the database; nil turns the tier off.
	Store *store.Store
}

// Cache is the three-tier result cache. It is safe for concurrent use.
type Cache struct {
	kv    jetstream.KeyValue
	store *store.Store
	// storeErrors counts database lookups that failed and became misses.
	storeErrors atomic.Int64
	max         int

	mu    sync.Mutex
	order *list.List // of *item, most recent first
	items map[Key]*list.Element
}

type item struct {
	key   Key
	entry Entry
}

// New returns a Cache with the tiers of cfg.
func New(cfg Config) *Cache {
	n := cfg.Entries
	if n == 0 {
		n = DefaultEntries
	}
	return &Cache{kv: cfg.KV, store: cfg.Store, max: max(n, 0), order: list.New(), items: map[Key]*list.Element{}}
}

// Get returns the cached analysis of k and the tier it came from, or false.
// A hit in a slower tier fills the faster ones. An error of the bucket is
// returned; an error of the database tier is a miss (counted in
// StoreErrors), so that a PostgreSQL outage degrades the cache instead of
// stopping ingest.
func (c *Cache) Get(ctx context.Context, k Key) (Entry, Tier, bool, error) {
	if e, ok := c.getMemory(k); ok {
		return e, TierMemory, true, nil
	}
	if c.kv != nil {
		kve, err := c.kv.Get(ctx, k.String())
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return Entry{}, "", false, fmt.Errorf("get cached result: %w", err)
		default:
			var e Entry
			if err := json.Unmarshal(kve.Value(), &e); err == nil {
				c.putMemory(k, e)
				return clone(e), TierKV, true, nil
			}
			// An entry that does not decode (another version?) is a miss;
			// the next Put replaces it.
		}
	}
	if c.store != nil {
		got, ok, err := c.store.LookupCached(ctx, k.Tenant, k.SHA256, k.Pack)
		if err != nil && ctx.Err() == nil {
			// Graceful degradation: the database tier is optional. While
			// PostgreSQL is down a lookup is a miss (the image is analysed
			// again, and the aggregate stage's upsert keeps the effect
			// exactly once), so ingest never stalls on the database.
			c.storeErrors.Add(1)
			return Entry{}, "", false, nil
		}
		if err != nil {
			return Entry{}, "", false, fmt.Errorf("get cached result: %w", err)
		}
		if ok {
			e := Entry{ImageID: got.ImageID, Recognizer: got.Recognizer, Faces: got.Faces, AnalyzedAt: got.AnalyzedAt}
			if err := c.putKV(ctx, k, e); err != nil {
				return Entry{}, "", false, err
			}
			c.putMemory(k, e)
			return clone(e), TierDatabase, true, nil
		}
	}
	return Entry{}, "", false, nil
}

// Put stores e under k in the LRU and the key-value bucket. Faces' ID and
// Match are dropped.
func (c *Cache) Put(ctx context.Context, k Key, e Entry) error {
	e = clone(e)
	for i := range e.Faces {
		e.Faces[i].ID, e.Faces[i].Match = "", nil
	}
	if err := c.putKV(ctx, k, e); err != nil {
		return err
	}
	c.putMemory(k, e)
	return nil
}

func (c *Cache) putKV(ctx context.Context, k Key, e Entry) error {
	if c.kv == nil {
		return nil
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("put cached result: %w", err)
	}
	if len(b) > maxKVValue {
		return nil
	}
	if _, err := c.kv.Put(ctx, k.String(), b); err != nil {
		return fmt.Errorf("put cached result: %w", err)
	}
	return nil
}

func (c *Cache) getMemory(k Key) (Entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[k]
	if !ok {
		return Entry{}, false
	}
	c.order.MoveToFront(el)
	return clone(el.Value.(*item).entry), true
}

func (c *Cache) putMemory(k Key, e Entry) {
	if c.max == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		el.Value.(*item).entry = e
		c.order.MoveToFront(el)
		return
	}
	c.items[k] = c.order.PushFront(&item{key: k, entry: e})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*item).key)
	}
}

// Len returns the number of entries in the in-process LRU.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// clone copies e deeply enough that callers may change its faces.
func clone(e Entry) Entry {
	e.Faces = append([]events.Face(nil), e.Faces...)
	if e.Faces == nil {
		e.Faces = []events.Face{}
	}
	return e
}

// StoreErrors is how many database-tier lookups failed and were answered as
// misses (see Get).
func (c *Cache) StoreErrors() int64 { return c.storeErrors.Load() }

// Delete removes the entry of k from the in-process LRU and purges it,
// history included, from the key-value bucket (erasure of an image). A key
// that is not cached is not an error.
func (c *Cache) Delete(ctx context.Context, k Key) error {
	c.mu.Lock()
	if el, ok := c.items[k]; ok {
		c.order.Remove(el)
		delete(c.items, k)
	}
	c.mu.Unlock()
	if c.kv == nil {
		return nil
	}
	if err := c.kv.Purge(ctx, k.String()); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("delete cached result: %w", err)
	}
	return nil
}
