package cache

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"mailfs/remote"
)

// Account is a remote.Account that answers from the cache where it can and
// asks the inner account (storing what it gets) where it must. With no
// inner account it is offline: the cache is all there is.
type Account struct {
	s     *Store
	inner remote.Account // nil when offline
}

var (
	_ remote.Account       = (*Account)(nil)
	_ remote.RangeReader   = (*Account)(nil)
	_ remote.RangeStreamer = (*Account)(nil)
	_ remote.BulkFetcher   = (*Account)(nil)
	_ remote.Deleter       = (*Account)(nil)
)

// Wrap returns the account inner seen through the cache; inner == nil means
// offline: no network at all. Many accounts may wrap one Store.
func (s *Store) Wrap(inner remote.Account) *Account {
	return &Account{s: s, inner: inner}
}

// Cached reports whether ref's body is in the cache.
func (a *Account) Cached(ref remote.Ref) bool { return a.s.cached(ref) }

// Store puts a body fetched elsewhere into the cache (POP3: durably).
func (a *Account) Store(ref remote.Ref, body []byte) error {
	return a.s.putBody(ref, body)
}

// Sync makes everything written so far durable.
func (a *Account) Sync() error { return a.s.sync() }

// Unwrap returns the account behind the cache, nil offline: the changes
// the cache passes on work only if it can make them.
func (a *Account) Unwrap() remote.Account { return a.inner }

// Close closes the inner account; the Store stays open.
func (a *Account) Close() error {
	if a.inner == nil {
		return nil
	}
	return a.inner.Close()
}

// Folders implements remote.Account: the server's list, stored; the cached
// one when the server fails or there is none.
func (a *Account) Folders(ctx context.Context) ([]remote.Folder, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if a.inner == nil {
		if folders, ok := a.s.cachedFolders(); ok {
			return folders, nil
		}
		return nil, fmt.Errorf("cache: no cached folder list, and offline: %w", remote.ErrUnavailable)
	}
	folders, err := a.inner.Folders(ctx)
	if err == nil {
		if err := a.s.putFolders(folders); err != nil {
			a.s.log.Warn("cache: folder list not stored", "err", err)
		}
		return folders, nil
	}
	if ctx.Err() != nil {
		return nil, err
	}
	cached, ok := a.s.cachedFolders()
	if !ok {
		return nil, err
	}
	a.s.log.Warn("cache: the server failed, folder list from the cache", "err", err)
	return cached, nil
}

// List implements remote.Account. The server's listing is stored (after
// dropping what a new UIDVALIDITY made stale) and returned with the true
// sizes of cached bodies; POP3 adds the cached messages the server no
// longer has. Offline it is the cached listing restricted to the messages
// whose bodies are cached: what can be read. When the server fails it is
// the whole cached listing: a message not cached is still there, only
// unreadable until the server is back. A folder the server says does not
// exist is not answered from the cache.
func (a *Account) List(ctx context.Context, folder string) (*remote.Listing, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if a.inner == nil {
		l, ok, err := a.s.offlineListing(folder)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, a.s.missErr(remote.Ref{Folder: folder})
		}
		return l, nil
	}
	l, err := a.inner.List(ctx, folder)
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, remote.ErrNotFound) {
			return nil, err
		}
		cached, ok, cerr := a.s.cachedListing(folder, true)
		if cerr != nil || !ok {
			if cerr != nil {
				a.s.log.Warn("cache: no cached listing to fall back on", "folder", folder, "err", cerr)
			}
			return nil, err
		}
		a.s.log.Warn("cache: the server failed, listing from the cache", "folder", folder, "err", err)
		return cached, nil
	}
	if err := a.s.putListing(folder, l); err != nil {
		a.s.log.Warn("cache: listing not stored", "folder", folder, "err", err)
	}
	return a.s.decorate(folder, l, true), nil
}

// Header implements remote.Account: the cached header record, else the
// header of the cached body, else the server's (stored).
func (a *Account) Header(ctx context.Context, ref remote.Ref) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if h, ok := a.s.readHeader(ref); ok {
		return h, nil
	}
	if h, ok := a.s.readHeaderPart(ref); ok {
		return h, nil
	}
	if a.inner == nil {
		return nil, a.s.missErr(ref)
	}
	h, err := a.inner.Header(ctx, ref)
	if err != nil {
		return nil, err
	}
	if err := a.s.putHeader(ref, h); err != nil && !errors.Is(err, errStale) {
		a.s.log.Warn("cache: header not stored", "folder", ref.Folder, "key", msgKey(ref), "err", err)
	}
	return h, nil
}

// Body implements remote.Account: the cached body, else the server's,
// stored (for POP3 durably) before it is returned. A body being streamed
// in (Download) is waited for and read from the cache.
func (a *Account) Body(ctx context.Context, ref remote.Ref) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if b, ok := a.s.readBody(ref); ok {
		return b, nil
	}
	if a.inner == nil {
		return nil, a.s.missErr(ref)
	}
	if a.s.awaitStream(ctx, ref) {
		if b, ok := a.s.readBody(ref); ok {
			return b, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	b, err := a.inner.Body(ctx, ref)
	if err != nil {
		return nil, err
	}
	a.store(ref, b)
	return b, nil
}

// store caches a body fetched from the server; failing to is logged, not
// returned: the caller has the body.
func (a *Account) store(ref remote.Ref, b []byte) bool {
	err := a.s.putBody(ref, b)
	switch {
	case err == nil:
		return true
	case errors.Is(err, remote.ErrUIDValidity):
		a.s.log.Debug("cache: body under an old UIDVALIDITY not stored", "folder", ref.Folder, "key", msgKey(ref))
	default:
		a.s.log.Warn("cache: body not stored", "folder", ref.Folder, "key", msgKey(ref), "err", err)
	}
	return false
}

// BodyRange implements remote.RangeReader: from the cached body, else from
// the server, keeping the chunks the range covers whole (see partial.go:
// once every chunk of a body is kept, it is cached); an inner account that
// cannot read ranges fetches, and so caches, the whole body.
func (a *Account) BodyRange(ctx context.Context, ref remote.Ref, off, n int64) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if off < 0 || n < 0 {
		return nil, fmt.Errorf("cache: range %d+%d of %s/%s", off, n, ref.Folder, msgKey(ref))
	}
	if m, ok := a.s.lookup(ref); ok {
		lo := min(off, m.size)
		b, err := a.s.readSpan(ref, m, lo, lo+min(n, m.size-lo))
		if err == nil {
			a.s.touch(ref)
			return b, nil
		}
		a.s.readFailed(ref, err)
	}
	if a.inner == nil {
		return nil, a.s.missErr(ref)
	}
	if rr, ok := a.inner.(remote.RangeReader); ok {
		b, err := rr.BodyRange(ctx, ref, off, n)
		if err != nil {
			return nil, err
		}
		got := int64(len(b))
		end := int64(-1)
		if got < n && (got > 0 || off == 0) {
			end = off + got // fewer bytes: the body ends there
		}
		a.s.noteRange(ref, off, b, end)
		return b, nil
	}
	b, err := a.Body(ctx, ref)
	if err != nil {
		return nil, err
	}
	lo := min(off, int64(len(b)))
	return b[lo : lo+min(n, int64(len(b))-lo)], nil
}

// StreamRange implements remote.RangeStreamer: from the cached body, one
// chunk read at a time, else from the server, keeping the chunks the
// stream covers whole, as BodyRange does. A cached body evicted while
// streamed is finished from the server.
func (a *Account) StreamRange(ctx context.Context, ref remote.Ref, off, n, piece int64, fn func(b []byte)) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if off < 0 || n < 0 || piece <= 0 {
		return 0, fmt.Errorf("cache: stream %d+%d in pieces of %d of %s/%s", off, n, piece, ref.Folder, msgKey(ref))
	}
	var done int64
	if m, ok := a.s.lookup(ref); ok {
		var err error
		done, err = a.streamCached(ctx, ref, m, off, n, piece, fn)
		if err == nil {
			a.s.touch(ref)
			return done, nil
		}
		if !errors.Is(err, errVanished) {
			return done, err
		}
		a.s.readFailed(ref, err)
		off, n = off+done, n-done
	}
	if a.inner == nil {
		return done, a.s.missErr(ref)
	}
	if rs, ok := a.inner.(remote.RangeStreamer); ok {
		keep := a.s.newRangeKeeper(ref, off)
		k, err := rs.StreamRange(ctx, ref, off, n, piece, func(b []byte) {
			fn(b)
			keep.add(b)
		})
		if err == nil {
			keep.done(k, n)
		}
		return done + k, err
	}
	b, err := a.BodyRange(ctx, ref, off, n)
	if err != nil {
		return done, err
	}
	for len(b) > 0 {
		k := min(int64(len(b)), piece)
		fn(b[:k])
		b = b[k:]
		done += k
	}
	return done, nil
}

// streamCached delivers [off, off+n) of a cached body in pieces, reading
// one chunk at a time; every piece is a fresh slice the caller may keep.
func (a *Account) streamCached(ctx context.Context, ref remote.Ref, m bodyMeta, off, n, piece int64, fn func([]byte)) (int64, error) {
	if off >= m.size {
		return 0, nil
	}
	hi := off + min(n, m.size-off)
	var done int64
	for pos := off; pos < hi; {
		if err := ctx.Err(); err != nil {
			return done, err
		}
		end := min(hi, (pos/m.chunk+1)*m.chunk)
		b, err := a.s.readSpan(ref, m, pos, end)
		if err != nil {
			return done, err
		}
		for len(b) > 0 {
			k := min(int64(len(b)), piece)
			fn(b[:k:k])
			b = b[k:]
			done += k
		}
		pos = end
	}
	return done, nil
}

// Bodies implements remote.BulkFetcher: cached bodies from the cache, the
// rest in one request to the server (one Body each if it cannot bulk
// fetch), each stored as it arrives. fn is never called concurrently.
// Offline, messages the cache knows are gone are skipped; any other
// uncached one is an error.
func (a *Account) Bodies(ctx context.Context, refs []remote.Ref, fn func(ref remote.Ref, body []byte)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var fnMu sync.Mutex // serializes fn
	deliver := func(r remote.Ref, b []byte) {
		fnMu.Lock()
		defer fnMu.Unlock()
		fn(r, b)
	}
	var rest []remote.Ref
	for _, r := range refs {
		if b, ok := a.s.readBody(r); ok {
			deliver(r, b)
		} else {
			rest = append(rest, r)
		}
	}
	if len(rest) == 0 {
		return nil
	}
	if a.inner == nil {
		for _, r := range rest {
			if err := a.s.missErr(r); !errors.Is(err, remote.ErrNotFound) {
				return err
			}
		}
		return nil
	}
	got := func(r remote.Ref, b []byte) {
		a.store(r, b)
		deliver(r, b)
	}
	var err error
	if bf, ok := a.inner.(remote.BulkFetcher); ok {
		err = bf.Bodies(ctx, rest, got)
	} else {
		for _, r := range rest {
			if a.s.awaitStream(ctx, r) {
				if b, ok := a.s.readBody(r); ok {
					deliver(r, b)
					continue
				}
			}
			b, berr := a.inner.Body(ctx, r)
			if errors.Is(berr, remote.ErrNotFound) {
				continue
			}
			if berr != nil {
				err = berr
				break
			}
			got(r, b)
		}
	}
	return err
}

// Delete implements remote.Deleter: the server deletes, then the cache
// drops the messages. A POP3 message the server no longer has is only
// dropped from the cache (no error); for IMAP that is ErrNotFound. Offline
// nothing is deleted.
func (a *Account) Delete(ctx context.Context, refs []remote.Ref) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if a.inner == nil {
		return fmt.Errorf("cache: delete: offline: %w", remote.ErrUnavailable)
	}
	d, ok := a.inner.(remote.Deleter)
	if !ok {
		return fmt.Errorf("cache: delete: the account cannot delete messages: %w", remote.ErrReadOnly)
	}
	err := d.Delete(ctx, refs)
	if err != nil && !errors.Is(err, remote.ErrNotFound) {
		return err
	}
	// Deleted, or gone from the server already: either way not to be
	// served any more.
	if derr := a.s.drop(refs); derr != nil {
		return derr
	}
	if a.s.pop3 {
		// A POP3 message the server no longer has lives only here: dropping
		// it is the whole deletion.
		return nil
	}
	return err
}
