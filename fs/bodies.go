package fs

import (
	"container/list"
	"context"
	"fmt"
	"sync"

	"mailfs/remote"
)

// bodyKey names a whole body (chunk -1) or one ChunkSize range of a large one.
type bodyKey struct {
	ms    *msgState
	chunk int64
}

// memCache is a byte-bounded LRU of bodies and chunks.
type memCache struct {
	max int64

	mu    sync.Mutex // protects the fields below
	size  int64
	lru   *list.List // of *memEntry, most recent first
	items map[bodyKey]*list.Element
}

type memEntry struct {
	key  bodyKey
	data []byte
}

func newMemCache(max int64) *memCache {
	return &memCache{max: max, lru: list.New(), items: make(map[bodyKey]*list.Element)}
}

func (c *memCache) get(k bodyKey) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[k]
	if !ok {
		return nil, false
	}
	c.lru.MoveToFront(e)
	return e.Value.(*memEntry).data, true
}

func (c *memCache) has(k bodyKey) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.items[k]
	return ok
}

func (c *memCache) put(k bodyKey, data []byte) {
	if int64(len(data)) > c.max/4 {
		return // one message must not flush everything else
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.size -= int64(len(e.Value.(*memEntry).data))
		c.lru.Remove(e)
	}
	c.items[k] = c.lru.PushFront(&memEntry{key: k, data: data})
	c.size += int64(len(data))
	for c.size > c.max {
		e := c.lru.Back()
		me := e.Value.(*memEntry)
		c.lru.Remove(e)
		delete(c.items, me.key)
		c.size -= int64(len(me.data))
	}
}

// call is one fetch in flight; everyone who wants its result waits on done.
type call struct {
	done chan struct{}
	data []byte
	err  error
}

// flights collapses concurrent fetches of one body or chunk into one. A
// fetch runs on the filesystem's background context: a reader that gives up
// stops waiting, the fetch goes on for the others (and the cache).
type flights struct {
	mu    sync.Mutex // protects calls
	calls map[bodyKey]*call
}

// claim returns the call for k and whether the caller must perform it.
func (fl *flights) claim(k bodyKey) (*call, bool) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.calls == nil {
		fl.calls = make(map[bodyKey]*call)
	}
	if c, ok := fl.calls[k]; ok {
		return c, false
	}
	c := &call{done: make(chan struct{})}
	fl.calls[k] = c
	return c, true
}

func (fl *flights) busy(k bodyKey) bool {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	_, ok := fl.calls[k]
	return ok
}

func (fl *flights) finish(k bodyKey, c *call, data []byte, err error) {
	c.data, c.err = data, err
	fl.mu.Lock()
	delete(fl.calls, k)
	fl.mu.Unlock()
	close(c.done)
}

func wait(ctx context.Context, c *call) ([]byte, error) {
	select {
	case <-c.done:
		return c.data, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// body returns the whole message ms, from memory, from a fetch in flight, or
// by fetching it together with the small messages that follow it (all of
// the window when reading is sequential, a few otherwise), so that grep -r
// pays one round trip per batch, not per message.
func (f *FS) body(ctx context.Context, ms *msgState) ([]byte, error) {
	k := bodyKey{ms: ms, chunk: -1}
	seq := ms.folder.noteOpen(ms)
	if b, ok := f.mem.get(k); ok {
		f.readAhead(ms, seq)
		return b, nil
	}
	c, mine := f.flight.claim(k)
	if mine {
		window := 4
		if seq {
			window = f.opts.PrefetchCount
		}
		batch, calls := f.planBatch(ms, window)
		go f.runBatch(append([]*msgState{ms}, batch...), append([]*call{c}, calls...))
	}
	f.readAhead(ms, seq)
	return wait(ctx, c)
}

// planBatch claims up to window-1 small messages after ms that are neither
// in memory nor in flight.
func (f *FS) planBatch(ms *msgState, window int) ([]*msgState, []*call) {
	s := ms.folder
	s.mu.Lock()
	order := s.order
	idx := ms.index
	s.mu.Unlock()
	if idx >= len(order) || order[idx] != ms {
		return nil, nil
	}
	size, _ := ms.sizeNow()
	var batch []*msgState
	var calls []*call
	for i := idx + 1; i < len(order) && len(batch)+1 < window && size < f.opts.PrefetchBytes; i++ {
		m := order[i]
		sz, _ := m.sizeNow()
		k := bodyKey{ms: m, chunk: -1}
		if sz > f.opts.LargeBody || f.mem.has(k) {
			continue
		}
		c, mine := f.flight.claim(k)
		if !mine {
			continue
		}
		batch = append(batch, m)
		calls = append(calls, c)
		size += sz
	}
	return batch, calls
}

// maxPrefetching bounds the read-ahead batches in flight per folder,
// leaving a connection of the pool for other requests.
const maxPrefetching = 3

// readAhead keeps the next half window of a sequential reader in flight.
func (f *FS) readAhead(ms *msgState, seq bool) {
	if !seq {
		return
	}
	s := ms.folder
	s.mu.Lock()
	order := s.order
	idx := ms.index
	if s.prefetching >= maxPrefetching || idx >= len(order) || order[idx] != ms {
		s.mu.Unlock()
		return
	}
	var first *msgState
	for i := idx + 1; i < len(order) && i <= idx+f.opts.PrefetchCount/2; i++ {
		m := order[i]
		k := bodyKey{ms: m, chunk: -1}
		if sz, _ := m.sizeNow(); sz > f.opts.LargeBody || f.mem.has(k) || f.flight.busy(k) {
			continue
		}
		first = m
		break
	}
	if first == nil {
		s.mu.Unlock()
		return
	}
	s.prefetching++
	s.mu.Unlock()
	k := bodyKey{ms: first, chunk: -1}
	c, mine := f.flight.claim(k)
	if !mine {
		s.mu.Lock()
		s.prefetching--
		s.mu.Unlock()
		return
	}
	batch, calls := f.planBatch(first, f.opts.PrefetchCount)
	go func() {
		f.runBatch(append([]*msgState{first}, batch...), append([]*call{c}, calls...))
		s.mu.Lock()
		s.prefetching--
		s.mu.Unlock()
	}()
}

// runBatch fetches the bodies of batch (one folder, one UIDVALIDITY) and
// resolves their calls. Bodies go to memory; a length that differs from
// the announced size corrects it.
func (f *FS) runBatch(batch []*msgState, calls []*call) {
	byKey := make(map[string]int, len(batch))
	refs := make([]remote.Ref, len(batch))
	for i, ms := range batch {
		byKey[ms.ref.Key] = i
		refs[i] = ms.ref
	}
	done := make([]bool, len(batch))
	deliver := func(i int, body []byte) {
		if done[i] {
			return
		}
		done[i] = true
		ms := batch[i]
		ms.setSize(int64(len(body)))
		k := bodyKey{ms: ms, chunk: -1}
		f.mem.put(k, body)
		f.flight.finish(k, calls[i], body, nil)
	}
	var err error
	if bf, ok := f.acct.(remote.BulkFetcher); ok && len(batch) > 1 {
		err = bf.Bodies(f.bg, refs, func(ref remote.Ref, body []byte) {
			if i, ok := byKey[ref.Key]; ok {
				deliver(i, body)
			}
		})
	} else {
		for i, ref := range refs {
			var body []byte
			body, err = f.acct.Body(f.bg, ref)
			if err != nil {
				break
			}
			deliver(i, body)
		}
	}
	for i, ms := range batch {
		if done[i] {
			continue
		}
		e := err
		if e == nil {
			e = fmt.Errorf("mailfs: %s/%s: %w", ms.ref.Folder, ms.name, remote.ErrNotFound)
		}
		f.flight.finish(bodyKey{ms: ms, chunk: -1}, calls[i], nil, e)
	}
}

// verifySize makes sure the size of a large message is true before it is
// read in ranges: one byte must exist at size-1 and none at size. When the
// probe disagrees, the whole body is fetched and returned.
func (f *FS) verifySize(ctx context.Context, ms *msgState) ([]byte, error) {
	size, verified := ms.sizeNow()
	if verified {
		return nil, nil
	}
	rr, ok := f.acct.(remote.RangeReader)
	if ok && size > 0 {
		probe, err := rr.BodyRange(ctx, ms.ref, size-1, 2)
		if err != nil {
			return nil, err
		}
		if len(probe) == 1 {
			ms.setSize(size)
			return nil, nil
		}
	}
	body, err := f.acct.Body(ctx, ms.ref)
	if err != nil {
		return nil, err
	}
	ms.setSize(int64(len(body)))
	f.mem.put(bodyKey{ms: ms, chunk: -1}, body)
	return body, nil
}

// readRange reads a large message from its ChunkSize ranges, fetching the
// next chunk ahead of a sequential reader.
func (f *FS) readRange(ctx context.Context, ms *msgState, off, n int64) ([]byte, error) {
	if b, ok := f.mem.get(bodyKey{ms: ms, chunk: -1}); ok {
		if off >= int64(len(b)) {
			return nil, nil
		}
		return b[off:min(off+n, int64(len(b)))], nil
	}
	size, _ := ms.sizeNow()
	if off >= size {
		return nil, nil
	}
	end := min(off+n, size)
	cs := f.opts.ChunkSize
	out := make([]byte, 0, end-off)
	last := off / cs
	for pos := off; pos < end; {
		k := pos / cs
		last = k
		data, err := f.chunk(ctx, ms, k)
		if err != nil {
			return nil, err
		}
		start := k * cs
		if pos-start >= int64(len(data)) {
			break
		}
		take := data[pos-start : min(int64(len(data)), end-start)]
		out = append(out, take...)
		pos += int64(len(take))
		if int64(len(data)) < cs && start+int64(len(data)) < size {
			ms.setSize(start + int64(len(data))) // the message ends early
			break
		}
	}
	if (last+1)*cs < size {
		f.chunksAhead(ms, last+1, size)
	}
	return out, nil
}

// maxStreamAhead bounds how much of a large message is fetched ahead of a
// sequential reader.
const maxStreamAhead = 64 << 20

// chunksAhead fetches ahead of a reader of a large message. After the first
// chunk (head -c, file(1)) only the next chunk is fetched; a reader past it
// is reading the message through, so the rest comes in one streamed
// request, each chunk handed over as it arrives, not one round trip per
// chunk.
func (f *FS) chunksAhead(ms *msgState, from, size int64) {
	cs := f.opts.ChunkSize
	rs, ok := f.acct.(remote.RangeStreamer)
	if !ok || from < 2 {
		k := bodyKey{ms: ms, chunk: from}
		if !f.mem.has(k) && !f.flight.busy(k) {
			go f.chunk(f.bg, ms, from)
		}
		return
	}
	var calls []*call
	for k := from; k*cs < size && (k-from)*cs < maxStreamAhead; k++ {
		key := bodyKey{ms: ms, chunk: k}
		if f.mem.has(key) {
			break
		}
		c, mine := f.flight.claim(key)
		if !mine {
			break
		}
		calls = append(calls, c)
	}
	if len(calls) == 0 {
		return
	}
	go func() {
		start := from * cs
		end := min(size, (from+int64(len(calls)))*cs)
		i := 0
		var pending []byte // pieces may be smaller than a chunk
		hand := func(data []byte) {
			key := bodyKey{ms: ms, chunk: from + int64(i)}
			f.mem.put(key, data)
			f.flight.finish(key, calls[i], data, nil)
			i++
		}
		_, err := rs.StreamRange(f.bg, ms.ref, start, end-start, cs, func(b []byte) {
			for len(b) > 0 && i < len(calls) {
				if len(pending) == 0 && int64(len(b)) >= cs {
					hand(b[:cs:cs])
					b = b[cs:]
					continue
				}
				take := min(int64(len(b)), cs-int64(len(pending)))
				pending = append(pending, b[:take]...)
				b = b[take:]
				if int64(len(pending)) == cs {
					hand(pending)
					pending = nil
				}
			}
		})
		if err == nil && len(pending) > 0 && i < len(calls) {
			hand(pending) // the last, partial chunk; after a failure it is not the end
		}
		for ; i < len(calls); i++ {
			// The stream ended early: the message is shorter (an empty
			// chunk says so to the reader), or the fetch failed.
			f.flight.finish(bodyKey{ms: ms, chunk: from + int64(i)}, calls[i], []byte{}, err)
		}
	}()
}

// chunk returns chunk k of a large message.
func (f *FS) chunk(ctx context.Context, ms *msgState, k int64) ([]byte, error) {
	key := bodyKey{ms: ms, chunk: k}
	if b, ok := f.mem.get(key); ok {
		return b, nil
	}
	c, mine := f.flight.claim(key)
	if mine {
		go func() {
			var data []byte
			var err error
			if rr, ok := f.acct.(remote.RangeReader); ok {
				data, err = rr.BodyRange(f.bg, ms.ref, k*f.opts.ChunkSize, f.opts.ChunkSize)
			} else {
				var body []byte
				body, err = f.acct.Body(f.bg, ms.ref)
				if err == nil {
					start := min(k*f.opts.ChunkSize, int64(len(body)))
					data = body[start:min(start+f.opts.ChunkSize, int64(len(body)))]
				}
			}
			if int64(len(data)) > f.opts.ChunkSize {
				data = data[:f.opts.ChunkSize]
			}
			if err == nil {
				f.mem.put(key, data)
			}
			f.flight.finish(key, c, data, err)
		}()
	}
	return wait(ctx, c)
}
