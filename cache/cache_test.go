package cache_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"mailfs/cache"
	"mailfs/internal/memserver"
	"mailfs/remote"
	"mailfs/remote/remotetest"
)

// TestConformance runs the remote suite on the cache around a real IMAP
// account: cold (empty cache), warm (every body cached: only the suite's
// two missing messages reach the server) and offline (no server at all).
func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name  string
		disk  bool
		chunk int64 // 0: the default
	}{
		{"memory", false, 0},
		{"disk-small-chunks", true, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msgs, want := mailbox()
			srv := startServer(t, msgs)
			opts := cache.Options{InMemory: !tc.disk, Account: "test", Protocol: "imap", Logger: testLogger(t)}
			if tc.disk {
				opts.Dir = t.TempDir()
			}
			var s *cache.Store
			var err error
			if tc.chunk > 0 {
				s, err = cache.OpenChunked(opts, tc.chunk)
			} else {
				s, err = cache.Open(opts)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()

			t.Run("cold", func(t *testing.T) {
				remotetest.Run(t, s.Wrap(&counting{inner: dial(t, srv, 2)}), want)
			})
			t.Run("warm", func(t *testing.T) {
				c := &counting{inner: dial(t, srv, 2)}
				remotetest.Run(t, s.Wrap(c), want)
				if got := c.bodies.Load(); got != 2 {
					t.Errorf("warm: got %d body fetches from the server, want 2 (the suite's missing message and stale ref)", got)
				}
				if got := c.headers.Load() + c.ranges.Load() + c.streams.Load() + c.bulks.Load(); got != 0 {
					t.Errorf("warm: got %d header/range/bulk fetches from the server, want 0", got)
				}
			})
			t.Run("offline", func(t *testing.T) {
				remotetest.Run(t, s.Wrap(nil), want)
			})
		})
	}
}

// TestServedFromCache: what the cache holds does not reach the server.
func TestServedFromCache(t *testing.T) {
	msgs, _ := mailbox()
	srv := startServer(t, msgs)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		run  func(a *cache.Account, refs []remote.Ref) error
		want func(c *counting) (got, want int64)
	}{
		{"second Body", func(a *cache.Account, refs []remote.Ref) error {
			for range 2 {
				if _, err := a.Body(ctx, refs[0]); err != nil {
					return err
				}
			}
			return nil
		}, func(c *counting) (int64, int64) { return c.bodies.Load(), 1 }},
		{"Header after Body", func(a *cache.Account, refs []remote.Ref) error {
			if _, err := a.Body(ctx, refs[0]); err != nil {
				return err
			}
			_, err := a.Header(ctx, refs[0])
			return err
		}, func(c *counting) (int64, int64) { return c.headers.Load(), 0 }},
		{"second Header", func(a *cache.Account, refs []remote.Ref) error {
			for range 2 {
				if _, err := a.Header(ctx, refs[0]); err != nil {
					return err
				}
			}
			return nil
		}, func(c *counting) (int64, int64) { return c.headers.Load(), 1 }},
		{"BodyRange uncached passes through", func(a *cache.Account, refs []remote.Ref) error {
			for range 2 {
				if _, err := a.BodyRange(ctx, refs[0], 10, 20); err != nil {
					return err
				}
			}
			if a.Cached(refs[0]) {
				return errors.New("a range cached the body")
			}
			return nil
		}, func(c *counting) (int64, int64) { return c.ranges.Load(), 2 }},
		{"BodyRange after Body", func(a *cache.Account, refs []remote.Ref) error {
			if _, err := a.Body(ctx, refs[0]); err != nil {
				return err
			}
			_, err := a.BodyRange(ctx, refs[0], 10, 20)
			return err
		}, func(c *counting) (int64, int64) { return c.ranges.Load(), 0 }},
		{"StreamRange uncached passes through", func(a *cache.Account, refs []remote.Ref) error {
			var got []byte
			if _, err := a.StreamRange(ctx, refs[0], 5, 50, 7, func(b []byte) { got = append(got, b...) }); err != nil {
				return err
			}
			if len(got) != 50 || a.Cached(refs[0]) {
				return fmt.Errorf("got %d bytes, cached %v; want 50, not cached", len(got), a.Cached(refs[0]))
			}
			return nil
		}, func(c *counting) (int64, int64) { return c.streams.Load(), 1 }},
		{"StreamRange after Body", func(a *cache.Account, refs []remote.Ref) error {
			if _, err := a.Body(ctx, refs[0]); err != nil {
				return err
			}
			_, err := a.StreamRange(ctx, refs[0], 0, 1<<20, 100, func([]byte) {})
			return err
		}, func(c *counting) (int64, int64) { return c.streams.Load(), 0 }},
		{"Bodies asks only for the uncached", func(a *cache.Account, refs []remote.Ref) error {
			if _, err := a.Body(ctx, refs[0]); err != nil {
				return err
			}
			n := 0
			if err := a.Bodies(ctx, refs, func(remote.Ref, []byte) { n++ }); err != nil {
				return err
			}
			if n != len(refs) {
				return fmt.Errorf("got %d bodies, want %d", n, len(refs))
			}
			for _, r := range refs {
				if !a.Cached(r) {
					return fmt.Errorf("%s not cached after Bodies", r.Key)
				}
			}
			// All cached now: nothing more reaches the server.
			return a.Bodies(ctx, refs, func(remote.Ref, []byte) {})
		}, func(c *counting) (int64, int64) { return c.bulkMsgs.Load(), 2 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &counting{inner: dial(t, srv, 2)}
			a := memStore(t, "imap", 0).Wrap(c)
			l := mustList(t, a, "INBOX")
			refs := refsOf("INBOX", l)[:3]
			if err := tc.run(a, refs); err != nil {
				t.Fatal(err)
			}
			if got, want := tc.want(c); got != want {
				t.Errorf("got %d requests to the server, want %d", got, want)
			}
		})
	}
}

// TestUIDValidityChange: a folder deleted and created again reuses UIDs
// under a new UIDVALIDITY; the old bodies must never be served again.
func TestUIDValidityChange(t *testing.T) {
	oldRaw := []byte(message("old", "", "the old message"))
	newRaw := []byte(message("new", "", "the new message, another one"))
	srv := startServer(t, []memserver.Message{{Folder: "Box", Date: time.Now(), Raw: oldRaw}})
	c := &counting{inner: dial(t, srv, 1)}
	s := memStore(t, "imap", 0)
	a := s.Wrap(c)

	l1 := mustList(t, a, "Box")
	old := refsOf("Box", l1)[0]
	if got := mustBody(t, a, old); !bytes.Equal(got, oldRaw) {
		t.Fatalf("old body: got %q", got)
	}
	if _, err := a.Header(context.Background(), old); err != nil {
		t.Fatal(err)
	}

	if err := srv.User().Delete("Box"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Append([]memserver.Message{{Folder: "Box", Date: time.Now(), Raw: newRaw}}); err != nil {
		t.Fatal(err)
	}
	l2 := mustList(t, a, "Box")
	cur := refsOf("Box", l2)[0]
	if l2.UIDValidity == l1.UIDValidity || cur.UID != old.UID {
		t.Fatalf("server: got UIDVALIDITY %d → %d, UID %d → %d; want a new UIDVALIDITY and the same UID", l1.UIDValidity, l2.UIDValidity, old.UID, cur.UID)
	}
	if got := l2.Messages[0].Size; got != int64(len(newRaw)) {
		t.Errorf("listed size: got %d, want %d (the new message's)", got, len(newRaw))
	}
	if s.Wrap(nil).Cached(old) || s.Wrap(nil).Cached(cur) {
		t.Errorf("after the new listing: got old cached %v, new cached %v; want neither", a.Cached(old), a.Cached(cur))
	}
	if got := mustBody(t, a, cur); !bytes.Equal(got, newRaw) {
		t.Errorf("new ref: got %q, want the new message", got)
	}
	h, err := a.Header(context.Background(), cur)
	if err != nil || !bytes.Contains(h, []byte("Subject: new")) {
		t.Errorf("new ref header: got %q, %v; want the new message's", h, err)
	}

	before := c.bodies.Load()
	got, err := a.Body(context.Background(), old)
	if c.bodies.Load() != before+1 {
		t.Errorf("old ref: got served from the cache, want it asked of the server")
	}
	if bytes.Equal(got, oldRaw) {
		t.Errorf("old ref: got the old body back")
	}
	off := s.Wrap(nil)
	for _, f := range []func(context.Context, remote.Ref) ([]byte, error){off.Body, off.Header} {
		if b, err := f(context.Background(), old); !errors.Is(err, remote.ErrUIDValidity) || !errors.Is(err, remote.ErrUnavailable) {
			t.Errorf("offline, old ref: got %q, %v; want ErrUIDValidity and ErrUnavailable", b, err)
		}
	}
	if b, err := off.Body(context.Background(), cur); err != nil || !bytes.Equal(b, newRaw) {
		t.Errorf("offline, new ref: got %q, %v; want the new message", b, err)
	}
	// A late store under the old UIDVALIDITY (a fetch that was in flight) is
	// refused.
	if err := a.Store(old, oldRaw); !errors.Is(err, remote.ErrUIDValidity) {
		t.Errorf("storing under the old UIDVALIDITY: got %v, want ErrUIDValidity", err)
	}
}

// TestPOP3: the listing is the union of the maildrop and what the cache
// holds; dates come from the Date header, else the download time.
func TestPOP3(t *testing.T) {
	ctx := context.Background()
	const (
		d1 = "Mon, 02 Jan 2006 15:04:05 +0000"
		d2 = "Tue, 03 Jan 2006 10:00:00 +0100"
	)
	m1 := message("one", d1, "first")
	m2 := message("two", d2, "second")
	m3 := message("three", "", "no date")
	m4 := message("four", "not a date", "bad date")
	m5 := message("five", "Fri, 06 Jan 2006 00:00:00 +0000", "never fetched")
	drop := newMaildrop([2]string{"u1", m1}, [2]string{"u2", m2}, [2]string{"u3", m3}, [2]string{"u4", m4}, [2]string{"u5", m5})
	s := memStore(t, "pop3", 1) // a size bound does not apply to POP3
	a := s.Wrap(drop)

	start := time.Now()
	refs := refsOf("INBOX", mustList(t, a, "INBOX"))
	// u3, u1, u4, u2 in that order: the order of first caching.
	for _, i := range []int{2, 0, 3, 1} {
		mustBody(t, a, refs[i])
	}
	end := time.Now()
	for _, k := range []string{"u1", "u3", "u4"} {
		drop.remove(k)
	}
	if n := s.EvictNow(); n != 0 {
		t.Errorf("eviction: got %d bytes evicted, want 0 (POP3 is never evicted)", n)
	}

	type row struct {
		key  string
		size int
		date string // "": the download time; "-": none; else RFC 1123
	}
	check := func(t *testing.T, l *remote.Listing, want []row) {
		t.Helper()
		var wantKeys []string
		for _, w := range want {
			wantKeys = append(wantKeys, w.key)
		}
		if got := keysOf(l); !slices.Equal(got, wantKeys) {
			t.Fatalf("got keys %v, want %v", got, wantKeys)
		}
		if l.UIDValidity != 0 {
			t.Errorf("got UIDVALIDITY %d, want 0", l.UIDValidity)
		}
		for i, w := range want {
			m := l.Messages[i]
			if m.Size != int64(w.size) {
				t.Errorf("%s: got size %d, want %d", w.key, m.Size, w.size)
			}
			switch w.date {
			case "":
				if m.Date.Before(start.Add(-time.Second)) || m.Date.After(end.Add(time.Second)) {
					t.Errorf("%s: got date %v, want the download time (%v to %v)", w.key, m.Date, start, end)
				}
			case "-":
				if !m.Date.IsZero() {
					t.Errorf("%s: got date %v, want none", w.key, m.Date)
				}
			default:
				d, _ := time.Parse(time.RFC1123Z, w.date)
				if !m.Date.Equal(d) {
					t.Errorf("%s: got date %v, want %v", w.key, m.Date, d)
				}
			}
		}
	}
	t.Run("online", func(t *testing.T) {
		check(t, mustList(t, a, "INBOX"), []row{
			{"u2", len(m2), d2},
			{"u5", len(m5), "-"}, // never fetched: the server's listing
			{"u3", len(m3), ""},  // gone from the server, in caching order
			{"u1", len(m1), d1},
			{"u4", len(m4), ""},
		})
	})
	t.Run("offline", func(t *testing.T) {
		check(t, mustList(t, s.Wrap(nil), "INBOX"), []row{
			{"u2", len(m2), d2},
			{"u3", len(m3), ""},
			{"u1", len(m1), d1},
			{"u4", len(m4), ""},
		})
	})
	t.Run("gone from the server, still readable", func(t *testing.T) {
		before := drop.bodies.Load()
		for _, r := range refs[:4] {
			b, err := a.Body(ctx, r)
			if err != nil || !bytes.Equal(b, []byte(map[string]string{"u1": m1, "u2": m2, "u3": m3, "u4": m4}[r.Key])) {
				t.Errorf("%s: got %q, %v", r.Key, b, err)
			}
		}
		if got := drop.bodies.Load() - before; got != 0 {
			t.Errorf("got %d fetches from the maildrop, want 0", got)
		}
	})
	t.Run("delete", func(t *testing.T) {
		if err := a.Delete(ctx, []remote.Ref{refs[1], refs[2]}); err != nil { // u2 on the server, u3 only cached
			t.Fatal(err)
		}
		check(t, mustList(t, a, "INBOX"), []row{
			{"u5", len(m5), "-"},
			{"u1", len(m1), d1},
			{"u4", len(m4), ""},
		})
		if a.Cached(refs[1]) || a.Cached(refs[2]) {
			t.Errorf("deleted messages still cached")
		}
	})
}

// TestExpunged: IMAP messages a listing shows expunged leave the cache;
// one above the listing's highest UID may be newer than it and stays.
func TestExpunged(t *testing.T) {
	drop := newMaildrop([2]string{"1", message("1", "", "")}, [2]string{"2", message("2", "", "")},
		[2]string{"3", message("3", "", "")}, [2]string{"4", message("4", "", "")})
	s := memStore(t, "imap", 0)
	a := s.Wrap(drop)
	refs := refsOf("INBOX", mustList(t, a, "INBOX"))
	for _, r := range refs {
		mustBody(t, a, r)
		if _, err := a.Header(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	drop.remove("2")
	drop.remove("4")
	mustList(t, a, "INBOX")
	for i, want := range []bool{true, false, true, true} {
		if got := a.Cached(refs[i]); got != want {
			t.Errorf("UID %s: got cached %v, want %v", refs[i].Key, got, want)
		}
	}
	if _, err := s.Wrap(nil).Header(context.Background(), refs[1]); !errors.Is(err, remote.ErrUnavailable) {
		t.Errorf("header of the expunged message offline: got %v, want ErrUnavailable", err)
	}
}
