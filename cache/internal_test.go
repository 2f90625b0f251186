package cache

import (
	"context"
	"errors"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"mailfs/remote"
)

// TestStrayChunks: chunks written without their record (a crash while
// storing) are not a cached body and are deleted at the next Open.
func TestStrayChunks(t *testing.T) {
	opts := Options{Dir: t.TempDir(), Account: "a", Protocol: "imap"}
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	ref := remote.Ref{Folder: "INBOX", UIDValidity: 1, Key: "9"}
	stray := s.chunkKey(fv{"INBOX", 1}, "9", 0)
	if err := s.write([]entry{{key: stray, value: []byte("half a body")}}); err != nil {
		t.Fatal(err)
	}
	if s.cached(ref) {
		t.Errorf("got a body without its record cached")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.view(func(txn *badger.Txn) error {
		_, err := txn.Get(stray)
		return err
	})
	if !errors.Is(err, badger.ErrKeyNotFound) {
		t.Errorf("stray chunk after reopen: got %v, want it deleted", err)
	}
}

// TestVanishedWhileStreamed: a body evicted between chunks is finished
// from the server.
func TestVanishedWhileStreamed(t *testing.T) {
	s, err := open(Options{InMemory: true, Account: "a", Protocol: "imap"}, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	raw := []byte("0123456789abcdefghijklmnopqrstuvwxyz")
	ref := remote.Ref{Folder: "INBOX", UIDValidity: 1, UID: 3, Key: "3"}
	inner := &streamer{raw: raw}
	a := s.Wrap(inner)
	if err := a.Store(ref, raw); err != nil {
		t.Fatal(err)
	}
	var got []byte
	n, err := a.StreamRange(t.Context(), ref, 5, 100, 4, func(b []byte) {
		got = append(got, b...)
		if len(got) == 5 { // the first chunk delivered: the body goes
			s.drop([]remote.Ref{ref})
		}
	})
	if err != nil || string(got) != string(raw[5:]) || n != int64(len(raw)-5) {
		t.Errorf("got %q (%d), %v; want %q", got, n, err, raw[5:])
	}
	if inner.calls != 1 || inner.off != 10 {
		t.Errorf("got %d server streams from offset %d, want 1 from 10 (the first chunk not cached)", inner.calls, inner.off)
	}
}

// streamer serves one message by StreamRange only.
type streamer struct {
	remote.Account
	raw   []byte
	calls int
	off   int64
}

func (s *streamer) StreamRange(_ context.Context, _ remote.Ref, off, n, piece int64, fn func([]byte)) (int64, error) {
	s.calls++
	s.off = off
	b := s.raw[min(off, int64(len(s.raw))):min(off+n, int64(len(s.raw)))]
	for len(b) > 0 {
		k := min(int64(len(b)), piece)
		fn(b[:k])
		b = b[k:]
	}
	return min(n, int64(len(s.raw))-off), nil
}
