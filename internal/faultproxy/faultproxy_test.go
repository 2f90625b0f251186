package faultproxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pat is byte j of every stream the test server sends.
func pat(j int64) byte { return byte(j*7919>>3 ^ j) }

func want(from, n int64) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = pat(from + int64(i))
	}
	return b
}

// startServer answers each line "N" with the next N bytes of its stream
// (pat from 0, per connection).
func startServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				var pos int64
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					n, err := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
					if err != nil {
						return
					}
					if _, err := c.Write(want(pos, n)); err != nil {
						return
					}
					pos += n
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func start(t *testing.T) *Proxy {
	t.Helper()
	p, err := New(startServer(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ask requests n bytes and reads them.
func ask(t *testing.T, c net.Conn, n int64) []byte {
	t.Helper()
	if _, err := fmt.Fprintf(c, "%d\n", n); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("reading %d bytes: %v", n, err)
	}
	return b
}

// readAll reads until the connection ends and returns what came and why it
// ended.
func readAll(c net.Conn) ([]byte, error) {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var buf bytes.Buffer
	_, err := io.Copy(&buf, c)
	return buf.Bytes(), err
}

func TestForwardsExactly(t *testing.T) {
	p := start(t)
	c := dial(t, p)
	var pos int64
	for _, n := range []int64{1, 100, 1 << 20, 3} {
		if got := ask(t, c, n); !bytes.Equal(got, want(pos, n)) {
			t.Fatalf("%d bytes at %d: differ", n, pos)
		}
		pos += n
	}
	st := p.Stats()
	if st.Conns != 1 || st.BytesDown != pos || st.Faults() != 0 {
		t.Errorf("stats: got %+v, want 1 connection, %d bytes down, no faults", st, pos)
	}
}

func TestCutAndRefuse(t *testing.T) {
	p := start(t)
	c := dial(t, p)
	ask(t, c, 10)
	if n := p.Cut(); n != 1 {
		t.Fatalf("Cut: got %d connections, want 1", n)
	}
	if _, err := readAll(c); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read after Cut: got %v, want a reset", err)
	}

	p.Refuse(true)
	r := dial(t, p)
	if got, err := readAll(r); len(got) != 0 || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("refused connection: got %d bytes, %v, want it closed", len(got), err)
	}
	p.Refuse(false)
	if got := ask(t, dial(t, p), 5); !bytes.Equal(got, want(0, 5)) {
		t.Errorf("after Refuse(false): got %x", got)
	}
	if st := p.Stats(); st.Cuts != 1 || st.Refused != 1 || st.Conns != 3 {
		t.Errorf("stats: got %+v, want 1 cut, 1 refused, 3 connections", st)
	}
}

func TestStallAndRelease(t *testing.T) {
	for _, dir := range []Direction{Down, Up, Both} {
		t.Run(strconv.Itoa(int(dir)), func(t *testing.T) {
			p := start(t)
			c := dial(t, p)
			ask(t, c, 10)
			p.Stall(dir)
			fmt.Fprintf(c, "20\n")
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if n, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("read while stalled: got %d bytes, %v, want a timeout", n, err)
			}
			// A new connection is held too.
			c2 := dial(t, p)
			fmt.Fprintf(c2, "5\n")
			p.Release()
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			held := make([]byte, 20)
			if _, err := io.ReadFull(c, held); err != nil || !bytes.Equal(held, want(10, 20)) {
				t.Fatalf("after Release: got %x, %v, want %x", held, err, want(10, 20))
			}
			c2.SetReadDeadline(time.Now().Add(5 * time.Second))
			b := make([]byte, 5)
			if _, err := io.ReadFull(c2, b); err != nil || !bytes.Equal(b, want(0, 5)) {
				t.Fatalf("held connection after Release: got %x, %v", b, err)
			}
			if st := p.Stats(); st.Stalls < 1 {
				t.Errorf("stats: got %+v, want a stall", st)
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	for _, n := range []int64{0, 1, 77, 40000} {
		t.Run(strconv.FormatInt(n, 10), func(t *testing.T) {
			p := start(t)
			c := dial(t, p)
			ask(t, c, 10)
			if k := p.Truncate(n); k != 1 {
				t.Fatalf("Truncate armed %d connections, want 1", k)
			}
			fmt.Fprintf(c, "100000\n")
			got, err := readAll(c)
			if err != nil {
				t.Fatalf("truncated read: %v, want EOF", err)
			}
			if !bytes.Equal(got, want(10, n)) {
				t.Fatalf("got %d bytes, want exactly %d of the stream", len(got), n)
			}
			if st := p.Stats(); st.Truncations != 1 {
				t.Errorf("stats: got %+v, want 1 truncation", st)
			}
		})
	}
}

func TestCutAfter(t *testing.T) {
	p := start(t)
	c := dial(t, p)
	ask(t, c, 10)
	p.CutAfter(5000)
	fmt.Fprintf(c, "100000\n")
	got, err := readAll(c)
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read: got %v, want a reset", err)
	}
	if len(got) > 5000 || !bytes.Equal(got, want(10, int64(len(got)))) {
		t.Errorf("got %d bytes, want at most 5000 of the stream", len(got))
	}
	if st := p.Stats(); st.Cuts != 1 || st.Truncations != 0 {
		t.Errorf("stats: got %+v, want 1 cut", st)
	}
}

func TestClearDisarms(t *testing.T) {
	p := start(t)
	c := dial(t, p)
	p.Truncate(5)
	p.Clear()
	if got := ask(t, c, 100); !bytes.Equal(got, want(0, 100)) {
		t.Fatal("bytes differ after Clear")
	}
}

func TestClearEndsRandomStall(t *testing.T) {
	p := start(t)
	p.SetRandom(&Random{Seed: 1, P: 1, MaxStall: time.Hour, Kinds: []Kind{KindStall}})
	c := dial(t, p)
	fmt.Fprintf(c, "10\n")
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read during a random stall: got %d bytes, %v, want a timeout", n, err)
	}
	p.Clear()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 10)
	if _, err := io.ReadFull(c, b); err != nil || !bytes.Equal(b, want(0, 10)) {
		t.Fatalf("after Clear: got %x, %v", b, err)
	}
}

func TestRandomFaultIsDeterministic(t *testing.T) {
	r := Random{Seed: 42, P: 0.3, Within: 1000, MaxStall: time.Second}
	got := 0
	kinds := map[Kind]int{}
	for n := uint64(0); n < 3000; n++ {
		f, ok := r.Fault(n)
		g, ok2 := r.Fault(n)
		if f != g || ok != ok2 {
			t.Fatalf("connection %d: %v, %v, then %v, %v", n, f, ok, g, ok2)
		}
		if !ok {
			continue
		}
		got++
		kinds[f.Kind]++
		if f.After < 0 || f.After >= r.Within {
			t.Errorf("connection %d: after %d bytes, want [0, %d)", n, f.After, r.Within)
		}
		if f.Kind == KindStall && (f.Stall <= 0 || f.Stall > r.MaxStall) {
			t.Errorf("connection %d: stall %v, want (0, %v]", n, f.Stall, r.MaxStall)
		}
	}
	if got < 800 || got > 1000 {
		t.Errorf("P=0.3: %d of 3000 connections got a fault", got)
	}
	if len(kinds) != 3 {
		t.Errorf("kinds drawn: %v, want all three", kinds)
	}
	other := Random{Seed: 43, P: 0.3, Within: 1000}
	same := 0
	for n := uint64(0); n < 100; n++ {
		f, ok := r.Fault(n)
		g, ok2 := other.Fault(n)
		if f == g && ok == ok2 {
			same++
		}
	}
	if same == 100 {
		t.Error("seeds 42 and 43 give the same faults")
	}
	if _, ok := (Random{Seed: 1}).Fault(0); ok {
		t.Error("P=0 gave a fault")
	}
}

func TestRandomTruncatesWhereItSaid(t *testing.T) {
	p := start(t)
	r := Random{Seed: 7, P: 1, Within: 50000, Kinds: []Kind{KindTruncate}}
	p.SetRandom(&r)
	for n := uint64(0); n < 5; n++ {
		f, ok := r.Fault(n)
		if !ok {
			t.Fatal("P=1 gave no fault")
		}
		c := dial(t, p)
		fmt.Fprintf(c, "100000\n")
		got, err := readAll(c)
		if err != nil || !bytes.Equal(got, want(0, f.After)) {
			t.Fatalf("connection %d: got %d bytes, %v, want exactly %d and EOF", n, len(got), err, f.After)
		}
	}
	if st := p.Stats(); st.Truncations != 5 {
		t.Errorf("stats: got %+v, want 5 truncations", st)
	}
	p.SetRandom(nil)
	if got := ask(t, dial(t, p), 100000); !bytes.Equal(got, want(0, 100000)) {
		t.Error("random mode off: bytes differ")
	}
}

func TestRandomStallAndCut(t *testing.T) {
	p := start(t)
	stall := Random{Seed: 3, P: 1, Within: 1000, MaxStall: 300 * time.Millisecond, Kinds: []Kind{KindStall}}
	p.SetRandom(&stall)
	f, _ := stall.Fault(0)
	c := dial(t, p)
	began := time.Now()
	if got := ask(t, c, 5000); !bytes.Equal(got, want(0, 5000)) {
		t.Fatal("bytes differ across a random stall")
	}
	if d := time.Since(began); d < f.Stall-10*time.Millisecond {
		t.Errorf("a %v stall took %v", f.Stall, d)
	}

	cut := Random{Seed: 3, P: 1, Within: 1000, Kinds: []Kind{KindCut}}
	p.SetRandom(&cut)
	c = dial(t, p)
	fmt.Fprintf(c, "5000\n")
	got, err := readAll(c)
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) || int64(len(got)) > 1000 {
		t.Errorf("random cut: got %d bytes, %v, want at most 1000 and a reset", len(got), err)
	}
	if !bytes.Equal(got, want(0, int64(len(got)))) {
		t.Error("bytes before the cut differ")
	}
	if st := p.Stats(); st.Stalls != 1 || st.Cuts != 1 {
		t.Errorf("stats: got %+v, want 1 stall, 1 cut", st)
	}
}

func TestCloseEndsConnections(t *testing.T) {
	p := start(t)
	c := dial(t, p)
	p.Stall(Both)
	fmt.Fprintf(c, "5\n")
	done := make(chan struct{})
	go func() { p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs on a stalled connection")
	}
	if _, err := readAll(c); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Error("connection still open after Close")
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Error("still accepting after Close")
	}
}
