package deadline

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

func pair(t *testing.T) (*Conn, net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return New(c, 200*time.Millisecond, true), s
}

func TestStallFailsWithinTimeout(t *testing.T) {
	c, _ := pair(t)
	end := c.Begin(context.Background())
	defer end()
	start := time.Now()
	_, err := c.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v with a 200 ms timeout", d)
	}
}

func TestIdleIsNotTimedOut(t *testing.T) {
	c, s := pair(t)
	go func() {
		time.Sleep(500 * time.Millisecond)
		s.Write([]byte("x"))
	}()
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatalf("idle read: %v", err)
	}
}

func TestProgressRearms(t *testing.T) {
	c, s := pair(t)
	go func() {
		for range 6 {
			time.Sleep(100 * time.Millisecond)
			s.Write([]byte("x"))
		}
	}()
	end := c.Begin(context.Background())
	defer end()
	for i := range 6 {
		if _, err := c.Read(make([]byte, 1)); err != nil {
			t.Fatalf("read %d of a slow but steady stream: %v", i, err)
		}
	}
}

func TestCancelFailsAtOnce(t *testing.T) {
	c, _ := pair(t)
	c.timeout = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	end := c.Begin(ctx)
	defer end()
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read after cancel: no error")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %v after cancel", d)
	}
	// The library's own deadlines are ignored.
	if err := c.SetReadDeadline(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
}

// TestTrickleFailsAtTheLimit: a server that sends a byte now and then, each
// within the timeout, still fails the operation at its overall limit.
func TestTrickleFailsAtTheLimit(t *testing.T) {
	c, s := pair(t) // timeout 200 ms
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				s.Write([]byte("x"))
			}
		}
	}()
	end := c.Begin(context.Background())
	defer end()
	c.SetLimit(600 * time.Millisecond)
	c.Extend(200 * time.Millisecond)
	start := time.Now()
	buf := make([]byte, 1)
	var err error
	for err == nil {
		_, err = c.Read(buf)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
	if d := time.Since(start); d < 700*time.Millisecond || d > 3*time.Second {
		t.Fatalf("failed after %v; want about 800 ms (limit 600 ms + 200 ms)", d)
	}
}
