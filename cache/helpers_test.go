package cache_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mailfs/cache"
	"mailfs/internal/mailgen"
	"mailfs/internal/memserver"
	"mailfs/remote"
	"mailfs/remote/imap"
	"mailfs/remote/remotetest"
)

// mailbox is the fixtures spread over three folders (one with a UTF-8
// name), plus the largest demo message under 1 MB, which spans several
// chunks.
func mailbox() ([]memserver.Message, []remotetest.Want) {
	var msgs []memserver.Message
	want := map[string][][]byte{}
	add := func(folder string, m mailgen.Message) {
		msgs = append(msgs, memserver.Message{Folder: folder, Date: m.Date, Flags: m.Flags, Raw: m.Raw})
		want[folder] = append(want[folder], m.Raw)
	}
	folders := []string{"INBOX", "Lists/golang", "Entwürfe"}
	for i, m := range mailgen.Fixtures() {
		add(folders[i%len(folders)], m)
	}
	var big mailgen.Message
	for _, m := range mailgen.Demo() {
		if len(m.Raw) < 1<<20 && len(m.Raw) > len(big.Raw) {
			big = m
		}
	}
	add("Archive/2025", big)
	var out []remotetest.Want
	for _, f := range append(folders, "Archive/2025") {
		out = append(out, remotetest.Want{Folder: f, Messages: want[f]})
	}
	return msgs, out
}

// startServer serves msgs from an in-process IMAP server.
func startServer(t testing.TB, msgs []memserver.Message) *memserver.Server {
	t.Helper()
	srv, err := memserver.Start(msgs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// dial logs in to srv.
func dial(t testing.TB, srv *memserver.Server, conns int) *imap.Account {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := imap.Dial(ctx, imap.Config{Addr: srv.Addr, TLS: imap.TLSNone, Username: srv.Username, Password: srv.Password,
		Connections: conns, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// open opens a cache that the test closes at its end.
func open(t testing.TB, opts cache.Options) *cache.Store {
	t.Helper()
	if opts.Account == "" {
		opts.Account = "test"
	}
	if opts.Protocol == "" {
		opts.Protocol = "imap"
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	s, err := cache.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func memStore(t testing.TB, protocol string, maxSize int64) *cache.Store {
	return open(t, cache.Options{InMemory: true, Protocol: protocol, MaxSize: maxSize})
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}

// counting wraps an account and counts the calls that reach it: the
// tests' measure of what the cache saves.
type counting struct {
	inner remote.Account

	folders, lists, headers, bodies, ranges, streams, bulks, bulkMsgs, deletes atomic.Int64
}

func (c *counting) Folders(ctx context.Context) ([]remote.Folder, error) {
	c.folders.Add(1)
	return c.inner.Folders(ctx)
}

func (c *counting) List(ctx context.Context, folder string) (*remote.Listing, error) {
	c.lists.Add(1)
	return c.inner.List(ctx, folder)
}

func (c *counting) Header(ctx context.Context, ref remote.Ref) ([]byte, error) {
	c.headers.Add(1)
	return c.inner.Header(ctx, ref)
}

func (c *counting) Body(ctx context.Context, ref remote.Ref) ([]byte, error) {
	c.bodies.Add(1)
	return c.inner.Body(ctx, ref)
}

func (c *counting) BodyRange(ctx context.Context, ref remote.Ref, off, n int64) ([]byte, error) {
	c.ranges.Add(1)
	return c.inner.(remote.RangeReader).BodyRange(ctx, ref, off, n)
}

func (c *counting) StreamRange(ctx context.Context, ref remote.Ref, off, n, piece int64, fn func([]byte)) (int64, error) {
	c.streams.Add(1)
	return c.inner.(remote.RangeStreamer).StreamRange(ctx, ref, off, n, piece, fn)
}

func (c *counting) Bodies(ctx context.Context, refs []remote.Ref, fn func(remote.Ref, []byte)) error {
	c.bulks.Add(1)
	c.bulkMsgs.Add(int64(len(refs)))
	return c.inner.(remote.BulkFetcher).Bodies(ctx, refs, fn)
}

func (c *counting) Delete(ctx context.Context, refs []remote.Ref) error {
	c.deletes.Add(1)
	return c.inner.(remote.Deleter).Delete(ctx, refs)
}

func (c *counting) Close() error { return c.inner.Close() }

// fetches counts the requests for message content.
func (c *counting) fetches() int64 {
	return c.headers.Load() + c.bodies.Load() + c.ranges.Load() + c.streams.Load() + c.bulks.Load()
}

// maildrop behaves like a POP3 account: one folder, INBOX, UIDVALIDITY 0,
// messages named by UIDL, no dates. Messages can vanish behind the
// cache's back (another client with delete-after-download). With numeric
// keys it also stands in for an IMAP folder (UID = key).
type maildrop struct {
	mu    sync.Mutex // protects order, msgs
	order []string
	msgs  map[string][]byte

	bodies atomic.Int64
}

func newMaildrop(msgs ...[2]string) *maildrop {
	d := &maildrop{msgs: map[string][]byte{}}
	for _, m := range msgs {
		d.add(m[0], []byte(m[1]))
	}
	return d
}

func (d *maildrop) add(uidl string, raw []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.order = append(d.order, uidl)
	d.msgs[uidl] = raw
}

// remove deletes a message behind the cache's back.
func (d *maildrop) remove(uidl string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.order = slices.DeleteFunc(d.order, func(k string) bool { return k == uidl })
	delete(d.msgs, uidl)
}

func (d *maildrop) Folders(context.Context) ([]remote.Folder, error) {
	return []remote.Folder{{Name: "INBOX", Path: []string{"INBOX"}}}, nil
}

func (d *maildrop) List(_ context.Context, folder string) (*remote.Listing, error) {
	if folder != "INBOX" {
		return nil, fmt.Errorf("maildrop: %q: %w", folder, remote.ErrNotFound)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	l := &remote.Listing{}
	for _, k := range d.order {
		uid, _ := strconv.ParseUint(k, 10, 32)
		l.Messages = append(l.Messages, remote.MessageInfo{UID: uint32(uid), Key: k, Size: int64(len(d.msgs[k]))})
	}
	return l, nil
}

func (d *maildrop) get(ref remote.Ref) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, ok := d.msgs[ref.Key]
	if !ok || ref.Folder != "INBOX" {
		return nil, fmt.Errorf("maildrop: %s: %w", ref.Key, remote.ErrNotFound)
	}
	return b, nil
}

func (d *maildrop) Header(_ context.Context, ref remote.Ref) ([]byte, error) {
	b, err := d.get(ref)
	if err != nil {
		return nil, err
	}
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
		return b[:i+2], nil
	}
	return b, nil
}

func (d *maildrop) Body(_ context.Context, ref remote.Ref) ([]byte, error) {
	d.bodies.Add(1)
	return d.get(ref)
}

func (d *maildrop) Delete(_ context.Context, refs []remote.Ref) error {
	for _, r := range refs {
		d.remove(r.Key)
	}
	return nil
}

func (d *maildrop) Close() error { return nil }

// down is an account whose server cannot be reached.
type down struct{}

var errDown = fmt.Errorf("test: connection refused: %w", remote.ErrUnavailable)

func (down) Folders(context.Context) ([]remote.Folder, error)      { return nil, errDown }
func (down) List(context.Context, string) (*remote.Listing, error) { return nil, errDown }
func (down) Header(context.Context, remote.Ref) ([]byte, error)    { return nil, errDown }
func (down) Body(context.Context, remote.Ref) ([]byte, error)      { return nil, errDown }
func (down) Close() error                                          { return nil }
func (down) Delete(context.Context, []remote.Ref) error            { return errDown }

// refsOf returns the refs of a listing's messages.
func refsOf(folder string, l *remote.Listing) []remote.Ref {
	var refs []remote.Ref
	for _, m := range l.Messages {
		refs = append(refs, remote.Ref{Folder: folder, UIDValidity: l.UIDValidity, UID: m.UID, Key: m.Key})
	}
	return refs
}

func keysOf(l *remote.Listing) []string {
	var keys []string
	for _, m := range l.Messages {
		keys = append(keys, m.Key)
	}
	return keys
}

// mustList lists folder or fails the test.
func mustList(t testing.TB, a remote.Account, folder string) *remote.Listing {
	t.Helper()
	l, err := a.List(context.Background(), folder)
	if err != nil {
		t.Fatalf("list %s: %v", folder, err)
	}
	return l
}

// mustBody fetches ref or fails the test.
func mustBody(t testing.TB, a remote.Account, ref remote.Ref) []byte {
	t.Helper()
	b, err := a.Body(context.Background(), ref)
	if err != nil {
		t.Fatalf("body %s/%s: %v", ref.Folder, ref.Key, err)
	}
	return b
}

// message builds a small message; date "" leaves out the Date header.
func message(subject, date, text string) string {
	var b strings.Builder
	b.WriteString("From: a@example.com\r\nTo: b@example.com\r\nSubject: " + subject + "\r\n")
	if date != "" {
		b.WriteString("Date: " + date + "\r\n")
	}
	b.WriteString("\r\n" + text + "\r\n")
	return b.String()
}

// isErr reports whether err wraps want (want nil: err is nil).
func isErr(err, want error) bool {
	if want == nil {
		return err == nil
	}
	return errors.Is(err, want)
}
