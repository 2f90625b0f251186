package pop3_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"mailfs/internal/pop3server"
	"mailfs/remote"
	"mailfs/remote/pop3"
)

// heapWatch samples the Go heap in use while a test runs and cancels the
// test's context once it has grown by more than limit: a client that
// buffers an endless answer fails the test at once instead of running the
// machine out of memory. The garbage collector runs at 1% for its
// duration, so that the heap in use follows what is live.
type heapWatch struct {
	base, peak uint64
	stop, done chan struct{}
}

func watchHeap(t *testing.T, limit uint64, cancel func()) *heapWatch {
	t.Helper()
	old := debug.SetGCPercent(1)
	t.Cleanup(func() { debug.SetGCPercent(old) })
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	w := &heapWatch{base: ms.HeapInuse, peak: ms.HeapInuse, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			w.peak = max(w.peak, ms.HeapInuse)
			if w.peak-w.base > limit {
				cancel()
			}
		}
	}()
	return w
}

// growth stops the watch and returns the largest growth of the heap seen.
func (w *heapWatch) growth() uint64 {
	close(w.stop)
	<-w.done
	return w.peak - w.base
}

const mib = 1 << 20

// TestEndlessRETR: a RETR that never ends is cut off once it passes twice
// the message's LIST size plus 1 MiB, with a protocol error, in bounded
// memory, and its session is not reused.
func TestEndlessRETR(t *testing.T) {
	raw := []byte("Subject: endless\r\n\r\n" + strings.Repeat("line of the message\r\n", 50000)) // ~1 MiB
	s := startServer(t, []pop3server.Message{{UIDL: "endless", Raw: raw}}, pop3server.Options{EndlessRETR: true})
	a := dial(t, serverConfig(s))
	limit := int64(2*len(raw) + mib)

	for _, streamed := range []bool{false, true} {
		t.Run(fmt.Sprintf("streamed=%v", streamed), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			w := watchHeap(t, 64*mib, cancel)
			start := time.Now()
			var err error
			var n int64
			if streamed {
				n, err = a.StreamBody(ctx, inbox("endless"), io.Discard)
			} else {
				var b []byte
				b, err = a.Body(ctx, inbox("endless"))
				n = int64(len(b))
			}
			grew := w.growth()
			t.Logf("failed after %v, %d bytes handed over, heap grew by %.1f MiB: %v", time.Since(start).Round(time.Millisecond), n, float64(grew)/mib, err)
			if !errors.Is(err, remote.ErrProtocol) || !strings.Contains(err.Error(), "LIST size") {
				t.Fatalf("got %v, want ErrProtocol naming the LIST size", err)
			}
			if n > limit {
				t.Errorf("got %d bytes, want at most %d", n, limit)
			}
			if grew > 64*mib {
				t.Errorf("heap grew by %d MiB, want less than 64", grew/mib)
			}
		})
	}
	// The session was closed: the next operation logs in afresh.
	if l, err := a.List(ctxFor(t), "INBOX"); err != nil || len(l.Messages) != 1 {
		t.Errorf("List after the cut RETR: %v, %v", l, err)
	}
}

// TestListSizeBounds: a LIST size that undercounts a little (Dovecot leaves
// out the final CRLF it adds) is fine; one that lies by far stops the
// RETR with a protocol error.
func TestListSizeBounds(t *testing.T) {
	big := []byte("Subject: big\r\n\r\n" + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", 64<<10)) // 4 MiB
	s := startServer(t, []pop3server.Message{
		{UIDL: "slightly", Raw: big},
		{UIDL: "lying", Raw: big},
	}, pop3server.Options{ListSizes: map[string]int{"slightly": len(big) - 100, "lying": 1000}})
	a := dial(t, serverConfig(s))
	ctx := ctxFor(t)
	if b, err := a.Body(ctx, inbox("slightly")); err != nil || !bytes.Equal(b, big) {
		t.Errorf("Body(slightly): %d bytes, %v; want %d bytes", len(b), err, len(big))
	}
	if _, err := a.Body(ctx, inbox("lying")); !errors.Is(err, remote.ErrProtocol) {
		t.Errorf("Body(lying): got %v, want ErrProtocol", err)
	}
	var buf bytes.Buffer
	if n, err := a.StreamBody(ctx, inbox("lying"), &buf); !errors.Is(err, remote.ErrProtocol) || n > 2*1000+mib {
		t.Errorf("StreamBody(lying): %d bytes, %v; want ErrProtocol within %d bytes", n, err, 2*1000+mib)
	}
	if _, err := a.Header(ctx, inbox("lying")); err != nil {
		t.Errorf("Header(lying): %v (TOP sends less than LIST says)", err)
	}
}

// TestStreamBody: StreamBody writes what Body returns; a writer that fails
// ends the fetch with its own error, and the session is not reused.
func TestStreamBody(t *testing.T) {
	msgs, want := mailbox()
	s := startServer(t, msgs, pop3server.Options{})
	a := dial(t, serverConfig(s))
	ctx := ctxFor(t)
	for i, m := range msgs {
		var buf bytes.Buffer
		n, err := a.StreamBody(ctx, inbox(m.UIDL), &buf)
		if err != nil || n != int64(buf.Len()) || !bytes.Equal(buf.Bytes(), want[i]) {
			t.Errorf("%s: got %d bytes (%q), %v; want %q", m.UIDL, n, buf.Bytes(), err, want[i])
		}
	}
	if _, err := a.StreamBody(ctx, inbox("nonexistent"), io.Discard); !errors.Is(err, remote.ErrNotFound) {
		t.Errorf("StreamBody(nonexistent): got %v, want ErrNotFound", err)
	}
	errFull := errors.New("disk full")
	_, err := a.StreamBody(ctx, inbox(msgs[0].UIDL), failingWriter{errFull})
	if !errors.Is(err, errFull) {
		t.Errorf("failing writer: got %v, want its error", err)
	}
	if b, err := a.Body(ctx, inbox(msgs[1].UIDL)); err != nil || !bytes.Equal(b, want[1]) {
		t.Errorf("Body after a failed writer: %q, %v", b, err)
	}
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

// TestUIDLWithSpaces: a UIDL with spaces (which RFC 1939 forbids) is kept
// whole, never cut at the space, so it cannot collide with another
// message's UIDL; UIDLs that cannot name a file are skipped with a warning.
func TestUIDLWithSpaces(t *testing.T) {
	uidls := []string{"abc def", "abc", "abc xyz", " lead", "trail ", "a  b"}
	var msgs []pop3server.Message
	for i, u := range uidls {
		msgs = append(msgs, pop3server.Message{UIDL: u, Raw: fmt.Appendf(nil, "Subject: %d\r\n\r\nbody %d\r\n", i, i)})
	}
	s := startServer(t, msgs, pop3server.Options{LaxUIDL: true})
	var logBuf syncBuffer
	cfg := serverConfig(s)
	cfg.Logger = slog.New(slog.NewTextHandler(&logBuf, nil))
	a := dial(t, cfg)
	ctx := ctxFor(t)
	l, err := a.List(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, m := range l.Messages {
		keys = append(keys, m.Key)
	}
	if !slices.Equal(keys, uidls) {
		t.Fatalf("got keys %q, want %q", keys, uidls)
	}
	for i, u := range uidls {
		if b, err := a.Body(ctx, inbox(u)); err != nil || !bytes.Equal(b, msgs[i].Raw) {
			t.Errorf("Body(%q) = %q, %v; want %q", u, b, err, msgs[i].Raw)
		}
	}
	if strings.Contains(logBuf.String(), "duplicate UIDL") {
		t.Errorf("UIDLs taken for duplicates: %s", logBuf.String())
	}

	// UIDLs that cannot be a file name: skipped, and said so.
	addr := fakeServer(t, "+OK hi", func(c net.Conn, cmd string) bool {
		switch cmd {
		case "UIDL":
			c.Write([]byte("+OK\r\n1 good\r\n2 \r\n3\r\n4 ctl\x01char\r\n5 " + strings.Repeat("u", 300) + "\r\n6 good 2\r\n.\r\n"))
		case "LIST":
			c.Write([]byte("+OK\r\n1 10\r\n2 10\r\n3 10\r\n4 10\r\n5 10\r\n6 10\r\n.\r\n"))
		default:
			c.Write([]byte("+OK\r\n"))
		}
		return true
	})
	logBuf = syncBuffer{}
	cfg = pop3.Config{Addr: addr, Username: "u", Password: "p", Timeout: time.Second, Logger: slog.New(slog.NewTextHandler(&logBuf, nil))}
	a = dial(t, cfg)
	l, err = a.List(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	keys = nil
	for _, m := range l.Messages {
		keys = append(keys, m.Key)
	}
	if want := []string{"good", "good 2"}; !slices.Equal(keys, want) {
		t.Errorf("got keys %q, want %q", keys, want)
	}
	for _, problem := range []string{"UIDL is empty", "control character", "longer than"} {
		if !strings.Contains(logBuf.String(), problem) {
			t.Errorf("no warning saying %q: %s", problem, logBuf.String())
		}
	}
	if n := strings.Count(logBuf.String(), "level=WARN"); n != 4 {
		t.Errorf("%d warnings, want 4 (one per skipped message): %s", n, logBuf.String())
	}
}

// TestListWhileRETR: a listing answers at once while a slow RETR (the
// background download of a large message) holds the only session.
func TestListWhileRETR(t *testing.T) {
	msgs, _ := mailbox()
	s := startServer(t, msgs, pop3server.Options{RETRPause: 3 * time.Second})
	a := dial(t, serverConfig(s))
	ctx := ctxFor(t)
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := a.Body(ctx, inbox(msgs[0].UIDL)); err != nil {
			t.Errorf("Body: %v", err)
		}
	})
	defer wg.Wait()
	time.Sleep(300 * time.Millisecond) // the RETR has started
	start := time.Now()
	l, err := a.List(ctx, "INBOX")
	d := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("List answered in %v while a RETR held the session", d.Round(time.Millisecond))
	if d > time.Second {
		t.Errorf("List took %v behind a slow RETR, want under 1 s", d)
	}
	if len(l.Messages) != len(msgs) {
		t.Errorf("got %d messages, want %d", len(l.Messages), len(msgs))
	}
	for i, m := range l.Messages {
		if m.Key != msgs[i].UIDL || m.Size == 0 {
			t.Errorf("row %d: %+v, want key %q and a size", i, m, msgs[i].UIDL)
		}
	}
}

// TestListWaitsForDelete: a listing never answers from before a deletion.
func TestListWaitsForDelete(t *testing.T) {
	msgs, _ := mailbox()
	s := startServer(t, msgs, pop3server.Options{})
	a := dial(t, serverConfig(s))
	ctx := ctxFor(t)
	if _, err := a.Body(ctx, inbox(msgs[0].UIDL)); err != nil { // a parked session with a view
		t.Fatal(err)
	}
	if err := a.Delete(ctx, []remote.Ref{inbox(msgs[0].UIDL)}); err != nil {
		t.Fatal(err)
	}
	l, err := a.List(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Messages) != len(msgs)-1 || l.Messages[0].Key != msgs[1].UIDL {
		t.Errorf("listing after Delete: %d messages, first %q", len(l.Messages), l.Messages[0].Key)
	}
}
