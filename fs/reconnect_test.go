package fs

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"mailfs/cache"
	"mailfs/internal/mailgen"
	"mailfs/internal/memserver"
	"mailfs/remote/imap"
)

// proxy forwards TCP connections to a server and can cut the network:
// down drops every connection and refuses new ones, up listens again on
// the same address.
type proxy struct {
	addr, target string

	mu    sync.Mutex // protects ln and conns
	ln    net.Listener
	conns []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{addr: ln.Addr().String(), target: target}
	p.serve(ln)
	t.Cleanup(p.down)
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { io.Copy(s, c); s.Close() }()
			go func() { io.Copy(c, s); c.Close() }()
		}
	}()
}

func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) up(t *testing.T) {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.serve(ln)
}

// TestServerAwayAndBack: with the network cut, what is cached keeps being
// served, an uncached read fails with EIO within the timeout, and once the
// server is reachable again the mount reconnects by itself.
func TestServerAwayAndBack(t *testing.T) {
	msgs := mailgen.Fixtures()
	var mm []memserver.Message
	for _, m := range msgs {
		mm = append(mm, memserver.Message{Folder: "INBOX", Date: m.Date, Raw: m.Raw})
	}
	srv, err := memserver.Start(mm)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	px := newProxy(t, srv.Addr)
	ctx := context.Background()
	inner, err := imap.Dial(ctx, imap.Config{Addr: px.addr, TLS: imap.TLSNone, Username: srv.Username, Password: srv.Password, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	store, err := cache.Open(cache.Options{InMemory: true, Account: "t", Protocol: "imap"})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	acct := store.Wrap(inner)
	dir, _ := mount(t, acct, Options{PollInterval: 100 * time.Millisecond, MemoryCache: 1, PrefetchCount: 1})
	p := func(i int) string { return filepath.Join(dir, "INBOX", strconv.Itoa(i)+".eml") }

	// Read the first message only: it is in the badger cache now.
	if got, err := os.ReadFile(p(1)); err != nil || !bytes.Equal(got, msgs[0].Raw) {
		t.Fatalf("before: %v", err)
	}
	px.down()
	time.Sleep(150 * time.Millisecond) // the listing is stale: a refresh fails

	start := time.Now()
	if n := countFiles(t, filepath.Join(dir, "INBOX")); n != len(msgs) {
		t.Errorf("listing with the server away: got %d files, want %d", n, len(msgs))
	}
	_, err = os.ReadFile(p(len(msgs)))
	if !isErrno(err, syscall.EIO) {
		t.Errorf("uncached read with the server away: got %v, want EIO", err)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("took %v with a 1 s timeout", d)
	}
	if got, err := os.ReadFile(p(1)); err != nil || !bytes.Equal(got, msgs[0].Raw) {
		t.Errorf("cached message with the server away: %v", err)
	}

	px.up(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := os.ReadFile(p(len(msgs)))
		if err == nil {
			if !bytes.Equal(got, msgs[len(msgs)-1].Raw) {
				t.Fatalf("after reconnecting: wrong bytes")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reconnection within 10 s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
