package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mailfs/cache"
	"mailfs/internal/dovecottest"
	"mailfs/internal/faultproxy"
	"mailfs/internal/testenv"
	"mailfs/remote"
	"mailfs/remote/imap"
)

// Fault test settings: a short timeout so that a stall costs little, and
// small prefetch, large-body and chunk sizes so that bulk fetches, single
// fetches and ranges (including streamed ones) all run through the faults.
const (
	faultTimeout   = 2 * time.Second
	faultLongStall = faultTimeout + 300*time.Millisecond // beyond the timeout: reads fail
)

var faultOpts = Options{
	PollInterval:  3 * time.Second, // listings are refreshed through the faults too
	PrefetchCount: 8,
	PrefetchBytes: 64 << 10,
	LargeBody:     12 << 10,
	ChunkSize:     8 << 10,
	MemoryCache:   256 << 10, // far less than the corpus: rounds fetch again
}

// faultMsg is one message of the mount and the bytes Dovecot serves for it.
type faultMsg struct {
	name string
	want []byte
}

// TestFaultsNeverGiveWrongBytes reads the whole shared corpus, as Dovecot
// serves it, through a proxy that cuts, stalls and truncates connections
// (at random and at chosen moments), three times: in order, with parallel
// readers, and in small pieces at random offsets; then the large messages
// once more with connections reset inside streamed ranges, and the small
// ones with every connection reset or truncated early. A read may
// fail, with EIO (or EINTR), but every read that succeeds returns exactly
// the reference bytes, every stat size before a full read equals the bytes
// read, and once the faults stop every message reads correctly on the
// same mount. Once without and once with the cache decorator, which must
// never keep a body a fault cut short.
//
// MAILFS_FAULT_SEED=n repeats a run's fault plan (the seed is logged; the
// timing of faults against reads still varies).
func TestFaultsNeverGiveWrongBytes(t *testing.T) {
	if testing.Short() {
		t.Skip("reads the corpus through faults for about 30 s")
	}
	corpus := testenv.Corpus(t)
	if _, err := os.Stat("/dev/fuse"); err != nil {
		testenv.SkipOrFail(t, "no /dev/fuse: %v", err)
	}
	dc := dovecottest.Start(t, dovecottest.Options{})
	ctx := context.Background()
	raws := make([][]byte, len(corpus))
	for i, c := range corpus {
		raws[i] = c.Data
	}
	if _, err := dc.Append(ctx, "INBOX", raws); err != nil {
		t.Fatal(err)
	}
	// The reference is what Dovecot serves (it turns bare LF into CRLF),
	// fetched around the proxy.
	served, err := dc.FetchAll(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if len(served) != len(corpus) {
		t.Fatalf("Dovecot holds %d messages, %d appended", len(served), len(corpus))
	}
	uids := make([]uint32, 0, len(served))
	for uid := range served {
		uids = append(uids, uid)
	}
	slices.Sort(uids)
	msgs := make([]faultMsg, len(uids))
	for i, uid := range uids {
		msgs[i] = faultMsg{name: strconv.FormatUint(uint64(uid), 10) + ".eml", want: served[uid]}
	}

	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("MAILFS_FAULT_SEED"); s != "" {
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("MAILFS_FAULT_SEED: %v", err)
		}
	}
	t.Logf("fault seed %d (MAILFS_FAULT_SEED=%d repeats the plan)", seed, seed)
	for _, cached := range []bool{false, true} {
		name := "direct"
		if cached {
			name = "cache"
		}
		t.Run(name, func(t *testing.T) { runFaults(t, dc, msgs, cached, seed) })
	}
}

func runFaults(t *testing.T, dc *dovecottest.Server, msgs []faultMsg, cached bool, seed uint64) {
	ctx := context.Background()
	px, err := faultproxy.New(dc.IMAPAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	logs := &logRing{max: 120}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last log lines:\n%s", logs)
		}
	})
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))

	inner, err := imap.Dial(ctx, imap.Config{Addr: px.Addr(), TLS: imap.TLSNone, Username: dc.User, Password: dc.Password,
		Timeout: faultTimeout, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inner.Close() })
	var acct remote.Account = inner
	if cached {
		store, err := cache.Open(cache.Options{InMemory: true, Account: "fault", Protocol: "imap", Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		acct = store.Wrap(inner)
	}
	opts := faultOpts
	opts.Logger = logger
	dir, _ := mount(t, acct, opts)
	inbox := filepath.Join(dir, "INBOX")
	if n := countFiles(t, inbox); n != len(msgs) {
		t.Fatalf("INBOX: %d files, Dovecot holds %d", n, len(msgs))
	}

	var tl faultTally
	tl.t = t
	// Three rounds over every message, with random faults and faults at
	// chosen moments. Then the large messages, each read while the
	// connections are reset at random points of their first 512 KiB:
	// resets that land inside streamed ranges. Then the small messages in
	// order (bulk fetches) on connections that are all reset or truncated
	// within 48 KiB: fetches retried after a reset meet a truncation.
	cs := faultOpts.ChunkSize
	var large, small []faultMsg
	for _, m := range msgs {
		if int64(len(m.want)) > 4*cs {
			large = append(large, m)
		} else if int64(len(m.want)) <= faultOpts.LargeBody {
			small = append(small, m)
		}
	}
	rounds := []struct {
		name    string
		msgs    []faultMsg
		workers int
		ranges  bool
		random  faultproxy.Random
		stall   faultproxy.Direction // of the long stall; 0: no faults at chosen moments
		cutEach bool                 // reset every connection before each message
	}{
		{"in order", msgs, 1, false, faultproxy.Random{P: 0.25, Within: 96 << 10, MaxStall: 1500 * time.Millisecond}, faultproxy.Down, false},
		{"parallel", msgs, 4, false, faultproxy.Random{P: 0.25, Within: 96 << 10, MaxStall: 1500 * time.Millisecond}, faultproxy.Up, false},
		{"pieces at random offsets", msgs, 3, true, faultproxy.Random{P: 0.25, Within: 96 << 10, MaxStall: 1500 * time.Millisecond}, faultproxy.Both, false},
		{"large messages, reset mid-stream", large, 1, false, faultproxy.Random{P: 0.6, Within: 512 << 10, Kinds: []faultproxy.Kind{faultproxy.KindCut}}, 0, true},
		{"small messages in order, every connection reset or truncated", small, 1, false, faultproxy.Random{P: 1, Within: 48 << 10, Kinds: []faultproxy.Kind{faultproxy.KindCut, faultproxy.KindTruncate}}, 0, false},
	}
	began := time.Now()
	prev := tl.snapshot()
	for r, round := range rounds {
		roundBegan := time.Now()
		rng := rand.New(rand.NewPCG(seed, uint64(r)))
		order := make([]int, len(round.msgs))
		for i := range order {
			order[i] = i
		}
		if round.workers > 1 {
			rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		}
		random := round.random
		random.Seed = seed + uint64(r)
		px.SetRandom(&random)
		px.Cut() // every connection of the round draws its fault from random

		var progress atomic.Int64
		done := make(chan struct{})
		directed := make(chan []string, 1)
		if round.stall != 0 {
			go func() { directed <- direct(px, faultEvents(rng, round.stall), len(order), &progress, done) }()
		} else {
			directed <- nil
		}

		var wg sync.WaitGroup
		next := atomic.Int64{}
		for w := range round.workers {
			wrng := rand.New(rand.NewPCG(seed, uint64(100*r+w+1)))
			wg.Go(func() {
				for {
					i := next.Add(1) - 1
					if i >= int64(len(order)) {
						return
					}
					m := round.msgs[order[i]]
					p := filepath.Join(inbox, m.name)
					if round.cutEach {
						px.Cut() // pooled connections go: fresh ones draw faults
					}
					if round.ranges {
						tl.pieces(p, m.want, wrng)
					} else {
						tl.full(p, m.want, false)
					}
					progress.Add(1)
				}
			})
		}
		wg.Wait()
		close(done)
		fired := strings.Join(<-directed, ", ")
		if fired == "" {
			fired = "none"
		}
		now := tl.snapshot()
		t.Logf("round %q (%d messages, %v): %v; faults at chosen moments: %s", round.name, len(order),
			time.Since(roundBegan).Round(time.Millisecond), now.minus(prev), fired)
		prev = now
	}
	px.Clear()
	faulty := tl.snapshot()
	st := px.Stats()
	t.Logf("with faults (%v): %v; proxy: %d connections, %d faults (%d cuts, %d truncations, %d stalls, %d refused)",
		time.Since(began).Round(time.Millisecond), faulty, st.Conns, st.Faults(), st.Cuts, st.Truncations, st.Stalls, st.Refused)

	// The faults are over: the same mount reads everything, at once.
	began = time.Now()
	for _, m := range msgs {
		tl.full(filepath.Join(inbox, m.name), m.want, true)
	}
	after := tl.snapshot()
	t.Logf("after the faults (%v): %d reads, %d failed", time.Since(began).Round(time.Millisecond),
		after.reads-faulty.reads, after.failed-faulty.failed)

	if after.wrongBytes != 0 || after.wrongLengths != 0 || after.badErrors != 0 {
		t.Errorf("wrong bytes in %d reads, wrong lengths in %d, wrong errors in %d; want none", after.wrongBytes, after.wrongLengths, after.badErrors)
	}
	if st.Faults() < 20 {
		t.Errorf("only %d faults took effect: the test did not test much", st.Faults())
	}
	if faulty.ok < faulty.reads/2 {
		t.Errorf("only %d of %d reads succeeded during the faults, want at least half", faulty.ok, faulty.reads)
	}
}

// faultEvents are the faults fired at chosen points of a round (fractions
// of its messages read), on top of the random ones.
func faultEvents(rng *rand.Rand, longStall faultproxy.Direction) []faultEvent {
	return []faultEvent{
		{0.08, "cut", func(px *faultproxy.Proxy, _ func(time.Duration, int64)) { px.Cut() }},
		{0.16, "truncate", func(px *faultproxy.Proxy, _ func(time.Duration, int64)) { px.Truncate(rng.Int64N(2048)) }},
		{0.25, "short stall", func(px *faultproxy.Proxy, wait func(time.Duration, int64)) {
			px.Stall(faultproxy.Down)
			wait(400*time.Millisecond, -1) // under the timeout: slow, not failed
			px.Release()
		}},
		{0.35, "refuse", func(px *faultproxy.Proxy, wait func(time.Duration, int64)) {
			// Reads fail at once while no connection can be made: a
			// few are enough.
			px.Refuse(true)
			px.Cut()
			wait(300*time.Millisecond, 5)
			px.Refuse(false)
		}},
		{0.45, "truncate mid-body", func(px *faultproxy.Proxy, _ func(time.Duration, int64)) { px.Truncate(rng.Int64N(64 << 10)) }},
		{0.55, "long stall", func(px *faultproxy.Proxy, wait func(time.Duration, int64)) {
			px.Stall(longStall)
			wait(faultLongStall, -1)
			px.Release()
		}},
		{0.70, "truncate at once", func(px *faultproxy.Proxy, _ func(time.Duration, int64)) { px.Truncate(0) }},
		{0.80, "cut", func(px *faultproxy.Proxy, _ func(time.Duration, int64)) { px.Cut() }},
		{0.90, "truncate", func(px *faultproxy.Proxy, _ func(time.Duration, int64)) { px.Truncate(rng.Int64N(16 << 10)) }},
	}
}

// faultEvent is a fault fired once a fraction at of a round's messages is
// read. do may wait (for d, or until n more messages were read, or the
// round ends, whichever comes first; n < 0: no bound on messages).
type faultEvent struct {
	at   float64
	name string
	do   func(px *faultproxy.Proxy, wait func(d time.Duration, n int64))
}

// direct fires each event once progress passes its point, until done is
// closed, and returns the names of the events it fired.
func direct(px *faultproxy.Proxy, events []faultEvent, total int, progress *atomic.Int64, done chan struct{}) []string {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	// until waits until cond holds or done is closed; false for done.
	until := func(deadline time.Time, cond func() bool) bool {
		for !cond() && time.Now().Before(deadline) {
			select {
			case <-done:
				return false
			case <-tick.C:
			}
		}
		return true
	}
	wait := func(d time.Duration, n int64) {
		from := progress.Load()
		until(time.Now().Add(d), func() bool { return n >= 0 && progress.Load() >= from+n })
	}
	var fired []string
	for _, ev := range events {
		if !until(time.Now().Add(time.Hour), func() bool { return float64(progress.Load()) >= ev.at*float64(total) }) {
			break
		}
		ev.do(px, wait)
		fired = append(fired, ev.name)
	}
	return fired
}

// faultTally counts reads and checks every one against the reference.
type faultTally struct {
	t testing.TB

	reads, ok, failed, bytes            atomic.Int64
	eio, eintr                          atomic.Int64
	wrongBytes, wrongLengths, badErrors atomic.Int64
	reported                            atomic.Int64 // problems written to the log
}

type tallyCounts struct {
	reads, ok, failed, bytes, eio, eintr, wrongBytes, wrongLengths, badErrors int64
}

func (c tallyCounts) String() string {
	return fmt.Sprintf("%d reads, %d ok, %d failed (%d EIO, %d EINTR), %d bytes checked, wrong bytes in %d reads, wrong lengths in %d",
		c.reads, c.ok, c.failed, c.eio, c.eintr, c.bytes, c.wrongBytes, c.wrongLengths)
}

func (c tallyCounts) minus(d tallyCounts) tallyCounts {
	return tallyCounts{c.reads - d.reads, c.ok - d.ok, c.failed - d.failed, c.bytes - d.bytes, c.eio - d.eio,
		c.eintr - d.eintr, c.wrongBytes - d.wrongBytes, c.wrongLengths - d.wrongLengths, c.badErrors - d.badErrors}
}

func (tl *faultTally) snapshot() tallyCounts {
	return tallyCounts{tl.reads.Load(), tl.ok.Load(), tl.failed.Load(), tl.bytes.Load(), tl.eio.Load(),
		tl.eintr.Load(), tl.wrongBytes.Load(), tl.wrongLengths.Load(), tl.badErrors.Load()}
}

// problem reports a wrong result (the first few in full).
func (tl *faultTally) problem(counter *atomic.Int64, format string, args ...any) {
	counter.Add(1)
	if tl.reported.Add(1) <= 20 {
		tl.t.Errorf(format, args...)
	}
}

// failure accounts for a failed operation: EIO or EINTR, nothing else.
// strict (after the faults) makes any failure an error.
func (tl *faultTally) failure(what string, err error, strict bool) {
	tl.failed.Add(1)
	switch {
	case errors.Is(err, syscall.EIO):
		tl.eio.Add(1)
	case errors.Is(err, syscall.EINTR):
		tl.eintr.Add(1)
	default:
		tl.problem(&tl.badErrors, "%s: got %v, want EIO or EINTR", what, err)
		return
	}
	if strict {
		tl.problem(&tl.badErrors, "%s after the faults ended: %v", what, err)
	}
}

// full stats p, then reads it whole with the kernel's pages for it dropped,
// so that the read reaches the filesystem.
func (tl *faultTally) full(p string, want []byte, strict bool) {
	tl.reads.Add(1)
	st, err := os.Stat(p)
	if err != nil {
		tl.failure("stat "+p, err, strict)
		return
	}
	f, err := os.Open(p)
	if err != nil {
		tl.failure("open "+p, err, strict)
		return
	}
	defer f.Close()
	dropPages(f)
	got, err := io.ReadAll(f)
	if !bytes.HasPrefix(want, got) {
		at := firstDiff(got, want)
		tl.problem(&tl.wrongBytes, "read %s: %d bytes (%v), differ from Dovecot's %d at offset %d: got %q, want %q",
			p, len(got), err, len(want), at, excerpt(got, at), excerpt(want, at))
		return
	}
	if err != nil {
		tl.failure("read "+p, err, strict)
		return
	}
	tl.bytes.Add(int64(len(got)))
	switch {
	case len(got) != len(want):
		tl.problem(&tl.wrongLengths, "read %s: %d bytes, Dovecot serves %d", p, len(got), len(want))
	case st.Size() != int64(len(got)):
		tl.problem(&tl.wrongLengths, "%s: stat size %d, then a full read of %d bytes", p, st.Size(), len(got))
	default:
		tl.ok.Add(1)
	}
}

// pieces reads p in a few small pieces at random offsets (the chunk
// boundaries and the end among them), each checked against want's slice.
func (tl *faultTally) pieces(p string, want []byte, rng *rand.Rand) {
	f, err := os.Open(p)
	if err != nil {
		tl.reads.Add(1)
		tl.failure("open "+p, err, false)
		return
	}
	defer f.Close()
	size := int64(len(want))
	cs := faultOpts.ChunkSize
	for range 2 + rng.IntN(4) {
		var off int64
		switch rng.IntN(4) {
		case 0:
			off = rng.Int64N(size + 64)
		case 1:
			off = max(0, size-rng.Int64N(64))
		case 2:
			off = max(0, rng.Int64N(size/cs+1)*cs-8+rng.Int64N(16))
		default:
			off = rng.Int64N(min(size, 512) + 1)
		}
		n := 1 + rng.Int64N(4096)
		if rng.IntN(5) == 0 {
			n = 1 + rng.Int64N(64<<10)
		}
		if rng.IntN(2) == 0 {
			dropPages(f)
		}
		tl.reads.Add(1)
		buf := make([]byte, n)
		k, err := f.ReadAt(buf, off)
		lo := min(off, size)
		wantN := min(n, size-lo)
		if int64(k) > wantN {
			tl.problem(&tl.wrongLengths, "%s: %d bytes at %d (%v), want %d of a %d-byte message", p, k, off, err, wantN, size)
			continue
		}
		if !bytes.Equal(buf[:k], want[lo:lo+int64(k)]) {
			at := firstDiff(buf[:k], want[lo:])
			tl.problem(&tl.wrongBytes, "%s: %d bytes at %d (%v), differ from Dovecot's at %d: got %q, want %q",
				p, k, off, err, off+int64(at), excerpt(buf[:k], at), excerpt(want[lo:], at))
			continue
		}
		if err != nil && err != io.EOF {
			tl.failure(fmt.Sprintf("read %s at %d", p, off), err, false)
			continue
		}
		tl.bytes.Add(int64(k))
		if int64(k) != wantN || (err == io.EOF) != (wantN < n) {
			tl.problem(&tl.wrongLengths, "%s: %d bytes at %d (%v), want %d of a %d-byte message", p, k, off, err, wantN, size)
			continue
		}
		tl.ok.Add(1)
	}
}

// dropPages drops the kernel's cached pages of f, so that the next read
// goes to the filesystem (messages are opened with FOPEN_KEEP_CACHE).
func dropPages(f *os.File) {
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// excerpt is a few bytes of b around at.
func excerpt(b []byte, at int) []byte {
	lo := max(0, at-16)
	return b[min(lo, len(b)):min(at+32, len(b))]
}

// logRing keeps the last lines logged, shown when the test fails.
type logRing struct {
	max int

	mu    sync.Mutex // protects lines
	lines []string
}

func (r *logRing) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, strings.TrimRight(string(p), "\n"))
	if len(r.lines) > r.max {
		r.lines = slices.Delete(r.lines, 0, len(r.lines)-r.max)
	}
	return len(p), nil
}

func (r *logRing) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}
