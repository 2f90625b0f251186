package cache

import "github.com/dgraph-io/badger/v4"

// Hooks for the tests of package cache_test.

// OpenChunked is Open with another chunk size, so that small test messages
// span several chunks.
func OpenChunked(opts Options, chunk int64) (*Store, error) { return open(opts, chunk) }

// EvictNow runs an eviction pass at once and returns the bytes evicted.
func (s *Store) EvictNow() int64 { return s.evict() }

// FlushAtimes writes the pending access times at once.
func (s *Store) FlushAtimes() { s.flushAtimes() }

// RunGC runs the value-log garbage collection at once.
func (s *Store) RunGC() { s.runGC() }

// CachedBytes is the bytes of all cached bodies.
func (s *Store) CachedBytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// PartialBytes is the bytes of the chunks of bodies kept from ranges and
// not yet complete.
func (s *Store) PartialBytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.partBytes
}

// ChunkCount is the number of body chunks in the database, with a record
// or without.
func (s *Store) ChunkCount() int {
	n := 0
	s.view(func(txn *badger.Txn) error {
		prefix := makePrefix(kindBody, s.account)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
			n++
		}
		return nil
	})
	return n
}
