package fs

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"

	"mailfs/internal/mailgen"
	"mailfs/internal/memserver"
	"mailfs/internal/testenv"
	"mailfs/remote"
	"mailfs/remote/imap"
)

// counting wraps a real account and counts what reaches it: the tests'
// measure of laziness. It can also lie about sizes, as broken servers do.
type counting struct {
	inner remote.Account

	lists, headers, bodies, ranges, bulks atomic.Int64
	bulkMsgs, rangeBytes                  atomic.Int64
	changes                               atomic.Int64 // calls that change mail

	mu      sync.Mutex
	sizeFix map[string]int64 // key → size to announce instead
}

func (c *counting) Folders(ctx context.Context) ([]remote.Folder, error) {
	return c.inner.Folders(ctx)
}

func (c *counting) List(ctx context.Context, folder string) (*remote.Listing, error) {
	c.lists.Add(1)
	l, err := c.inner.List(ctx, folder)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	for i, m := range l.Messages {
		if s, ok := c.sizeFix[folder+"/"+m.Key]; ok {
			l.Messages[i].Size = s
		}
	}
	c.mu.Unlock()
	return l, nil
}

func (c *counting) lie(folder, key string, size int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sizeFix == nil {
		c.sizeFix = map[string]int64{}
	}
	c.sizeFix[folder+"/"+key] = size
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
	b, err := c.inner.(remote.RangeReader).BodyRange(ctx, ref, off, n)
	c.rangeBytes.Add(int64(len(b)))
	return b, err
}

func (c *counting) Bodies(ctx context.Context, refs []remote.Ref, fn func(remote.Ref, []byte)) error {
	c.bulks.Add(1)
	c.bulkMsgs.Add(int64(len(refs)))
	return c.inner.(remote.BulkFetcher).Bodies(ctx, refs, fn)
}

func (c *counting) Close() error { return c.inner.Close() }

// The abilities to change mail, passed on (and counted) when the inner
// account has them.

func (c *counting) Delete(ctx context.Context, refs []remote.Ref) error {
	c.changes.Add(1)
	d, ok := c.inner.(remote.Deleter)
	if !ok {
		return remote.ErrUnsupported
	}
	return d.Delete(ctx, refs)
}

func (c *counting) Move(ctx context.Context, refs []remote.Ref, dest string) error {
	c.changes.Add(1)
	m, ok := c.inner.(remote.Mover)
	if !ok {
		return remote.ErrUnsupported
	}
	return m.Move(ctx, refs, dest)
}

func (c *counting) Append(ctx context.Context, folder string, body io.ReaderAt, size int64, date time.Time, flags []string) (uint32, uint32, error) {
	c.changes.Add(1)
	a, ok := c.inner.(remote.Appender)
	if !ok {
		return 0, 0, remote.ErrUnsupported
	}
	return a.Append(ctx, folder, body, size, date, flags)
}

func (c *counting) SetFlags(ctx context.Context, ref remote.Ref, flags []string) error {
	c.changes.Add(1)
	fs, ok := c.inner.(remote.FlagSetter)
	if !ok {
		return remote.ErrUnsupported
	}
	return fs.SetFlags(ctx, ref, flags)
}

func (c *counting) CreateFolder(ctx context.Context, name string) error {
	c.changes.Add(1)
	fe, ok := c.inner.(remote.FolderEditor)
	if !ok {
		return remote.ErrUnsupported
	}
	return fe.CreateFolder(ctx, name)
}

func (c *counting) DeleteFolder(ctx context.Context, name string) error {
	c.changes.Add(1)
	fe, ok := c.inner.(remote.FolderEditor)
	if !ok {
		return remote.ErrUnsupported
	}
	return fe.DeleteFolder(ctx, name)
}

func (c *counting) RenameFolder(ctx context.Context, oldName, newName string) error {
	c.changes.Add(1)
	fe, ok := c.inner.(remote.FolderEditor)
	if !ok {
		return remote.ErrUnsupported
	}
	return fe.RenameFolder(ctx, oldName, newName)
}

func (c *counting) fetches() int64 {
	return c.headers.Load() + c.bodies.Load() + c.ranges.Load() + c.bulks.Load()
}

// startMem serves msgs from an in-process IMAP server and returns a counted
// account logged in to it.
func startMem(t testing.TB, msgs []mailgen.Message) (*memserver.Server, *counting) {
	t.Helper()
	var mm []memserver.Message
	for _, m := range msgs {
		mm = append(mm, memserver.Message{Folder: m.Folder, Date: m.Date, Flags: m.Flags, Raw: m.Raw})
	}
	srv, err := memserver.Start(mm)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	acct, err := imap.Dial(ctx, imap.Config{Addr: srv.Addr, TLS: imap.TLSNone, Username: srv.Username, Password: srv.Password, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c := &counting{inner: acct}
	t.Cleanup(func() { c.Close() })
	return srv, c
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}

// mount mounts acct in a temporary directory, in this process: tests use
// only syscalls on it, never exec a program onto it.
func mount(t testing.TB, acct remote.Account, opts Options) (string, *FS) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		testenv.SkipOrFail(t, "no /dev/fuse: %v", err)
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	dir := t.TempDir()
	f := New(acct, opts)
	mopts := f.MountOptions("test")
	server, err := fusefs.Mount(dir, f.Root(), mopts)
	if err != nil {
		if testenv.SkipAllowed() {
			t.Skipf("cannot mount: %v", err)
		}
		t.Fatalf("mount: %v", err)
	}
	t.Cleanup(func() {
		var err error
		for i := 0; i < 50; i++ {
			if err = server.Unmount(); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Errorf("unmount: %v", err)
		}
		server.Wait()
		f.Close()
	})
	return dir, f
}

func isErrno(err error, want error) bool { return errors.Is(err, want) }
