package cache

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"mailfs/remote"
)

// The index. Functions named *Locked expect mu held.

func (s *Store) addBody(f fv, key string, m *bodyMeta) {
	if s.bodies[f] == nil {
		s.bodies[f] = map[string]*bodyMeta{}
	}
	if old := s.bodies[f][key]; old != nil {
		s.total -= old.size
	}
	s.bodies[f][key] = m
	s.total += m.size
}

func (s *Store) removeBodyLocked(f fv, key string) *bodyMeta {
	m := s.bodies[f][key]
	if m == nil {
		return nil
	}
	delete(s.bodies[f], key)
	if len(s.bodies[f]) == 0 {
		delete(s.bodies, f)
	}
	s.total -= m.size
	return m
}

func (s *Store) addHeader(f fv, key string) {
	if s.headers[f] == nil {
		s.headers[f] = map[string]struct{}{}
	}
	s.headers[f][key] = struct{}{}
}

func (s *Store) removeHeaderLocked(f fv, key string) bool {
	if _, ok := s.headers[f][key]; !ok {
		return false
	}
	delete(s.headers[f], key)
	if len(s.headers[f]) == 0 {
		delete(s.headers, f)
	}
	return true
}

func (s *Store) setFolderNames(folders []remote.Folder, enc string) {
	s.folderNames = make(map[string]bool, len(folders))
	for _, f := range folders {
		s.folderNames[f.Name] = true
	}
	s.foldersEnc = enc
}

// currentLocked reports whether ref's UIDVALIDITY may be served: it is the
// one of the folder's cached listing, or the folder has none.
func (s *Store) currentLocked(ref remote.Ref) bool {
	v, ok := s.validity[ref.Folder]
	return !ok || v == ref.UIDValidity
}

// tickLocked hands out access times: the wall clock, strictly increasing,
// so that the LRU order is exact.
func (s *Store) tickLocked() int64 {
	now := time.Now().UnixNano()
	if now <= s.clock {
		now = s.clock + 1
	}
	s.clock = now
	return now
}

// lookup returns a copy of the record of ref's body, if it is cached and
// may be served.
func (s *Store) lookup(ref remote.Ref) (bodyMeta, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.currentLocked(ref) {
		return bodyMeta{}, false
	}
	m := s.bodies[fv{ref.Folder, ref.UIDValidity}][msgKey(ref)]
	if m == nil {
		return bodyMeta{}, false
	}
	return *m, true
}

// touch notes a use of ref's body for the LRU; the access time is written
// with the next flush.
func (s *Store) touch(ref remote.Ref) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.bodies[fv{ref.Folder, ref.UIDValidity}][msgKey(ref)]; m != nil {
		m.atime = s.tickLocked()
		m.dirty = true
	}
}

// cached reports whether ref's body is in the cache.
func (s *Store) cached(ref remote.Ref) bool {
	_, ok := s.lookup(ref)
	return ok
}

// errVanished: a body the index listed was gone when read (evicted or
// dropped in between).
var errVanished = errors.New("body vanished while read")

// readSpan reads bytes [lo, hi) of a cached body, 0 <= lo <= hi <= size,
// in one read transaction.
func (s *Store) readSpan(ref remote.Ref, m bodyMeta, lo, hi int64) ([]byte, error) {
	f, key := fv{ref.Folder, ref.UIDValidity}, msgKey(ref)
	out := make([]byte, hi-lo)
	if lo == hi {
		return out, nil
	}
	err := s.view(func(txn *badger.Txn) error {
		for i := lo / m.chunk; i*m.chunk < hi; i++ {
			start := i * m.chunk
			want := min(m.chunk, m.size-start)
			item, err := txn.Get(s.chunkKey(f, key, i))
			if errors.Is(err, badger.ErrKeyNotFound) {
				return errVanished
			}
			if err != nil {
				return err
			}
			err = item.Value(func(v []byte) error {
				if int64(len(v)) != want {
					return fmt.Errorf("chunk %d of %s/%s: %d bytes, want %d", i, ref.Folder, key, len(v), want)
				}
				a, b := max(lo, start), min(hi, start+want)
				copy(out[a-lo:b-lo], v[a-start:b-start])
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// readBody returns ref's body from the cache, or false.
func (s *Store) readBody(ref remote.Ref) ([]byte, bool) {
	m, ok := s.lookup(ref)
	if !ok {
		return nil, false
	}
	b, err := s.readSpan(ref, m, 0, m.size)
	if err != nil {
		s.readFailed(ref, err)
		return nil, false
	}
	s.touch(ref)
	return b, true
}

func (s *Store) readFailed(ref remote.Ref, err error) {
	if errors.Is(err, errVanished) || errors.Is(err, errClosed) {
		s.log.Debug("cache: body not readable", "folder", ref.Folder, "key", msgKey(ref), "err", err)
		return
	}
	s.log.Warn("cache: reading a cached body failed", "folder", ref.Folder, "key", msgKey(ref), "err", err)
}

// readHeaderPart returns the header of ref's cached body (up to the first
// empty line), reading no more chunks than it needs.
func (s *Store) readHeaderPart(ref remote.Ref) ([]byte, bool) {
	m, ok := s.lookup(ref)
	if !ok {
		return nil, false
	}
	for n := m.chunk; ; n *= 4 {
		n = min(n, m.size)
		b, err := s.readSpan(ref, m, 0, n)
		if err != nil {
			s.readFailed(ref, err)
			return nil, false
		}
		if h, ok := headerPart(b); ok || n == m.size {
			s.touch(ref)
			return h, true
		}
	}
}

// headerPart returns b up to its first empty line (the lines before it,
// with their line ends), and whether there was one.
func headerPart(b []byte) ([]byte, bool) {
	for i := 0; i < len(b); {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			break
		}
		if line := b[i : i+j]; len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			return b[:i], true
		}
		i += j + 1
	}
	return b, false
}

// readHeader returns ref's cached header record, or false.
func (s *Store) readHeader(ref remote.Ref) ([]byte, bool) {
	f, key := fv{ref.Folder, ref.UIDValidity}, msgKey(ref)
	s.mu.Lock()
	_, ok := s.headers[f][key]
	ok = ok && s.currentLocked(ref)
	s.mu.Unlock()
	if !ok {
		return nil, false
	}
	var h []byte
	err := s.view(func(txn *badger.Txn) error {
		item, err := txn.Get(s.headerKey(f, key))
		if err != nil {
			return err
		}
		h, err = item.ValueCopy(nil)
		return err
	})
	if err != nil {
		if !errors.Is(err, badger.ErrKeyNotFound) {
			s.log.Warn("cache: reading a cached header failed", "folder", ref.Folder, "key", key, "err", err)
		}
		return nil, false
	}
	return h, true
}

// messageDate is what a POP3 listing shows for a message: its Date header,
// else the time it was downloaded.
func messageDate(body []byte) time.Time {
	if m, err := mail.ReadMessage(bytes.NewReader(body)); err == nil {
		if d, err := m.Header.Date(); err == nil {
			return d
		}
	}
	return time.Now()
}

// errStale: a write for a UIDVALIDITY the folder's listing no longer has.
var errStale = errors.New("stale UIDVALIDITY")

// putBody stores ref's body, unless it is cached already, belongs to a
// UIDVALIDITY the folder has left, or (IMAP) exceeds the size bound. The
// chunks are written first, the record last, so that a crash leaves no
// half body that looks whole; a POP3 body is durable when it returns (see
// commitBody).
func (s *Store) putBody(ref remote.Ref, body []byte) error {
	f, key := fv{ref.Folder, ref.UIDValidity}, msgKey(ref)
	if ref.Folder == "" {
		return errors.New("cache: store: a ref without a folder")
	}
	size := int64(len(body))
	if !s.pop3 && s.maxSize > 0 && size > s.maxSize {
		s.log.Debug("cache: body larger than the cache, not stored", "folder", ref.Folder, "key", key, "bytes", size)
		return nil
	}
	var date int64
	if s.pop3 {
		// Only POP3 listings lack a date (IMAP has INTERNALDATE): parse
		// the header for nothing else (11% of an IMAP sync's CPU).
		date = messageDate(body).UnixNano()
	}

	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	if !s.currentLocked(ref) {
		s.mu.Unlock()
		return fmt.Errorf("cache: store %s/%s: %w (listed under %d, folder now %d)", ref.Folder, key, remote.ErrUIDValidity, ref.UIDValidity, s.validity[ref.Folder])
	}
	if m := s.bodies[f][key]; m != nil {
		m.atime = s.tickLocked()
		m.dirty = true
		s.mu.Unlock()
		return nil
	}
	m := &bodyMeta{size: size, chunk: s.chunk, date: date, seq: s.seq, atime: s.tickLocked()}
	s.seq++
	s.mu.Unlock()

	var ents []entry
	for i := int64(0); i < m.chunks(); i++ {
		ents = append(ents, entry{key: s.chunkKey(f, key, i), value: body[i*m.chunk : min(size, (i+1)*m.chunk)]})
	}
	if err := s.write(ents); err != nil {
		return fmt.Errorf("cache: store %s/%s: %v", ref.Folder, key, err)
	}
	if err := s.commitBody(f, key, m); err != nil {
		return fmt.Errorf("cache: store %s/%s: %v", ref.Folder, key, err)
	}
	return nil
}

// commitBody writes the record of a body whose chunks are all written and
// adds the body to the index: from then on it is cached. wmu is held. A
// POP3 body is made durable first, then its record: the record never
// outlives its chunks in a crash, and the body counts as cached only once
// both are on disk (the cache may become its only copy). The partial body
// the record supersedes, if any, leaves the index; its chunks past the
// body are deleted.
func (s *Store) commitBody(f fv, key string, m *bodyMeta) error {
	if s.pop3 {
		if err := s.sync(); err != nil {
			return err
		}
	}
	if err := s.write([]entry{{key: s.metaKey(f, key), value: encodeMeta(m)}}); err != nil {
		return err
	}
	if s.pop3 {
		if err := s.sync(); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.addBody(f, key, m)
	var stray [][]byte
	if p := s.removePartialLocked(f, key); p != nil {
		stray = s.partialKeys(f, key, p, m.chunks())
	}
	over := s.overLocked()
	s.mu.Unlock()
	if len(stray) > 0 {
		if err := s.deleteKeys(stray); err != nil {
			s.log.Debug("cache: removing stray chunks failed (the next start removes them)", "err", err)
		}
	}
	if over {
		s.kick(s.evictCh)
	}
	return nil
}

// putHeader stores ref's header record.
func (s *Store) putHeader(ref remote.Ref, h []byte) error {
	f, key := fv{ref.Folder, ref.UIDValidity}, msgKey(ref)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	ok := s.currentLocked(ref)
	s.mu.Unlock()
	if !ok {
		return errStale
	}
	if err := s.write([]entry{{key: s.headerKey(f, key), value: h}}); err != nil {
		return fmt.Errorf("cache: store header %s/%s: %v", ref.Folder, key, err)
	}
	s.mu.Lock()
	s.addHeader(f, key)
	s.mu.Unlock()
	return nil
}

// entry is one write: a set, or a delete when del is set.
type entry struct {
	key, value []byte
	del        bool
}

// write applies ents in order, in as few transactions as badger allows; a
// crash may keep a prefix of them.
func (s *Store) write(ents []entry) error {
	return s.withDB(func(db *badger.DB) error {
		for len(ents) > 0 {
			txn := db.NewTransaction(true)
			n := 0
			for _, e := range ents {
				var err error
				if e.del {
					err = txn.Delete(e.key)
				} else {
					err = txn.Set(e.key, e.value)
				}
				if errors.Is(err, badger.ErrTxnTooBig) && n > 0 {
					break
				}
				if err != nil {
					txn.Discard()
					return err
				}
				n++
			}
			if err := txn.Commit(); err != nil {
				return err
			}
			ents = ents[n:]
		}
		return nil
	})
}

func (s *Store) deleteKeys(keys [][]byte) error {
	ents := make([]entry, len(keys))
	for i, k := range keys {
		ents[i] = entry{key: k, del: true}
	}
	return s.write(ents)
}

// bodyKeys are the keys of a body: its record first, then its chunks.
func (s *Store) bodyKeys(f fv, key string, m *bodyMeta) [][]byte {
	keys := [][]byte{s.metaKey(f, key)}
	for i := int64(0); i < m.chunks(); i++ {
		keys = append(keys, s.chunkKey(f, key, i))
	}
	return keys
}

// victim is a body (m) or a partial body (p) that eviction may drop.
type victim struct {
	f   fv
	key string
	m   *bodyMeta
	p   *partial
}

func (v victim) atime() int64 {
	if v.p != nil {
		return v.p.atime
	}
	return v.m.atime
}

// evict drops least recently used bodies, and partial bodies, while the
// cached bytes exceed MaxSize, down to 90% of it, and returns the bytes
// dropped. POP3 caches are never evicted.
func (s *Store) evict() int64 {
	if s.pop3 || s.maxSize <= 0 {
		return 0
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	if !s.overLocked() {
		s.mu.Unlock()
		return 0
	}
	var all []victim
	for f, bodies := range s.bodies {
		for key, m := range bodies {
			all = append(all, victim{f: f, key: key, m: m})
		}
	}
	for f, ps := range s.partials {
		for key, p := range ps {
			all = append(all, victim{f: f, key: key, p: p})
		}
	}
	slices.SortFunc(all, func(a, b victim) int {
		if a.atime() != b.atime() {
			return cmp.Compare(a.atime(), b.atime())
		}
		if a.m != nil && b.m != nil {
			return cmp.Compare(a.m.seq, b.m.seq)
		}
		return 0
	})
	target := int64(float64(s.maxSize) * evictTarget)
	var keys [][]byte
	var freed int64
	bodies := 0
	for _, v := range all {
		if s.total+s.partBytes <= target {
			break
		}
		if v.p != nil {
			s.removePartialLocked(v.f, v.key)
			keys = append(keys, s.partialKeys(v.f, v.key, v.p, 0)...)
			freed += v.p.bytes
			continue
		}
		s.removeBodyLocked(v.f, v.key)
		keys = append(keys, s.bodyKeys(v.f, v.key, v.m)...)
		freed += v.m.size
		bodies++
	}
	s.mu.Unlock()
	if err := s.deleteKeys(keys); err != nil {
		s.log.Warn("cache: eviction failed", "err", err)
	}
	s.log.Debug("cache: evicted least recently used bodies", "bodies", bodies, "bytes", freed)
	return freed
}

// flushAtimes writes the access times noted since the last flush, in one
// batch.
func (s *Store) flushAtimes() {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	var ents []entry
	for f, bodies := range s.bodies {
		for key, m := range bodies {
			if m.dirty {
				m.dirty = false
				ents = append(ents, entry{key: s.metaKey(f, key), value: encodeMeta(m)})
			}
		}
	}
	s.mu.Unlock()
	if len(ents) == 0 {
		return
	}
	if err := s.write(ents); err != nil && !errors.Is(err, errClosed) {
		s.log.Warn("cache: writing access times failed", "err", err)
	}
}

// drop removes refs' bodies, records and headers.
func (s *Store) drop(refs []remote.Ref) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var keys [][]byte
	s.mu.Lock()
	for _, ref := range refs {
		f, key := fv{ref.Folder, ref.UIDValidity}, msgKey(ref)
		if m := s.removeBodyLocked(f, key); m != nil {
			keys = append(keys, s.bodyKeys(f, key, m)...)
		}
		if p := s.removePartialLocked(f, key); p != nil {
			keys = append(keys, s.partialKeys(f, key, p, 0)...)
		}
		if fl := s.streams[f][key]; fl != nil {
			fl.dropped = true // being streamed in: not to be cached
		}
		if s.removeHeaderLocked(f, key) {
			keys = append(keys, s.headerKey(f, key))
		}
	}
	s.mu.Unlock()
	if err := s.deleteKeys(keys); err != nil {
		return fmt.Errorf("cache: drop deleted messages: %v", err)
	}
	return nil
}
