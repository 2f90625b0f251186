package cache

import (
	"context"
	"errors"
	"fmt"
	"io"

	"mailfs/remote"
)

// Download fetches into the cache the bodies of refs it lacks, without
// handing them over: where the inner account streams bodies
// (remote.BodyStreamer: POP3), each is written to disk chunk by chunk as
// it arrives, so that memory stays bounded whatever a message's size;
// otherwise they come through Bodies. fn is called once per body the cache
// then holds (fetched now or cached already) with its size, never
// concurrently. A message the server no longer has is skipped; offline,
// every other uncached one is an error, as with Bodies. A streamed message
// the server sends in a form that cannot be used (remote.ErrProtocol: a
// RETR that does not end) is skipped with a warning, so that one such
// message does not keep the others out of the cache; the error says so
// once the rest is done.
//
// It is what internal/syncer uses (mailfs sync, a POP3 mount's background
// download).
func (a *Account) Download(ctx context.Context, refs []remote.Ref, fn func(ref remote.Ref, size int64)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	bs, ok := a.inner.(remote.BodyStreamer)
	if !ok {
		return a.Bodies(ctx, refs, func(r remote.Ref, b []byte) { fn(r, int64(len(b))) })
	}
	var unusable []string
	var firstUnusable error
	for _, r := range refs {
		n, err := a.s.streamBody(ctx, r, func(w io.Writer) (int64, error) { return bs.StreamBody(ctx, r, w) })
		switch {
		case errors.Is(err, remote.ErrNotFound):
			continue // gone from the server since the listing
		case errors.Is(err, remote.ErrUIDValidity):
			a.s.log.Debug("cache: body under an old UIDVALIDITY not stored", "folder", r.Folder, "key", msgKey(r))
			continue
		case errors.Is(err, remote.ErrProtocol) && ctx.Err() == nil:
			a.s.log.Warn("cache: message not downloaded, going on with the others", "folder", r.Folder, "key", msgKey(r), "err", err)
			unusable = append(unusable, msgKey(r))
			if firstUnusable == nil {
				firstUnusable = err
			}
			continue
		case err != nil:
			return err
		}
		fn(r, n)
	}
	if len(unusable) > 0 {
		return fmt.Errorf("cache: %d messages not downloaded (%q): %w", len(unusable), unusable, firstUnusable)
	}
	return nil
}

// errCachedMeanwhile stops a stream whose body another writer has cached
// in the meantime; errDroppedMeanwhile one whose message has been deleted
// (drop) in the meantime: its record must not bring it back.
var (
	errCachedMeanwhile  = errors.New("cached meanwhile")
	errDroppedMeanwhile = errors.New("deleted meanwhile")
)

// inflight is a body being streamed in. dropped is set (under mu) when the
// message is deleted meanwhile.
type inflight struct {
	done    chan struct{} // closed when the stream is over
	dropped bool
}

// streamBody stores ref's body as fetch writes it, and returns its size. A
// body cached already is not fetched. The chunks are written as they fill,
// the record last, once the whole body is in (POP3: made durable before
// the record is written, and again before the body counts as cached), so
// that a failed or cut stream leaves no record: its chunks are deleted, or
// at the latest dropped by the next Open. One stream per body at a time;
// a second waits for the first and takes its result.
func (s *Store) streamBody(ctx context.Context, ref remote.Ref, fetch func(w io.Writer) (int64, error)) (int64, error) {
	f, key := fv{ref.Folder, ref.UIDValidity}, msgKey(ref)
	if ref.Folder == "" {
		return 0, errors.New("cache: store: a ref without a folder")
	}
	for {
		s.mu.Lock()
		if !s.currentLocked(ref) {
			s.mu.Unlock()
			return 0, fmt.Errorf("cache: store %s/%s: %w (listed under %d, folder now %d)", ref.Folder, key, remote.ErrUIDValidity, ref.UIDValidity, s.validity[ref.Folder])
		}
		if m := s.bodies[f][key]; m != nil {
			s.mu.Unlock()
			return m.size, nil
		}
		busy := s.streams[f][key]
		if busy == nil {
			if s.streams[f] == nil {
				s.streams[f] = map[string]*inflight{}
			}
			s.streams[f][key] = &inflight{done: make(chan struct{})}
			s.mu.Unlock()
			break
		}
		s.mu.Unlock()
		select {
		case <-busy.done:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	s.mu.Lock()
	fl := s.streams[f][key]
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		close(fl.done)
		delete(s.streams[f], key)
		if len(s.streams[f]) == 0 {
			delete(s.streams, f)
		}
		s.mu.Unlock()
	}()

	w := &bodyWriter{s: s, ref: ref, f: f, key: key, fl: fl}
	_, err := fetch(w)
	if err == nil {
		err = w.finish()
	}
	if errors.Is(err, errCachedMeanwhile) || errors.Is(w.err, errCachedMeanwhile) {
		if m, ok := s.lookup(ref); ok {
			return m.size, nil
		}
	}
	if errors.Is(err, errDroppedMeanwhile) || errors.Is(w.err, errDroppedMeanwhile) {
		w.abort()
		return 0, fmt.Errorf("cache: %s/%s: deleted while it was downloaded: %w", ref.Folder, key, remote.ErrNotFound)
	}
	if err != nil {
		w.abort()
		if w.err != nil && !errors.Is(err, w.err) {
			// The fetch reports the writer's failure in its own words.
			return 0, fmt.Errorf("%w (cache: %v)", err, w.err)
		}
		return 0, err
	}
	return w.size, nil
}

// awaitStream waits until no stream of ref's body is in flight (or ctx
// ends), so that a reader takes the body from the cache rather than
// fetching it a second time; it reports whether it waited.
func (s *Store) awaitStream(ctx context.Context, ref remote.Ref) bool {
	s.mu.Lock()
	busy := s.streams[fv{ref.Folder, ref.UIDValidity}][msgKey(ref)]
	s.mu.Unlock()
	if busy == nil {
		return false
	}
	select {
	case <-busy.done:
	case <-ctx.Done():
	}
	return true
}

// bodyWriter is the io.Writer a streamed body goes through: it fills one
// chunk at a time and writes each to the database when full.
type bodyWriter struct {
	s   *Store
	ref remote.Ref
	f   fv
	key string
	fl  *inflight

	buf     []byte // the chunk being filled (up to s.chunk bytes)
	written int64  // chunks written
	size    int64  // bytes received
	date    int64  // POP3: the Date header, from the first chunk
	skip    bool   // too large for the cache: received, not stored
	err     error  // the first write failure; ends the stream
}

func (w *bodyWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n := len(p)
	w.size += int64(n)
	s := w.s
	if !s.pop3 && s.maxSize > 0 && w.size > s.maxSize && !w.skip {
		s.log.Debug("cache: body larger than the cache, not stored", "folder", w.ref.Folder, "key", w.key, "bytes", w.size)
		w.skip = true
		w.abort()
	}
	if w.skip {
		return n, nil
	}
	for len(p) > 0 {
		k := min(len(p), int(s.chunk)-len(w.buf))
		w.buf = append(w.buf, p[:k]...) // grows to a chunk once, then reused
		p = p[k:]
		if len(w.buf) == int(s.chunk) {
			if err := w.flush(); err != nil {
				w.err = err
				return n - len(p), err
			}
		}
	}
	return n, nil
}

// flush writes the chunk filled so far, unless the body has been cached
// meanwhile or its folder has a new UIDVALIDITY.
func (w *bodyWriter) flush() error {
	s := w.s
	if w.written == 0 && s.pop3 {
		w.date = messageDate(w.buf).UnixNano() // the header is in the first chunk, or no Date is found
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	cached, current, dropped := s.bodies[w.f][w.key] != nil, s.currentLocked(w.ref), w.fl.dropped
	s.mu.Unlock()
	switch {
	case dropped:
		return errDroppedMeanwhile
	case cached:
		return errCachedMeanwhile
	case !current:
		return fmt.Errorf("cache: store %s/%s: %w", w.ref.Folder, w.key, remote.ErrUIDValidity)
	}
	if err := s.write([]entry{{key: s.chunkKey(w.f, w.key, w.written), value: w.buf}}); err != nil {
		return fmt.Errorf("cache: store %s/%s: %v", w.ref.Folder, w.key, err)
	}
	w.written++
	w.buf = w.buf[:0] // badger is done with it once the write is committed
	return nil
}

// finish writes the last chunk and then the record, which makes the body
// cached.
func (w *bodyWriter) finish() error {
	if w.err != nil {
		return w.err
	}
	if w.skip {
		return nil
	}
	s := w.s
	switch {
	case len(w.buf) > 0:
		if err := w.flush(); err != nil {
			return err
		}
	case w.written == 0 && s.pop3:
		w.date = messageDate(nil).UnixNano() // an empty message: the download time
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	switch {
	case w.fl.dropped:
		s.mu.Unlock()
		return errDroppedMeanwhile
	case s.bodies[w.f][w.key] != nil:
		s.mu.Unlock()
		return errCachedMeanwhile
	case !s.currentLocked(w.ref):
		s.mu.Unlock()
		return fmt.Errorf("cache: store %s/%s: %w", w.ref.Folder, w.key, remote.ErrUIDValidity)
	}
	m := &bodyMeta{size: w.size, chunk: s.chunk, date: w.date, seq: s.seq, atime: s.tickLocked()}
	s.seq++
	s.mu.Unlock()
	if err := s.commitBody(w.f, w.key, m); err != nil {
		return fmt.Errorf("cache: store %s/%s: %v", w.ref.Folder, w.key, err)
	}
	return nil
}

// abort deletes the chunks written, unless the body has been cached
// meanwhile by another writer (whose record covers the same keys).
func (w *bodyWriter) abort() {
	if w.written == 0 {
		return
	}
	s := w.s
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	cached := s.bodies[w.f][w.key] != nil
	s.mu.Unlock()
	if !cached {
		keys := make([][]byte, 0, w.written)
		for i := range w.written {
			keys = append(keys, s.chunkKey(w.f, w.key, i))
		}
		if err := s.deleteKeys(keys); err != nil {
			s.log.Warn("cache: removing the chunks of a body not completely stored failed (the next start removes them)", "folder", w.ref.Folder, "key", w.key, "err", err)
		}
	}
	w.written = 0
}
