package cache

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
