package cache_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"mailfs/cache"
	"mailfs/internal/memserver"
	"mailfs/remote"
)

// bigMessage is a message of exactly size bytes.
func bigMessage(size int) []byte {
	var b bytes.Buffer
	b.WriteString("From: a@example.com\r\nTo: b@example.com\r\nSubject: large\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\n\r\n")
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "%08d %s\r\n", i, strings.Repeat("abcdefghij", 7))
	}
	return b.Bytes()[:size]
}

const mib = 1 << 20

// readLikeFS reads a large message the way the filesystem does (fs/bodies.go):
// the size probe, chunk 0, then chunk 1 while the rest streams from chunk 2
// on, in 1 MiB pieces.
func readLikeFS(t *testing.T, a *cache.Account, ref remote.Ref, size int64) []byte {
	t.Helper()
	ctx := context.Background()
	probe, err := a.BodyRange(ctx, ref, size-1, 2)
	if err != nil || len(probe) != 1 {
		t.Fatalf("size probe: %d bytes, %v", len(probe), err)
	}
	c0, err := a.BodyRange(ctx, ref, 0, mib)
	if err != nil {
		t.Fatal(err)
	}
	var c1, rest []byte
	var err1, err2 error
	var wg sync.WaitGroup
	wg.Go(func() { c1, err1 = a.BodyRange(ctx, ref, mib, mib) })
	wg.Go(func() {
		_, err2 = a.StreamRange(ctx, ref, 2*mib, size-2*mib, mib, func(b []byte) { rest = append(rest, b...) })
	})
	wg.Wait()
	if err1 != nil || err2 != nil {
		t.Fatalf("chunk 1: %v; stream: %v", err1, err2)
	}
	return slicesConcat(c0, c1, rest)
}

func slicesConcat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// TestRangesKept: a large message read once through the mount, in ranges,
// is cached: served from the cache afterwards, offline too, and after the
// cache is reopened.
func TestRangesKept(t *testing.T) {
	raw := bigMessage(5*mib + 12345) // the last chunk is a short one
	srv := startServer(t, []memserver.Message{{Folder: "INBOX", Date: time.Unix(1700000000, 0), Raw: raw}})
	dir := t.TempDir()
	s := open(t, cache.Options{Dir: dir})
	c := &counting{inner: dial(t, srv, 2)}
	a := s.Wrap(c)
	l := mustList(t, a, "INBOX")
	ref := refsOf("INBOX", l)[0]
	if got := readLikeFS(t, a, ref, l.Messages[0].Size); !bytes.Equal(got, raw) {
		t.Fatalf("read in ranges: got %d bytes, want the %d of the message", len(got), len(raw))
	}
	if !a.Cached(ref) {
		t.Fatal("not cached after it was read whole in ranges")
	}
	if n := s.PartialBytes(); n != 0 {
		t.Errorf("got %d bytes of partial bodies, want 0", n)
	}
	if n := s.CachedBytes(); n != int64(len(raw)) {
		t.Errorf("got %d cached bytes, want %d", n, len(raw))
	}
	before := c.fetches()
	if got := readLikeFS(t, a, ref, int64(len(raw))); !bytes.Equal(got, raw) {
		t.Errorf("second read: got %d bytes, not the message", len(got))
	}
	if n := c.fetches() - before; n != 0 {
		t.Errorf("second read: %d requests to the server, want 0", n)
	}
	if b := mustBody(t, s.Wrap(nil), ref); !bytes.Equal(b, raw) {
		t.Errorf("offline: got %d bytes, not the message", len(b))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, cache.Options{Dir: dir})
	off := s.Wrap(nil)
	if l := mustList(t, off, "INBOX"); len(l.Messages) != 1 || l.Messages[0].Size != int64(len(raw)) {
		t.Errorf("offline listing after reopening: %+v", l.Messages)
	}
	if b := mustBody(t, off, ref); !bytes.Equal(b, raw) {
		t.Errorf("offline after reopening: got %d bytes, not the message", len(b))
	}
}

// TestRangesPartly: a message read in part (head -c) is not cached, its
// chunks count against the size bound, and a new UIDVALIDITY drops them.
func TestRangesPartly(t *testing.T) {
	raw := bigMessage(3*mib + 100)
	drop := &ranged{maildrop: newMaildrop([2]string{"7", string(raw)})}
	s := open(t, cache.Options{Dir: t.TempDir(), MaxSize: 64 * mib})
	a := s.Wrap(drop)
	ctx := context.Background()
	l := mustList(t, a, "INBOX")
	ref := refsOf("INBOX", l)[0]
	if _, err := a.BodyRange(ctx, ref, int64(len(raw))-1, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := a.BodyRange(ctx, ref, 0, mib); err != nil {
		t.Fatal(err)
	}
	if a.Cached(ref) {
		t.Errorf("cached after reading its first MiB")
	}
	if n := s.PartialBytes(); n != mib {
		t.Errorf("got %d bytes of partial bodies, want %d", n, mib)
	}
	// A cut stream keeps what it delivered whole, no more, and no record.
	drop.failAt = mib + 200<<10 // one more MiB, and a piece of the next
	if _, err := a.StreamRange(ctx, ref, mib, int64(len(raw))-mib, mib, func([]byte) {}); err == nil {
		t.Fatal("the cut stream did not fail")
	}
	if a.Cached(ref) {
		t.Errorf("cached after a cut stream")
	}
	if n := s.PartialBytes(); n != 2*mib {
		t.Errorf("after the cut stream: got %d bytes of partial bodies, want %d", n, 2*mib)
	}
	drop.failAt = 0
	// The rest, in a range that is not aligned: completes the body.
	if _, err := a.BodyRange(ctx, ref, 2*mib-5, mib+200); err != nil {
		t.Fatal(err)
	}
	if !a.Cached(ref) {
		t.Fatal("not cached once every chunk was read")
	}
	if b := mustBody(t, s.Wrap(nil), ref); !bytes.Equal(b, raw) {
		t.Errorf("offline: got %d bytes, not the message", len(b))
	}

	// Another message, read in part; then the folder's UIDVALIDITY changes.
	drop.add("8", raw)
	ref8 := remote.Ref{Folder: "INBOX", UID: 8, Key: "8"}
	if _, err := a.BodyRange(ctx, ref8, 0, mib); err != nil {
		t.Fatal(err)
	}
	if n := s.PartialBytes(); n != mib {
		t.Errorf("got %d bytes of partial bodies, want %d", n, mib)
	}
	drop.validity = 2
	mustList(t, a, "INBOX")
	if n := s.PartialBytes(); n != 0 {
		t.Errorf("after a new UIDVALIDITY: got %d bytes of partial bodies, want 0", n)
	}
}

// TestRangesSizeBound: a message larger than the cache is not kept; chunks
// of a partial body are evicted like bodies.
func TestRangesSizeBound(t *testing.T) {
	raw := bigMessage(3*mib + 100)
	drop := &ranged{maildrop: newMaildrop([2]string{"1", string(raw)}, [2]string{"2", string(raw)}, [2]string{"4", string(raw)})}
	s := open(t, cache.Options{Dir: t.TempDir(), MaxSize: 2 * mib})
	a := s.Wrap(drop)
	ctx := context.Background()
	refs := refsOf("INBOX", mustList(t, a, "INBOX"))
	// The probe shows the size: larger than the cache, so nothing is kept.
	if _, err := a.BodyRange(ctx, refs[0], int64(len(raw))-1, 2); err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, mib, 2 * mib} {
		if _, err := a.BodyRange(ctx, refs[0], off, mib); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.PartialBytes(); n != 0 {
		t.Errorf("a message larger than the cache: %d bytes kept, want 0", n)
	}
	if s.CachedBytes() != 0 || a.Cached(refs[0]) {
		t.Errorf("a message larger than the cache was cached")
	}
	// Without the probe the size is unknown: chunks are kept, and evicted
	// like bodies, least recently used first.
	for _, r := range refs[1:] {
		if _, err := a.BodyRange(ctx, r, mib, mib); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.PartialBytes(); n != 2*mib {
		t.Errorf("got %d bytes of partial bodies, want %d", n, 2*mib)
	}
	small := []byte(message("small", "", strings.Repeat("x", 300<<10)))
	drop.add("3", small)
	mustBody(t, a, remote.Ref{Folder: "INBOX", UID: 3, Key: "3"})
	s.EvictNow()
	if total := s.CachedBytes() + s.PartialBytes(); total > 2*mib*9/10 {
		t.Errorf("after eviction: %d bytes, want at most 90%% of %d", total, 2*mib)
	}
	if n := s.PartialBytes(); n != mib {
		t.Errorf("after eviction: %d bytes of partial bodies, want %d (the older one evicted)", n, mib)
	}
	if !a.Cached(remote.Ref{Folder: "INBOX", UID: 3, Key: "3"}) {
		t.Errorf("the body used last was evicted before the older partial bodies")
	}
}

// TestRangesCutShort: a range that comes back short without an error
// before the body's end (a server that cut it) never completes a body.
func TestRangesCutShort(t *testing.T) {
	raw := bigMessage(3*mib + 100)
	drop := &ranged{maildrop: newMaildrop([2]string{"5", string(raw)}), cutAt: mib + mib/2}
	s := open(t, cache.Options{Dir: t.TempDir()})
	a := s.Wrap(drop)
	ctx := context.Background()
	ref := refsOf("INBOX", mustList(t, a, "INBOX"))[0]
	for _, off := range []int64{0, mib} {
		if _, err := a.BodyRange(ctx, ref, off, mib); err != nil {
			t.Fatal(err)
		}
	}
	if a.Cached(ref) {
		t.Errorf("the first %d bytes of a %d-byte message are cached as the message", mib+mib/2, len(raw))
	}
	if n := s.PartialBytes(); n != mib {
		t.Errorf("got %d bytes of partial bodies, want %d (the range cut short not kept)", n, mib)
	}
	// Once the server sends the rest, the body is complete.
	drop.cutAt = 0
	for _, off := range []int64{int64(len(raw)) - 1, mib, 2 * mib, 3 * mib} {
		if _, err := a.BodyRange(ctx, ref, off, mib); err != nil {
			t.Fatal(err)
		}
	}
	if b := mustBody(t, s.Wrap(nil), ref); !bytes.Equal(b, raw) {
		t.Errorf("offline: got %d bytes, not the message", len(b))
	}
}

// ranged is a maildrop that reads ranges (an IMAP server, numeric keys),
// with a UIDVALIDITY, and can cut a stream.
type ranged struct {
	*maildrop
	validity uint32
	failAt   int64 // a stream fails once it has delivered this many bytes
	cutAt    int64 // ranges end here, without an error
}

func (r *ranged) List(ctx context.Context, folder string) (*remote.Listing, error) {
	l, err := r.maildrop.List(ctx, folder)
	if l != nil {
		l.UIDValidity = r.validity
	}
	return l, err
}

func (r *ranged) BodyRange(_ context.Context, ref remote.Ref, off, n int64) ([]byte, error) {
	b, err := r.get(ref)
	if err != nil {
		return nil, err
	}
	if r.cutAt > 0 {
		b = b[:min(int64(len(b)), r.cutAt)]
	}
	lo := min(off, int64(len(b)))
	return bytes.Clone(b[lo : lo+min(n, int64(len(b))-lo)]), nil
}

func (r *ranged) StreamRange(ctx context.Context, ref remote.Ref, off, n, piece int64, fn func([]byte)) (int64, error) {
	b, err := r.BodyRange(ctx, ref, off, n)
	if err != nil {
		return 0, err
	}
	var done int64
	for len(b) > 0 {
		k := min(int64(len(b)), piece, 100<<10)
		if r.failAt > 0 && done+k > r.failAt {
			return done, fmt.Errorf("test: connection reset: %w", remote.ErrUnavailable)
		}
		fn(b[:k:k])
		b = b[k:]
		done += k
	}
	return done, nil
}
