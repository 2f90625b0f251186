package fs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"mailfs/cache"
	"mailfs/internal/mailgen"
	"mailfs/internal/pop3server"
	"mailfs/remote"
	"mailfs/remote/pop3"
)

// brokenStream fails its first streamed range halfway, as a connection
// that drops mid-literal does.
type brokenStream struct {
	*counting
	mu     sync.Mutex
	failed bool
}

func (b *brokenStream) StreamRange(ctx context.Context, ref remote.Ref, off, n, piece int64, fn func([]byte)) (int64, error) {
	b.mu.Lock()
	fail := !b.failed
	b.failed = true
	b.mu.Unlock()
	data, err := b.inner.(remote.RangeReader).BodyRange(ctx, ref, off, n)
	if err != nil {
		return 0, err
	}
	if fail {
		half := min(int64(len(data)), piece+piece/2)
		fn(data[:piece])
		fn(data[piece:half])
		return half, errors.New("connection reset mid-literal")
	}
	var sent int64
	for len(data) > 0 {
		k := min(piece, int64(len(data)))
		fn(data[:k])
		data = data[k:]
		sent += k
	}
	return sent, nil
}

// TestBrokenStreamNeverTruncates: a streamed range that fails halfway must
// not leave a short chunk behind that shrinks the message for good.
func TestBrokenStreamNeverTruncates(t *testing.T) {
	large := bigMessage(400 << 10)
	_, acct := startMem(t, []mailgen.Message{{Folder: "INBOX", Date: time.Unix(1700000000, 0), Raw: large}})
	b := &brokenStream{counting: acct}
	dir, _ := mount(t, b, Options{LargeBody: 64 << 10, ChunkSize: 16 << 10})
	p := filepath.Join(dir, "INBOX", "1.eml")
	if got, err := os.ReadFile(p); err == nil && !bytes.Equal(got, large) {
		t.Errorf("first read: %d bytes without an error, want the %d of the message or an error", len(got), len(large))
	}
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, large) {
		t.Fatalf("second read: %d bytes, %v; want the %d of the message", len(got), err, len(large))
	}
	if st, err := os.Stat(p); err != nil || st.Size() != int64(len(large)) {
		t.Fatalf("stat after a broken stream: %v, %v; want %d", st.Size(), err, len(large))
	}
}

// slowAppend holds APPEND until released.
type slowAppend struct {
	*counting
	release chan struct{}
	started chan struct{}
}

func (s *slowAppend) Append(ctx context.Context, folder string, body io.ReaderAt, size int64, date time.Time, flags []string) (uint32, uint32, error) {
	close(s.started)
	<-s.release
	return s.counting.Append(ctx, folder, body, size, date, flags)
}

// TestRmDuringAppend: rm of a file whose close is uploading it neither
// waits for the upload nor deadlocks with it.
func TestRmDuringAppend(t *testing.T) {
	_, acct := startMem(t, mailgen.Fixtures())
	s := &slowAppend{counting: acct, release: make(chan struct{}), started: make(chan struct{})}
	dir, _ := mount(t, s, Options{})
	p := filepath.Join(dir, "INBOX", "new.eml")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("Subject: new\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- f.Close() }()
	<-s.started
	removed := make(chan error, 1)
	go func() { removed <- os.Remove(p) }()
	select {
	case err := <-removed:
		if err != nil {
			t.Errorf("rm during the upload: %v", err)
		}
	case <-time.After(5 * time.Second):
		close(s.release)
		t.Fatal("rm waited for the upload")
	}
	if _, err := os.ReadDir(filepath.Join(dir, "INBOX")); err != nil {
		t.Errorf("readdir during the upload: %v", err)
	}
	close(s.release)
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("close never returned")
	}
}

// TestPOP3RefusesWhatItCannot: a POP3 account (behind its cache, as
// mounted) cannot append or make folders: EPERM at once, not at close.
func TestPOP3RefusesWhatItCannot(t *testing.T) {
	srv, err := pop3server.Start([]pop3server.Message{{UIDL: "a1", Raw: []byte("Subject: x\r\n\r\ny\r\n")}}, pop3server.Options{Username: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	inner, err := pop3.Dial(context.Background(), pop3.Config{Addr: srv.Addr, TLS: "none", Username: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	store, err := cache.Open(cache.Options{InMemory: true, Account: "p", Protocol: "pop3"})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	dir, _ := mount(t, store.Wrap(inner), Options{})
	if _, err := os.Create(filepath.Join(dir, "INBOX", "new.eml")); !errors.Is(err, syscall.EPERM) {
		t.Errorf("create in a POP3 INBOX: got %v, want EPERM", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "INBOX", "sub"), 0o755); !errors.Is(err, syscall.EPERM) {
		t.Errorf("mkdir in a POP3 account: got %v, want EPERM", err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "INBOX", "a1.eml")); err != nil || string(got) != "Subject: x\r\n\r\ny\r\n" {
		t.Errorf("read: %q, %v", got, err)
	}
}
