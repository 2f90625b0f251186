package syncer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"mailfs/cache"
	"mailfs/internal/pop3server"
	"mailfs/internal/syncer"
	"mailfs/remote"
	"mailfs/remote/pop3"
)

const mib = 1 << 20

// largeMessage is a message of about size bytes.
func largeMessage(size int) []byte {
	var b bytes.Buffer
	b.WriteString("From: a@example.com\r\nSubject: large\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\n\r\n")
	line := strings.Repeat("0123456789", 100) + "\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	b.WriteString(".a line that starts with a dot\r\n")
	return b.Bytes()
}

// setup serves msgs from a POP3 server and returns the account seen
// through an on-disk cache, as a mount or mailfs sync has it.
func setup(t *testing.T, msgs []pop3server.Message, opts pop3server.Options) (*cache.Store, *cache.Account) {
	t.Helper()
	srv, err := pop3server.Start(msgs, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	acct, err := pop3.Dial(ctx, pop3.Config{Addr: srv.Addr, TLS: pop3.TLSNone, Username: srv.Username, Password: srv.Password})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { acct.Close() })
	store, err := cache.Open(cache.Options{Dir: t.TempDir(), Account: "test", Protocol: "pop3"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store, store.Wrap(acct)
}

// peakHeap samples the Go heap in use until stop is called and returns its
// largest growth over the start; past limit it cancels (a client that
// buffers a whole message fails the test before it exhausts memory). The
// garbage collector runs at 1% meanwhile, so that the heap in use follows
// what is live.
func peakHeap(t *testing.T, limit uint64, cancel func()) (stop func() uint64) {
	old := debug.SetGCPercent(1)
	t.Cleanup(func() { debug.SetGCPercent(old) })
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapInuse, ms.HeapInuse
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
			}
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			if peak-base > limit {
				cancel()
			}
		}
	}()
	return func() uint64 {
		close(quit)
		<-done
		return peak - base
	}
}

// TestBackgroundDownloadMemory: the background download of a POP3 mount
// (and mailfs sync) streams a large message into the cache: the heap does
// not grow with the message.
func TestBackgroundDownloadMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("50 MiB through POP3")
	}
	large := largeMessage(50 * mib)
	small := []byte("Subject: small\r\n\r\nhello\r\n")
	store, acct := setup(t, []pop3server.Message{{UIDL: "large", Raw: large}, {UIDL: "small", Raw: small}}, pop3server.Options{})

	const bound = 32 * mib
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	stop := peakHeap(t, bound, cancel)
	start := time.Now()
	res, err := syncer.Run(ctx, acct, syncer.Options{Workers: 1}) // as cmd/mailfs downloadAll
	grew := stop()
	t.Logf("downloaded %d messages, %d bytes in %v; the heap grew by %.1f MiB at most", res.Messages, res.Bytes, time.Since(start).Round(time.Millisecond), float64(grew)/mib)
	if err != nil {
		t.Fatal(err)
	}
	if grew > bound {
		t.Errorf("the heap grew by %.1f MiB downloading a %d MiB message, want under %d MiB", float64(grew)/mib, len(large)/mib, bound/mib)
	}
	if res.Messages != 2 || res.Bytes != int64(len(large)+len(small)) {
		t.Errorf("got %d messages, %d bytes; want 2, %d", res.Messages, res.Bytes, len(large)+len(small))
	}
	off := store.Wrap(nil)
	for key, want := range map[string][]byte{"large": large, "small": small} {
		b, err := off.Body(context.Background(), remote.Ref{Folder: "INBOX", Key: key})
		if err != nil || !bytes.Equal(b, want) {
			t.Errorf("%s offline: %d bytes, %v; want %d bytes", key, len(b), err, len(want))
		}
	}
}

// TestListDuringDownload: the first ls of a POP3 mount answers at once
// while the background download holds the only session for a slow RETR.
func TestListDuringDownload(t *testing.T) {
	var msgs []pop3server.Message
	for i := range 3 {
		msgs = append(msgs, pop3server.Message{UIDL: fmt.Sprintf("m%d", i), Raw: fmt.Appendf(nil, "Subject: %d\r\n\r\nbody\r\n", i)})
	}
	_, acct := setup(t, msgs, pop3server.Options{RETRPause: 2 * time.Second})
	ctx := t.Context()
	var wg sync.WaitGroup
	var res syncer.Result
	var err error
	wg.Go(func() { res, err = syncer.Run(ctx, acct, syncer.Options{Workers: 1}) })
	time.Sleep(500 * time.Millisecond) // listed; the first RETR is under way
	for range 2 {
		start := time.Now()
		l, lerr := acct.List(ctx, "INBOX")
		d := time.Since(start)
		t.Logf("List answered in %v during the download", d.Round(time.Millisecond))
		if d > time.Second {
			t.Errorf("List took %v during the download, want under 1 s", d)
		}
		if lerr != nil || len(l.Messages) != len(msgs) {
			t.Errorf("List during the download: %v, %v", l, lerr)
		}
	}
	wg.Wait()
	if err != nil || res.Messages != len(msgs) {
		t.Errorf("download: %d messages, %v", res.Messages, err)
	}
}

// TestDownloadGoesOn: a message the server does not end (here: LIST says
// far less than RETR sends) is skipped and said so; the others are cached.
func TestDownloadGoesOn(t *testing.T) {
	big := largeMessage(3 * mib)
	msgs := []pop3server.Message{
		{UIDL: "m1", Raw: []byte("Subject: 1\r\n\r\none\r\n")},
		{UIDL: "liar", Raw: big},
		{UIDL: "m3", Raw: []byte("Subject: 3\r\n\r\nthree\r\n")},
	}
	store, acct := setup(t, msgs, pop3server.Options{ListSizes: map[string]int{"liar": 100}})
	// One message a batch: the batch after the liar's goes on too.
	res, err := syncer.Run(t.Context(), acct, syncer.Options{Workers: 1, BatchCount: 1})
	if !errors.Is(err, remote.ErrProtocol) || !strings.Contains(err.Error(), "liar") {
		t.Errorf("got %v, want ErrProtocol naming the message", err)
	}
	if res.Messages != 2 {
		t.Errorf("got %d messages downloaded, want 2", res.Messages)
	}
	off := store.Wrap(nil)
	for i, key := range []string{"m1", "liar", "m3"} {
		if got, want := off.Cached(remote.Ref{Folder: "INBOX", Key: key}), i != 1; got != want {
			t.Errorf("%s cached: %v, want %v", key, got, want)
		}
	}
}
