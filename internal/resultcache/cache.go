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

	"github.com/nats-io/nats.go"
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
	order *list.List               // of *item, most recent first
	items map[string]*list.Element // by Key.String(), the bucket key
	// removals counts the entries removed from the bucket that this cache
	// has heard of (Delete, Watch). A Get or Put that read or wrote the
	// bucket before a removal must not fill the LRU after it: it fills the
	// LRU only if removals has not moved since it started.
	removals uint64

	watchMu   sync.Mutex
	watcher   jetstream.KeyWatcher
	watchDone chan struct{}
}

type item struct {
	key   string
	entry Entry
}

// New returns a Cache with the tiers of cfg. Call Watch to keep its LRU in
// step with erasures made by other processes.
func New(cfg Config) *Cache {
	n := cfg.Entries
	if n == 0 {
		n = DefaultEntries
	}
	return &Cache{kv: cfg.KV, store: cfg.Store, max: max(n, 0), order: list.New(), items: map[string]*list.Element{}}
}

// Get returns the cached analysis of k and the tier it came from, or false.
// A hit in a slower tier fills the faster ones. An error of the bucket is
// returned; an error of the database tier is a miss (counted in
// StoreErrors), so that a PostgreSQL outage degrades the cache instead of
// stopping ingest. A database hit of an image erased meanwhile (after the
// lookup) is a miss, and whatever it put in the bucket is purged again.
func (c *Cache) Get(ctx context.Context, k Key) (Entry, Tier, bool, error) {
	if e, ok := c.getMemory(k); ok {
		return e, TierMemory, true, nil
	}
	gen := c.generation()
	if c.kv != nil {
		kve, err := c.kv.Get(ctx, k.String())
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return Entry{}, "", false, fmt.Errorf("get cached result: %w", err)
		default:
			var e Entry
			if err := json.Unmarshal(kve.Value(), &e); err == nil {
				c.putMemory(k, e, gen)
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
			e := Entry{ImageID: got.ImageID, Detector: got.Detector, Recognizer: got.Recognizer, Faces: got.Faces, AnalyzedAt: got.AnalyzedAt}
			if err := c.putKV(ctx, k, e); err != nil {
				return Entry{}, "", false, err
			}
			// An erasure may have committed between the lookup and the
			// bucket write, and purged the bucket before it: look again
			// after the write (an erasure after this look purges after the
			// write).
			erased, err := c.store.ImageErased(ctx, got.ImageID)
			if err != nil && ctx.Err() == nil {
				// Not known: as with a failed lookup, a miss, and the
				// entry that could be an erased image's goes again.
				c.storeErrors.Add(1)
				erased = true
			} else if err != nil {
				return Entry{}, "", false, fmt.Errorf("get cached result: %w", err)
			}
			if erased {
				if err := c.Delete(ctx, k); err != nil {
					return Entry{}, "", false, fmt.Errorf("get cached result: %w", err)
				}
				return Entry{}, "", false, nil
			}
			c.putMemory(k, e, gen)
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
	gen := c.generation()
	if err := c.putKV(ctx, k, e); err != nil {
		return err
	}
	c.putMemory(k, e, gen)
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
	if c.max == 0 {
		return Entry{}, false
	}
	key := k.String()
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return Entry{}, false
	}
	c.order.MoveToFront(el)
	return clone(el.Value.(*item).entry), true
}

// generation is the removals counter, read before touching the bucket.
func (c *Cache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.removals
}

// putMemory fills the LRU with e under k, unless an entry was removed from
// the bucket since gen was read (it might have been this one).
func (c *Cache) putMemory(k Key, e Entry, gen uint64) {
	if c.max == 0 {
		return
	}
	key := k.String()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.removals != gen {
		return
	}
	if el, ok := c.items[key]; ok {
		el.Value.(*item).entry = e
		c.order.MoveToFront(el)
		return
	}
	c.items[key] = c.order.PushFront(&item{key: key, entry: e})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*item).key)
	}
}

// evict removes the LRU entry of bucket key key, if any, and counts a
// removal.
func (c *Cache) evict(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removals++
	if el, ok := c.items[key]; ok {
		c.order.Remove(el)
		delete(c.items, key)
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

// Delete purges the entry of k, history included, from the key-value bucket
// and removes it from the in-process LRU (erasure of an image). A key that
// is not cached is not an error. Other processes' LRUs drop the entry when
// their Watch sees the purge.
func (c *Cache) Delete(ctx context.Context, k Key) error {
	var err error
	if c.kv != nil {
		if err = c.kv.Purge(ctx, k.String()); errors.Is(err, jetstream.ErrKeyNotFound) {
			err = nil
		}
	}
	// Evict after the purge, so that a Get that read the bucket before the
	// purge cannot fill the LRU after the eviction; evict on error too.
	c.evict(k.String())
	if err != nil {
		return fmt.Errorf("delete cached result: %w", err)
	}
	return nil
}

// Watch makes the in-process LRU follow the key-value bucket: whenever any
// process deletes or purges an entry there (an erasure, through Delete), the
// local copy is dropped too, so that no replica answers from an entry that
// was erased elsewhere. It returns once the watch is in place; the watch
// then runs until ctx ends, Close is called or the NATS connection closes.
// Without a bucket or an LRU it does nothing. Calling it again while a watch
// runs does nothing.
//
// A watch is a NATS ordered consumer with headers only, from the moment it
// starts (updates only): it costs one small message per cache write or
// removal in the bucket, and resumes where it left off after a reconnect.
func (c *Cache) Watch(ctx context.Context) error {
	if c.kv == nil || c.max == 0 {
		return nil
	}
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	if c.watcher != nil {
		return nil
	}
	w, err := c.kv.WatchAll(ctx, jetstream.UpdatesOnly(), jetstream.MetaOnly())
	if err != nil {
		return fmt.Errorf("watch the result cache bucket: %w", err)
	}
	c.watcher, c.watchDone = w, make(chan struct{})
	done := c.watchDone
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				_ = w.Stop() // drains Updates below, which the stop closes
				for range w.Updates() {
				}
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e != nil && (e.Operation() == jetstream.KeyValueDelete || e.Operation() == jetstream.KeyValuePurge) {
					c.evict(e.Key())
				}
			}
		}
	}()
	return nil
}

// Close stops the watch started by Watch and waits for it to end. It is
// idempotent, and does nothing without a watch.
func (c *Cache) Close() error {
	c.watchMu.Lock()
	w, done := c.watcher, c.watchDone
	c.watcher = nil
	c.watchMu.Unlock()
	if w == nil {
		return nil
	}
	err := w.Stop()
	if errors.Is(err, nats.ErrBadSubscription) || errors.Is(err, nats.ErrConnectionClosed) {
		err = nil // already stopped: the context ended or the connection closed
	}
	<-done
	if err != nil {
		return fmt.Errorf("close result cache: %w", err)
	}
	return nil
}
