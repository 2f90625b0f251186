package cache_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"mailfs/cache"
	"mailfs/remote"
)

// body returns a body of exactly n bytes that names itself.
func body(name string, n int) []byte {
	b := []byte(message(name, "", ""))
	return append(b, bytes.Repeat([]byte("x"), n-len(b))...)
}

func ref(folder, key string) remote.Ref {
	return remote.Ref{Folder: folder, UIDValidity: 7, Key: key}
}

// TestEviction: IMAP bodies go least recently used first (reads count),
// down to 90% of the bound; POP3 bodies stay.
func TestEviction(t *testing.T) {
	type op struct {
		read bool // else store
		key  string
	}
	for _, tc := range []struct {
		name     string
		protocol string
		max      int64
		ops      []op
		gone     []string
	}{
		{"under the bound", "imap", 12000, []op{{false, "a"}, {false, "b"}, {false, "c"}, {false, "d"}}, nil},
		{"oldest first", "imap", 11000, []op{{false, "a"}, {false, "b"}, {false, "c"}, {false, "d"}}, []string{"a"}},
		{"a read counts as use", "imap", 11000, []op{{false, "a"}, {false, "b"}, {false, "c"}, {true, "a"}, {false, "d"}}, []string{"b"}},
		{"down to 90%", "imap", 9500, []op{{false, "a"}, {false, "b"}, {false, "c"}, {true, "b"}, {true, "a"}, {false, "d"}}, []string{"c", "b"}},
		{"pop3 never", "pop3", 5000, []op{{false, "a"}, {false, "b"}, {false, "c"}, {false, "d"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := memStore(t, tc.protocol, tc.max)
			a := s.Wrap(nil)
			for _, o := range tc.ops {
				if o.read {
					mustBody(t, a, ref("INBOX", o.key))
					continue
				}
				if err := a.Store(ref("INBOX", o.key), body(o.key, 3000)); err != nil {
					t.Fatal(err)
				}
			}
			s.EvictNow()
			var gone []string
			for _, k := range []string{"a", "b", "c", "d"} {
				if !a.Cached(ref("INBOX", k)) {
					gone = append(gone, k)
				}
			}
			if fmt.Sprint(gone) != fmt.Sprint(sortedLike(tc.gone)) {
				t.Errorf("got %v evicted, want %v", gone, sortedLike(tc.gone))
			}
			if got, want := s.CachedBytes(), int64(3000*(4-len(tc.gone))); got != want {
				t.Errorf("got %d bytes cached, want %d", got, want)
			}
		})
	}
}

func sortedLike(keys []string) []string {
	var out []string
	for _, k := range []string{"a", "b", "c", "d"} {
		for _, g := range keys {
			if g == k {
				out = append(out, k)
			}
		}
	}
	return out
}

// TestEvictionInBackground: a write that crosses the bound starts an
// eviction without being asked.
func TestEvictionInBackground(t *testing.T) {
	s := memStore(t, "imap", 10000)
	a := s.Wrap(nil)
	for _, k := range []string{"a", "b", "c", "d"} {
		if err := a.Store(ref("INBOX", k), body(k, 3000)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for a.Cached(ref("INBOX", "a")) {
		if time.Now().After(deadline) {
			t.Fatalf("got a still cached after 10 s, %d bytes; want it evicted", s.CachedBytes())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := s.CachedBytes(); got > 9000 {
		t.Errorf("got %d bytes cached, want at most 9000", got)
	}
}

// TestPersistence: what was written is there after a reopen, access times
// included; the directory is private.
func TestPersistence(t *testing.T) {
	msgs, want := mailbox()
	srv := startServer(t, msgs)
	dir := filepath.Join(t.TempDir(), "mailfs", "acct")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := cache.Options{Dir: dir, Account: "acct", Protocol: "imap", Logger: testLogger(t)}

	s, err := cache.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	a := s.Wrap(dial(t, srv, 2))
	if _, err := a.Folders(context.Background()); err != nil {
		t.Fatal(err)
	}
	lists := map[string]*remote.Listing{}
	for _, w := range want {
		lists[w.Folder] = mustList(t, a, w.Folder)
		for _, r := range refsOf(w.Folder, lists[w.Folder]) {
			mustBody(t, a, r)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o700 {
		t.Errorf("directory mode: got %o, want 700", got)
	}

	s = open(t, opts)
	off := s.Wrap(nil)
	folders, err := off.Folders(context.Background())
	if err != nil || len(folders) < len(want) {
		t.Errorf("folders after reopen: got %v, %v", folders, err)
	}
	for _, w := range want {
		l := mustList(t, off, w.Folder)
		if err := sameListing(l, lists[w.Folder]); err != nil {
			t.Errorf("%s after reopen: %v", w.Folder, err)
		}
		for i, r := range refsOf(w.Folder, l) {
			if got := mustBody(t, off, r); !bytes.Equal(got, w.Messages[i]) {
				t.Errorf("%s #%d after reopen: body differs", w.Folder, i)
			}
		}
	}

	// Access times survive a reopen: a was read last, so b goes first.
	dir2 := t.TempDir()
	opts2 := cache.Options{Dir: dir2, Account: "acct", Protocol: "imap", MaxSize: 11000, Logger: testLogger(t)}
	s2, err := cache.Open(opts2)
	if err != nil {
		t.Fatal(err)
	}
	a2 := s2.Wrap(nil)
	for _, k := range []string{"a", "b", "c"} {
		if err := a2.Store(ref("INBOX", k), body(k, 3000)); err != nil {
			t.Fatal(err)
		}
	}
	mustBody(t, a2, ref("INBOX", "a"))
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	s2 = open(t, opts2)
	a2 = s2.Wrap(nil)
	if err := a2.Store(ref("INBOX", "d"), body("d", 3000)); err != nil {
		t.Fatal(err)
	}
	s2.EvictNow()
	for k, want := range map[string]bool{"a": true, "b": false, "c": true, "d": true} {
		if got := a2.Cached(ref("INBOX", k)); got != want {
			t.Errorf("after reopen and eviction, %s: got cached %v, want %v", k, got, want)
		}
	}
}

func sameListing(got, want *remote.Listing) error {
	if got.UIDValidity != want.UIDValidity || len(got.Messages) != len(want.Messages) {
		return fmt.Errorf("got UIDVALIDITY %d and %d messages, want %d and %d", got.UIDValidity, len(got.Messages), want.UIDValidity, len(want.Messages))
	}
	for i, g := range got.Messages {
		w := want.Messages[i]
		if g.UID != w.UID || g.Key != w.Key || g.Size != w.Size || !g.Date.Equal(w.Date) || fmt.Sprint(g.Flags) != fmt.Sprint(w.Flags) {
			return fmt.Errorf("message %d: got %+v, want %+v", i, g, w)
		}
	}
	return nil
}

// TestInUse: a second Open of a directory in use fails clearly.
func TestInUse(t *testing.T) {
	dir := t.TempDir()
	opts := cache.Options{Dir: dir, Account: "acct", Protocol: "imap"}
	s, err := cache.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cache.Open(opts)
	if !errors.Is(err, cache.ErrInUse) || !strings.Contains(fmt.Sprint(err), "in use by another mount") || !strings.Contains(fmt.Sprint(err), dir) {
		t.Errorf("second open: got %v, want ErrInUse naming %s", err, dir)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = cache.Open(opts)
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	s.Close()
}

// TestEncryption: an encrypted cache holds no plaintext and opens with its
// key only.
func TestEncryption(t *testing.T) {
	const marker = "plaintext-marker-4d1c6e"
	secret := body("secret", 20000)
	copy(secret[len(secret)-100:], marker)
	key := bytes.Repeat([]byte{7}, 32)
	other := bytes.Repeat([]byte{8}, 32)

	write := func(t *testing.T, key []byte) string {
		dir := t.TempDir()
		s, err := cache.Open(cache.Options{Dir: dir, Account: "acct", Protocol: "imap", EncryptionKey: key})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Wrap(nil).Store(ref("INBOX", "1"), secret); err != nil {
			t.Fatal(err)
		}
		if err := s.Wrap(nil).Sync(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	plaintext := func(t *testing.T, dir string) []string {
		var hits []string
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if bytes.Contains(b, []byte(marker)) {
				hits = append(hits, filepath.Base(p))
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return hits
	}

	// Without a key the marker is on disk: the search works.
	if hits := plaintext(t, write(t, nil)); len(hits) == 0 {
		t.Fatalf("unencrypted cache: marker not found on disk; the check below would prove nothing")
	}
	dir := write(t, key)
	if hits := plaintext(t, dir); len(hits) > 0 {
		t.Errorf("encrypted cache: got the plaintext marker in %v", hits)
	}
	for _, tc := range []struct {
		name string
		key  []byte
		want error
	}{
		{"no key", nil, cache.ErrEncryptionKey},
		{"other key", other, cache.ErrEncryptionKey},
		{"short key", key[:10], errors.New("want 16, 24 or 32")},
		{"the key", key, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := cache.Open(cache.Options{Dir: dir, Account: "acct", Protocol: "imap", EncryptionKey: tc.key})
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("got %v, want success", err)
			case tc.want == nil:
				defer s.Close()
				if got := mustBody(t, s.Wrap(nil), ref("INBOX", "1")); !bytes.Equal(got, secret) {
					t.Errorf("body differs after reopening with the key")
				}
			case err == nil:
				s.Close()
				t.Fatalf("got success, want %v", tc.want)
			case !errors.Is(err, tc.want) && !strings.Contains(err.Error(), tc.want.Error()):
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// TestOffline: without a server the cache shows what it can read, and
// says at once that the rest is unavailable.
func TestOffline(t *testing.T) {
	msgs, _ := mailbox()
	srv := startServer(t, msgs)
	s := memStore(t, "imap", 0)
	on := s.Wrap(dial(t, srv, 2))
	if _, err := on.Folders(context.Background()); err != nil {
		t.Fatal(err)
	}
	l := mustList(t, on, "INBOX")
	refs := refsOf("INBOX", l)
	if len(refs) < 3 {
		t.Fatalf("INBOX: got %d messages, want at least 3", len(refs))
	}
	mustBody(t, on, refs[0])
	mustBody(t, on, refs[2])

	for _, tc := range []struct {
		name  string
		inner remote.Account
		want  []string
	}{
		// Offline shows what can be read; with the server down, every
		// message stays listed (the uncached ones fail to read).
		{"offline", nil, []string{refs[0].Key, refs[2].Key}},
		{"server down", down{}, refKeys(refs)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			a := s.Wrap(tc.inner)
			got := mustList(t, a, "INBOX")
			if fmt.Sprint(keysOf(got)) != fmt.Sprint(tc.want) {
				t.Errorf("listing: got %v, want %v", keysOf(got), tc.want)
			}
			if _, err := a.Folders(ctx); err != nil {
				t.Errorf("folders: got %v, want the cached list", err)
			}
			start := time.Now()
			for _, f := range []func() error{
				func() error { _, err := a.Body(ctx, refs[1]); return err },
				func() error { _, err := a.Header(ctx, refs[1]); return err },
				func() error { _, err := a.BodyRange(ctx, refs[1], 0, 10); return err },
				func() error { return a.Bodies(ctx, refs, func(remote.Ref, []byte) {}) },
				func() error { return a.Delete(ctx, refs[:1]) },
			} {
				if err := f(); !errors.Is(err, remote.ErrUnavailable) {
					t.Errorf("uncached: got %v, want ErrUnavailable", err)
				}
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("failing took %v, want no waiting", d)
			}
			if _, err := a.List(ctx, "Never listed"); !errors.Is(err, remote.ErrUnavailable) && !errors.Is(err, remote.ErrNotFound) {
				t.Errorf("unlisted folder: got %v, want ErrUnavailable or ErrNotFound", err)
			}
			if !a.Cached(refs[0]) {
				t.Errorf("Delete failed yet dropped a cached body")
			}
		})
	}
}

// TestConcurrency: every method from many goroutines at once, with an
// eviction bound small enough to evict all the time.
func TestConcurrency(t *testing.T) {
	msgs, want := mailbox()
	srv := startServer(t, msgs)
	var total int64
	for _, m := range msgs {
		total += int64(len(m.Raw))
	}
	s, err := cache.OpenChunked(cache.Options{InMemory: true, Account: "t", Protocol: "imap", MaxSize: total / 3, Logger: testLogger(t)}, 700)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := s.Wrap(dial(t, srv, 4))
	ctx := context.Background()
	raw := map[remote.Ref][]byte{}
	var refs []remote.Ref
	for _, w := range want {
		for i, r := range refsOf(w.Folder, mustList(t, a, w.Folder)) {
			raw[r] = w.Messages[i]
			refs = append(refs, r)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	fail := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	for g := range 8 {
		wg.Go(func() {
			for i := range 40 {
				r := refs[(g*7+i)%len(refs)]
				switch (g + i) % 6 {
				case 0:
					if b, err := a.Body(ctx, r); err != nil || !bytes.Equal(b, raw[r]) {
						fail(fmt.Errorf("body %s/%s: %v", r.Folder, r.Key, err))
					}
				case 1:
					if _, err := a.List(ctx, r.Folder); err != nil {
						fail(err)
					}
				case 2:
					var batch []remote.Ref
					for _, q := range refs {
						if q.Folder == r.Folder {
							batch = append(batch, q)
						}
					}
					err := a.Bodies(ctx, batch, func(q remote.Ref, b []byte) {
						if !bytes.Equal(b, raw[q]) {
							fail(fmt.Errorf("bulk body %s/%s differs", q.Folder, q.Key))
						}
					})
					if err != nil {
						fail(err)
					}
				case 3:
					n := int64(len(raw[r]))
					if b, err := a.BodyRange(ctx, r, n/3, 1000); err != nil || !bytes.Equal(b, raw[r][n/3:min(n, n/3+1000)]) {
						fail(fmt.Errorf("range %s/%s: %v", r.Folder, r.Key, err))
					}
				case 4:
					var got []byte
					if _, err := a.StreamRange(ctx, r, 0, 1<<30, 333, func(b []byte) { got = append(got, b...) }); err != nil || !bytes.Equal(got, raw[r]) {
						fail(fmt.Errorf("stream %s/%s: %v", r.Folder, r.Key, err))
					}
				case 5:
					if _, err := a.Header(ctx, r); err != nil {
						fail(err)
					}
					s.FlushAtimes()
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s.EvictNow()
	if got := s.CachedBytes(); got > total/3 {
		t.Errorf("got %d bytes cached, want at most %d", got, total/3)
	}
}

// TestSchema: a cache of another schema version is refused.
func TestSchema(t *testing.T) {
	dir := t.TempDir()
	s, err := cache.Open(cache.Options{Dir: dir, Account: "a", Protocol: "imap"})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("mailfs-schema"), []byte("99")) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = cache.Open(cache.Options{Dir: dir, Account: "a", Protocol: "imap"})
	if !errors.Is(err, cache.ErrSchema) || !strings.Contains(err.Error(), `"99"`) {
		t.Errorf("got %v, want ErrSchema naming version 99", err)
	}
}

func TestDefaultDir(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, tc := range []struct {
		xdg, account, want string
		err                bool
	}{
		{"/x/cache", "work", "/x/cache/mailfs/work", false},
		{"", "work", filepath.Join(home, ".cache/mailfs/work"), false},
		{"relative/cache", "work", filepath.Join(home, ".cache/mailfs/work"), false},
		{"/x", "", "", true},
		{"/x", "..", "", true},
		{"/x", "a/b", "", true},
	} {
		t.Setenv("XDG_CACHE_HOME", tc.xdg)
		got, err := cache.DefaultDir(tc.account)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("XDG_CACHE_HOME=%q account %q: got %q, %v; want %q, error %v", tc.xdg, tc.account, got, err, tc.want, tc.err)
		}
	}
}

func TestBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts cache.Options
		want string
	}{
		{"no account", cache.Options{InMemory: true, Protocol: "imap"}, "no account"},
		{"bad protocol", cache.Options{InMemory: true, Account: "a", Protocol: "smtp"}, "want imap or pop3"},
		{"no dir", cache.Options{Account: "a", Protocol: "imap"}, "no directory"},
		{"dir and memory", cache.Options{Dir: "/x", InMemory: true, Account: "a", Protocol: "imap"}, "choose one"},
		{"negative size", cache.Options{InMemory: true, Account: "a", Protocol: "imap", MaxSize: -1}, "negative"},
		{"dir is a file", cache.Options{Dir: "store_test.go", Account: "a", Protocol: "imap"}, "not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := cache.Open(tc.opts)
			if err == nil {
				s.Close()
			}
			if err == nil || !strings.HasPrefix(err.Error(), "cache: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// TestBadgerLog: badger's log reaches slog, its chatter at Debug; a GC
// with nothing to do is no warning.
func TestBadgerLog(t *testing.T) {
	var h recorder
	s, err := cache.Open(cache.Options{Dir: t.TempDir(), Account: "a", Protocol: "imap", Logger: slog.New(&h)})
	if err != nil {
		t.Fatal(err)
	}
	s.RunGC()
	s.Close()
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.recs {
		if r.Level >= slog.LevelWarn {
			t.Errorf("got %v %q, want no warnings from an open, a value-log GC and a close", r.Level, r.Message)
		}
		if strings.HasPrefix(r.Message, "cache: badger: ") {
			n++
			if r.Level > slog.LevelDebug {
				t.Errorf("got %v %q, want badger's routine messages at Debug", r.Level, r.Message)
			}
		}
	}
	if n == 0 {
		t.Errorf("got no badger messages in slog, want its start-up messages")
	}
}

type recorder struct {
	mu   sync.Mutex // protects recs
	recs []slog.Record
}

func (h *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *recorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r)
	return nil
}
func (h *recorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recorder) WithGroup(string) slog.Handler      { return h }

func refKeys(refs []remote.Ref) []string {
	var keys []string
	for _, r := range refs {
		keys = append(keys, r.Key)
	}
	return keys
}

// TestOpenAfterKilledMidCreate: a process killed right after creating a
// memtable file leaves it empty; the cache must still open, with its data.
func TestOpenAfterKilledMidCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "c")
	s, err := cache.Open(cache.Options{Dir: dir, Account: "a", Protocol: "pop3"})
	if err != nil {
		t.Fatal(err)
	}
	a := s.Wrap(nil)
	ref := remote.Ref{Folder: "INBOX", Key: "u1"}
	if err := a.Store(ref, []byte("Subject: x\r\n\r\nkept\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// What kill -9 between create and first write leaves behind.
	for _, name := range []string{"00099.mem", "000099.vlog"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err = cache.Open(cache.Options{Dir: dir, Account: "a", Protocol: "pop3"})
	if err != nil {
		t.Fatalf("open after an empty memtable file: %v", err)
	}
	defer s.Close()
	if !s.Wrap(nil).Cached(ref) {
		t.Errorf("the cached body is gone")
	}
}
