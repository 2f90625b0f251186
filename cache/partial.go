package cache

import (
	"strconv"

	"mailfs/remote"
)

// Bodies kept from ranges. A large message read through the mount comes
// in ranges (BodyRange, StreamRange), never through Body; so that reading
// it once online makes it readable offline, the chunks those ranges cover
// are written as they arrive, without a record, and tracked in memory as a
// partial body; once every chunk up to the body's end is written (the end
// is known from a read that came back short, such as the filesystem's size
// probe, and is believed only where the folder's listing announced that
// size), the record is written and the body is cached like any other.
// Partials live in memory only: the chunks of one never completed are
// dropped by the next Open, like those of any body without a record.
//
// POP3 bodies are never read in ranges from the server (a POP3 account has
// none): they are cached whole.

// maxPartials bounds the partial bodies kept at once; beyond it, the one
// used least recently is dropped.
const maxPartials = 64

// partial is a body being kept from ranges: chunks written, no record.
type partial struct {
	have  map[int64]int64 // chunk number → its length, written
	end   int64           // the body's size; -1 until a read shows it
	bytes int64           // sum of have
	atime int64
}

// complete reports whether every chunk up to the end is written.
func (p *partial) complete(chunk int64) bool {
	if p.end < 0 {
		return false
	}
	n := (p.end + chunk - 1) / chunk
	if int64(len(p.have)) != n {
		return false // the usual answer, and a cheap one
	}
	for i := range n {
		if p.have[i] != min(chunk, p.end-i*chunk) {
			return false
		}
	}
	return true
}

// consistent reports whether the chunks written fit a body of end bytes.
func (p *partial) consistent(end, chunk int64) bool {
	for i, n := range p.have {
		if want := min(chunk, end-i*chunk); want <= 0 || n != want {
			return false
		}
	}
	return true
}

// chunkKeys are the keys of p's chunks numbered from on.
func (s *Store) partialKeys(f fv, key string, p *partial, from int64) [][]byte {
	var keys [][]byte
	for i := range p.have {
		if i >= from {
			keys = append(keys, s.chunkKey(f, key, i))
		}
	}
	return keys
}

// removePartialLocked takes the partial of key out of the index.
func (s *Store) removePartialLocked(f fv, key string) *partial {
	p := s.partials[f][key]
	if p == nil {
		return nil
	}
	delete(s.partials[f], key)
	if len(s.partials[f]) == 0 {
		delete(s.partials, f)
	}
	s.partBytes -= p.bytes
	return p
}

// overLocked reports whether the cached bytes, partial bodies included,
// exceed the size bound.
func (s *Store) overLocked() bool {
	return !s.pop3 && s.maxSize > 0 && s.total+s.partBytes > s.maxSize
}

// noteRange keeps the chunks that data, the bytes of ref's body from off,
// covers whole; end is the body's size if the read showed it (it came back
// short), else -1. The last chunk, shorter than the others, is kept once
// the end is known. When every chunk up to the end is written, the record
// follows and the body is cached. Failures are logged, never returned: the
// caller has its bytes.
func (s *Store) noteRange(ref remote.Ref, off int64, data []byte, end int64) {
	if s.pop3 || ref.Folder == "" || off < 0 {
		return
	}
	f, key := fv{ref.Folder, ref.UIDValidity}, msgKey(ref)
	hi := off + int64(len(data))
	if end >= 0 && end != hi {
		return // not a range that ends the body
	}
	if end >= 0 && !s.announced(ref, end) {
		// A short read is the only sign of the end, and the listing
		// disagrees: a range cut short is not the end of a body, so
		// none of it is kept. (The filesystem fetches whole a message
		// whose announced size is wrong.)
		s.log.Debug("cache: range ends where the listing does not, not kept", "folder", ref.Folder, "key", key, "end", end)
		return
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()

	var drop [][]byte
	defer func() {
		if len(drop) > 0 {
			if err := s.deleteKeys(drop); err != nil {
				s.log.Debug("cache: removing the chunks of a partial body failed", "err", err)
			}
		}
	}()
	s.mu.Lock()
	if !s.currentLocked(ref) || s.bodies[f][key] != nil {
		s.mu.Unlock()
		return
	}
	p := s.partials[f][key]
	if p != nil {
		known := p.end
		if end >= 0 {
			known = end
		}
		if (p.end >= 0 && end >= 0 && p.end != end) || (known >= 0 && hi > known) ||
			(p.end < 0 && end >= 0 && !p.consistent(end, s.chunk)) {
			// The server's answers disagree about the body: start over.
			s.removePartialLocked(f, key)
			drop = s.partialKeys(f, key, p, 0)
			p = nil
		}
	}
	known := end
	if p != nil && p.end >= 0 {
		known = p.end
	}
	if s.maxSize > 0 && known > s.maxSize {
		// Larger than the cache: nothing is kept, and the end is
		// remembered so that later ranges are not kept either.
		if p != nil {
			drop = append(drop, s.partialKeys(f, key, p, 0)...)
			s.partBytes -= p.bytes
			p.have, p.bytes, p.end = map[int64]int64{}, 0, known
		} else {
			drop = append(drop, s.addPartialLocked(f, key, &partial{have: map[int64]int64{}, end: known})...)
		}
		s.mu.Unlock()
		return
	}

	// The chunks data covers whole, and the last one once the end is known.
	var ents []entry
	lens := map[int64]int64{}
	var adding int64
	for i := (off + s.chunk - 1) / s.chunk; ; i++ {
		start, stop := i*s.chunk, (i+1)*s.chunk
		if known >= 0 {
			stop = min(stop, known)
		}
		if start >= stop || stop > hi {
			break
		}
		if p != nil && p.have[i] == stop-start {
			continue
		}
		ents = append(ents, entry{key: s.chunkKey(f, key, i), value: data[start-off : stop-off]})
		lens[i] = stop - start
		adding += stop - start
	}
	if p == nil && len(ents) == 0 && end < 0 {
		s.mu.Unlock()
		return
	}
	if s.maxSize > 0 && known < 0 {
		var had int64
		if p != nil {
			had = p.bytes
		}
		if had+adding > s.maxSize {
			if p != nil {
				s.removePartialLocked(f, key)
				drop = append(drop, s.partialKeys(f, key, p, 0)...)
			}
			s.mu.Unlock()
			return
		}
	}
	s.mu.Unlock()

	if len(ents) > 0 {
		if err := s.write(ents); err != nil {
			s.log.Debug("cache: range not kept", "folder", ref.Folder, "key", key, "err", err)
			return
		}
	}

	s.mu.Lock()
	if p == nil {
		p = &partial{have: map[int64]int64{}, end: -1}
		drop = append(drop, s.addPartialLocked(f, key, p)...)
	}
	for i, n := range lens {
		p.bytes += n - p.have[i]
		s.partBytes += n - p.have[i]
		p.have[i] = n
	}
	if end >= 0 {
		p.end = end
	}
	p.atime = s.tickLocked()
	if !p.complete(s.chunk) {
		over := s.overLocked()
		s.mu.Unlock()
		if over {
			s.kick(s.evictCh)
		}
		return
	}
	m := &bodyMeta{size: p.end, chunk: s.chunk, seq: s.seq, atime: p.atime}
	s.seq++
	s.mu.Unlock()
	if err := s.commitBody(f, key, m); err != nil {
		s.log.Warn("cache: body read in ranges not stored", "folder", ref.Folder, "key", key, "err", err)
		return
	}
	s.log.Debug("cache: body kept from the ranges read", "folder", ref.Folder, "key", key, "bytes", m.size)
}

// addPartialLocked enters p into the index, first dropping the partial
// used least recently if there are maxPartials already; it returns the
// keys of the dropped one's chunks, for the caller to delete (wmu is held).
func (s *Store) addPartialLocked(f fv, key string, p *partial) [][]byte {
	var keys [][]byte
	if s.countPartialsLocked() >= maxPartials {
		if of, ok, op := s.oldestPartialLocked(); op != nil {
			s.removePartialLocked(of, ok)
			keys = s.partialKeys(of, ok, op, 0)
		}
	}
	p.atime = s.tickLocked()
	if s.partials[f] == nil {
		s.partials[f] = map[string]*partial{}
	}
	s.partials[f][key] = p
	return keys
}

// announced reports whether the folder's cached listing lists ref with
// size bytes.
func (s *Store) announced(ref remote.Ref, size int64) bool {
	l, err := s.storedListing(ref.Folder)
	if err != nil || l == nil || l.UIDValidity != ref.UIDValidity {
		return false
	}
	key := msgKey(ref)
	for _, m := range l.Messages {
		k := m.Key
		if k == "" {
			k = strconv.FormatUint(uint64(m.UID), 10)
		}
		if k == key {
			return m.Size == size
		}
	}
	return false
}

func (s *Store) countPartialsLocked() int {
	n := 0
	for _, ps := range s.partials {
		n += len(ps)
	}
	return n
}

// oldestPartialLocked returns the partial used least recently.
func (s *Store) oldestPartialLocked() (fv, string, *partial) {
	var of fv
	var ok string
	var op *partial
	for f, ps := range s.partials {
		for key, p := range ps {
			if op == nil || p.atime < op.atime {
				of, ok, op = f, key, p
			}
		}
	}
	return of, ok, op
}

// rangeKeeper collects the pieces of a streamed range into whole chunks
// for noteRange. Bytes before the first chunk boundary are skipped: they
// cannot fill a chunk.
type rangeKeeper struct {
	s        *Store
	ref      remote.Ref
	off      int64 // where the range starts
	pos      int64 // the body offset of the next byte
	bufStart int64
	buf      []byte
}

// newRangeKeeper returns a keeper for a range from off; nil where ranges
// are not kept (POP3).
func (s *Store) newRangeKeeper(ref remote.Ref, off int64) *rangeKeeper {
	if s.pop3 {
		return nil
	}
	return &rangeKeeper{s: s, ref: ref, off: off, pos: off, bufStart: -1}
}

func (k *rangeKeeper) add(b []byte) {
	if k == nil {
		return
	}
	chunk := k.s.chunk
	for len(b) > 0 {
		if k.bufStart < 0 {
			if k.pos%chunk != 0 {
				skip := min(int64(len(b)), chunk-k.pos%chunk)
				k.pos += skip
				b = b[skip:]
				continue
			}
			k.bufStart = k.pos
			if k.buf == nil {
				k.buf = make([]byte, 0, chunk)
			}
		}
		n := min(len(b), cap(k.buf)-len(k.buf))
		k.buf = append(k.buf, b[:n]...)
		b = b[n:]
		k.pos += int64(n)
		if len(k.buf) == cap(k.buf) {
			k.s.noteRange(k.ref, k.bufStart, k.buf, -1)
			k.buf = k.buf[:0]
			k.bufStart = -1
		}
	}
}

// done hands over the last piece; got is the bytes the stream delivered
// of the n asked for, and fewer mean the body ends there.
func (k *rangeKeeper) done(got, n int64) {
	if k == nil {
		return
	}
	end := int64(-1)
	if got < n && (got > 0 || k.off == 0) {
		end = k.off + got
	}
	switch {
	case k.bufStart >= 0:
		k.s.noteRange(k.ref, k.bufStart, k.buf, end)
	case end >= 0:
		k.s.noteRange(k.ref, end, nil, end)
	}
}
