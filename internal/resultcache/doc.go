// Package resultcache is facestream's three-tier result cache: the same
// image bytes (sha256) analysed with the same model pack for the same tenant
// need not be analysed again.
//
// The tiers, fastest first:
//
//  1. an in-process LRU of bounded size (per replica);
//  2. the JetStream key-value bucket facestream-cache, shared by every
//     replica, whose entries expire with the bucket's TTL;
//  3. PostgreSQL (store.LookupCached), the long-term record of every stored
//     analysis.
//
// Get looks in each tier in turn and fills the faster tiers on a hit lower
// down; Put (called by the aggregate stage once a result is stored) fills
// the LRU and the key-value bucket. An entry holds the faces with their
// embeddings and attributes, so that the ingest stage can answer a repeated
// image with a faces.analyzed event that the aggregate stage stores as usual.
//
// Erasure: Delete purges an entry from the bucket (history included) and
// from the LRU; Watch makes every process's LRU follow the bucket, dropping
// an entry as soon as its purge or delete reaches the process, so no replica
// answers a re-submission of erased bytes from memory. A fill of the LRU
// that read or wrote the bucket before a removal it has since heard of is
// skipped, and a database hit of an image erased meanwhile is a miss and is
// purged from the bucket again.
//
// A *Cache is safe for concurrent use. Any tier may be absent (nil).
package resultcache
