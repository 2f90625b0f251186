package cache_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mailfs/cache"
	"mailfs/remote"
)

// streamDrop is a maildrop that streams bodies (remote.BodyStreamer) in
// small pieces, like POP3 RETR.
type streamDrop struct {
	*maildrop
	failAt  int64  // a stream fails once it has written this many bytes
	during  func() // called once, after the first piece of a stream
	streams atomic.Int64
}

func (d *streamDrop) StreamBody(_ context.Context, ref remote.Ref, w io.Writer) (int64, error) {
	d.streams.Add(1)
	b, err := d.get(ref)
	if err != nil {
		return 0, err
	}
	var n int64
	for len(b) > 0 {
		k := min(len(b), 10000)
		if d.failAt > 0 && n+int64(k) > d.failAt {
			return n, fmt.Errorf("test: connection reset: %w", remote.ErrUnavailable)
		}
		m, err := w.Write(b[:k])
		n += int64(m)
		if err != nil {
			return n, err
		}
		b = b[k:]
		if d.during != nil {
			d.during()
			d.during = nil
		}
	}
	return n, nil
}

// TestDownload: Download streams bodies into the cache chunk by chunk; the
// result is the body Body would have cached, with its date.
func TestDownload(t *testing.T) {
	const date = "Tue, 03 Jan 2006 10:00:00 +0100"
	large := []byte(message("large", date, string(bigMessage(mib+3))))
	small := []byte(message("small", "", "text"))
	drop := &streamDrop{maildrop: newMaildrop([2]string{"large", string(large)}, [2]string{"empty", ""}, [2]string{"small", string(small)})}
	dir := t.TempDir()
	s := open(t, cache.Options{Dir: dir, Protocol: "pop3"})
	a := s.Wrap(drop)
	ctx := context.Background()
	refs := refsOf("INBOX", mustList(t, a, "INBOX"))
	refs = append(refs, remote.Ref{Folder: "INBOX", Key: "gone"})
	got := map[string]int64{}
	if err := a.Download(ctx, refs, func(r remote.Ref, n int64) { got[r.Key] = n }); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"large": int64(len(large)), "empty": 0, "small": int64(len(small))}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got sizes %v, want %v", got, want)
	}
	if n := drop.bodies.Load(); n != 0 {
		t.Errorf("got %d Body calls, want none (streamed)", n)
	}
	// Cached already: not fetched again.
	if err := a.Download(ctx, refs[:3], func(remote.Ref, int64) {}); err != nil || drop.streams.Load() != 4 {
		t.Errorf("second Download: %v, %d streams in all, want 4", err, drop.streams.Load())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, cache.Options{Dir: dir, Protocol: "pop3"})
	off := s.Wrap(nil)
	for _, r := range refs[:3] {
		if b := mustBody(t, off, r); !bytes.Equal(b, drop.msgs[r.Key]) {
			t.Errorf("%s offline: got %d bytes, want %d", r.Key, len(b), len(drop.msgs[r.Key]))
		}
	}
	l := mustList(t, off, "INBOX")
	d, _ := time.Parse(time.RFC1123Z, date)
	if len(l.Messages) != 3 || l.Messages[0].Key != "large" || !l.Messages[0].Date.Equal(d) {
		t.Errorf("offline listing %+v, want large first, dated %v", l.Messages, d)
	}
}

// TestDownloadCut: a stream that fails leaves no record and no chunks.
func TestDownloadCut(t *testing.T) {
	raw := bigMessage(mib)
	drop := &streamDrop{maildrop: newMaildrop([2]string{"u1", string(raw)}), failAt: 600 << 10}
	dir := t.TempDir()
	s := open(t, cache.Options{Dir: dir, Protocol: "pop3"})
	a := s.Wrap(drop)
	ref := remote.Ref{Folder: "INBOX", Key: "u1"}
	err := a.Download(context.Background(), []remote.Ref{ref}, func(remote.Ref, int64) { t.Error("a cut body reported stored") })
	if !errors.Is(err, remote.ErrUnavailable) {
		t.Errorf("got %v, want the stream's error", err)
	}
	if a.Cached(ref) {
		t.Errorf("a cut body is cached")
	}
	if n := s.ChunkCount(); n != 0 {
		t.Errorf("%d chunks left of the cut body, want 0", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, cache.Options{Dir: dir, Protocol: "pop3"})
	if s.Wrap(nil).Cached(ref) {
		t.Errorf("a cut body is cached after reopening")
	}
}

// TestDownloadWhileRead: a body read while it is being streamed in is
// taken from the cache once the stream is done, not fetched again; one
// stored whole meanwhile (Store) ends the stream, and is cached once,
// correctly; one deleted meanwhile stays deleted.
func TestDownloadWhileRead(t *testing.T) {
	raw := bigMessage(mib + 5)
	drop := &streamDrop{maildrop: newMaildrop([2]string{"u1", string(raw)}, [2]string{"u2", string(raw)})}
	s := open(t, cache.Options{Dir: t.TempDir(), Protocol: "pop3"})
	a := s.Wrap(drop)
	ctx := context.Background()
	ref := remote.Ref{Folder: "INBOX", Key: "u1"}
	var wg sync.WaitGroup
	drop.during = func() {
		wg.Go(func() {
			if b, err := a.Body(ctx, ref); err != nil || !bytes.Equal(b, raw) {
				t.Errorf("Body while streamed: %d bytes, %v", len(b), err)
			}
		})
		time.Sleep(50 * time.Millisecond) // Body is waiting
	}
	var size int64
	if err := a.Download(ctx, []remote.Ref{ref}, func(_ remote.Ref, n int64) { size = n }); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if size != int64(len(raw)) {
		t.Errorf("got size %d, want %d", size, len(raw))
	}
	if n := drop.bodies.Load(); n != 0 {
		t.Errorf("the body was fetched %d more times, want 0", n)
	}

	ref2 := remote.Ref{Folder: "INBOX", Key: "u2"}
	drop.during = func() {
		if err := a.Store(ref2, raw); err != nil {
			t.Errorf("Store: %v", err)
		}
	}
	size = 0
	if err := a.Download(ctx, []remote.Ref{ref2}, func(_ remote.Ref, n int64) { size = n }); err != nil {
		t.Fatal(err)
	}
	if size != int64(len(raw)) {
		t.Errorf("stored meanwhile: got size %d, want %d", size, len(raw))
	}
	for _, r := range []remote.Ref{ref, ref2} {
		if b := mustBody(t, s.Wrap(nil), r); !bytes.Equal(b, raw) {
			t.Errorf("%s cached: got %d bytes, not the message", r.Key, len(b))
		}
	}
	if n, want := s.ChunkCount(), 2*((len(raw)+256<<10-1)/(256<<10)); n != want {
		t.Errorf("got %d chunks, want %d", n, want)
	}

	// Deleted while it is streamed in: not brought back by the stream.
	drop.add("u3", raw)
	ref3 := remote.Ref{Folder: "INBOX", Key: "u3"}
	drop.during = func() {
		if err := a.Delete(ctx, []remote.Ref{ref3}); err != nil {
			t.Errorf("Delete: %v", err)
		}
	}
	if err := a.Download(ctx, []remote.Ref{ref3}, func(remote.Ref, int64) { t.Error("a deleted message reported stored") }); err != nil {
		t.Fatal(err)
	}
	if a.Cached(ref3) {
		t.Errorf("a message deleted while it was streamed in is cached")
	}
	if n, want := s.ChunkCount(), 2*((len(raw)+256<<10-1)/(256<<10)); n != want {
		t.Errorf("after the deleted stream: got %d chunks, want %d", n, want)
	}
}

// TestDownloadOffline: offline, Download is Bodies: what is cached is
// reported, anything else is an error.
func TestDownloadOffline(t *testing.T) {
	drop := &streamDrop{maildrop: newMaildrop([2]string{"u1", "Subject: a\r\n\r\n"}, [2]string{"u2", "Subject: b\r\n\r\n"})}
	s := memStore(t, "pop3", 0)
	refs := refsOf("INBOX", mustList(t, s.Wrap(drop), "INBOX"))
	mustBody(t, s.Wrap(drop), refs[0])
	var got []string
	err := s.Wrap(nil).Download(context.Background(), refs, func(r remote.Ref, _ int64) { got = append(got, r.Key) })
	if !errors.Is(err, remote.ErrUnavailable) || fmt.Sprint(got) != "[u1]" {
		t.Errorf("got %v, %v; want [u1] and ErrUnavailable", got, err)
	}
}
