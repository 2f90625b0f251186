package imap_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"mailfs/internal/dovecottest"
	"mailfs/internal/mailgen"
	"mailfs/internal/memserver"
	"mailfs/remote"
	"mailfs/remote/imap"
	"mailfs/remote/remotetest"
)

func dial(t *testing.T, cfg imap.Config) *imap.Account {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := imap.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func memMailbox() ([]memserver.Message, []remotetest.Want) {
	var msgs []memserver.Message
	want := map[string][][]byte{}
	for i, m := range mailgen.Fixtures() {
		folder := "INBOX"
		if i%2 == 1 {
			folder = "Lists/golang"
		}
		msgs = append(msgs, memserver.Message{Folder: folder, Date: m.Date, Flags: m.Flags, Raw: m.Raw})
		want[folder] = append(want[folder], m.Raw)
	}
	return msgs, []remotetest.Want{{Folder: "INBOX", Messages: want["INBOX"]}, {Folder: "Lists/golang", Messages: want["Lists/golang"]}}
}

func TestConformanceMemServer(t *testing.T) {
	msgs, want := memMailbox()
	srv, err := memserver.Start(msgs)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	a := dial(t, imap.Config{Addr: srv.Addr, TLS: imap.TLSNone, Username: srv.Username, Password: srv.Password, Connections: 2})
	remotetest.Run(t, a, want)
}

func TestConformanceDovecot(t *testing.T) {
	dc := dovecottest.Start(t, dovecottest.Options{})
	ctx := context.Background()
	var want []remotetest.Want
	fixtures := mailgen.Fixtures()
	for i, folder := range []string{"INBOX", "Lists.golang", "Entwürfe", "Sent Items"} {
		if folder != "INBOX" {
			if err := dc.CreateFolder(ctx, folder); err != nil {
				t.Fatal(err)
			}
		}
		var raws [][]byte
		for j, m := range fixtures {
			if j%4 == i {
				raws = append(raws, m.Raw)
			}
		}
		if _, err := dc.Append(ctx, folder, raws); err != nil {
			t.Fatal(err)
		}
		served, err := dc.FetchAll(ctx, folder)
		if err != nil {
			t.Fatal(err)
		}
		w := remotetest.Want{Folder: folder}
		uids := make([]uint32, 0, len(served))
		for uid := range served {
			uids = append(uids, uid)
		}
		slices.Sort(uids)
		for _, uid := range uids {
			w.Messages = append(w.Messages, served[uid])
		}
		want = append(want, w)
	}
	a := dial(t, imap.Config{Addr: dc.IMAPAddr, TLS: imap.TLSNone, Username: dc.User, Password: dc.Password, Connections: 3})
	remotetest.Run(t, a, want)

	t.Run("Hierarchy", func(t *testing.T) {
		folders, err := a.Folders(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, f := range folders {
			got = append(got, strings.Join(f.Path, "|"))
		}
		for _, w := range []string{"INBOX", "Lists", "Lists|golang", "Entwürfe", "Sent Items"} {
			if !slices.Contains(got, w) {
				t.Errorf("folder path %q missing from %q", w, got)
			}
		}
	})
}

func TestWrongPassword(t *testing.T) {
	msgs, _ := memMailbox()
	srv, err := memserver.Start(msgs)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = imap.Dial(ctx, imap.Config{Addr: srv.Addr, TLS: imap.TLSNone, Username: srv.Username, Password: "s3cret-wrong"})
	if !errors.Is(err, remote.ErrAuth) {
		t.Fatalf("got %v, want ErrAuth", err)
	}
	if strings.Contains(err.Error(), "s3cret-wrong") {
		t.Fatalf("the error shows the password: %v", err)
	}
}

func TestStartTLSRefused(t *testing.T) {
	// The in-process server has no TLS configured, so it does not offer
	// STARTTLS: the dial must fail rather than go on in plain text.
	msgs, _ := memMailbox()
	srv, err := memserver.Start(msgs)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = imap.Dial(ctx, imap.Config{Addr: srv.Addr, TLS: imap.TLSStartTLS, Username: srv.Username, Password: srv.Password})
	if !errors.Is(err, remote.ErrTLS) {
		t.Fatalf("got %v, want ErrTLS", err)
	}
}

func TestUnreachableAndSilentServer(t *testing.T) {
	// Nothing listens: a clear ErrUnavailable.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx := context.Background()
	if _, err := imap.Dial(ctx, imap.Config{Addr: addr, TLS: imap.TLSNone, Username: "u", Password: "p", Timeout: time.Second}); !errors.Is(err, remote.ErrUnavailable) {
		t.Errorf("closed port: got %v, want ErrUnavailable", err)
	}

	// A server that accepts and never speaks: fails within the timeout.
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	start := time.Now()
	_, err = imap.Dial(ctx, imap.Config{Addr: ln.Addr().String(), TLS: imap.TLSNone, Username: "u", Password: "p", Timeout: 500 * time.Millisecond})
	if err == nil {
		t.Fatal("silent server: no error")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("silent server: took %v with a 500 ms timeout", d)
	}
}

func TestBrokenServerReplies(t *testing.T) {
	// A server that greets, logs in and answers the listing with garbage:
	// an error, no panic, no hang.
	replies := []string{
		"* 1 FETCH (UID 1 RFC822.SIZE notanumber)\r\n",
		"* 1 FETCH (UID 1 RFC822.SIZE 10 INTERNALDATE \"garbage\" FLAGS (\\Seen))\r\n",
		"* 1 FETCH (UID\r\n",
		"* 1 FETCH (BODY[] {100}\r\nshort",
	}
	for _, reply := range replies {
		t.Run(strings.Fields(reply)[3], func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go fakeServer(ln, reply)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			a, err := imap.Dial(ctx, imap.Config{Addr: ln.Addr().String(), TLS: imap.TLSNone, Username: "u", Password: "p", Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			done := make(chan error, 1)
			go func() {
				_, err := a.List(ctx, "INBOX")
				done <- err
			}()
			select {
			case err := <-done:
				t.Logf("List: %v", err)
			case <-time.After(4 * time.Second):
				t.Fatal("List hung on a broken reply")
			}
		})
	}
}

// fakeServer speaks just enough IMAP to log in and select, then sends reply
// to the first FETCH.
func fakeServer(ln net.Listener, reply string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.Write([]byte("* OK [CAPABILITY IMAP4rev1] fake\r\n"))
			buf := make([]byte, 4096)
			var pending []byte
			for {
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				pending = append(pending, buf[:n]...)
				for {
					i := bytes.Index(pending, []byte("\r\n"))
					if i < 0 {
						break
					}
					line := string(pending[:i])
					pending = pending[i+2:]
					f := strings.Fields(line)
					if len(f) < 2 {
						continue
					}
					tag, cmd := f[0], strings.ToUpper(f[1])
					switch cmd {
					case "LOGIN", "CAPABILITY", "NOOP":
						if cmd == "CAPABILITY" {
							c.Write([]byte("* CAPABILITY IMAP4rev1\r\n"))
						}
						c.Write([]byte(tag + " OK done\r\n"))
					case "SELECT", "EXAMINE":
						c.Write([]byte("* 1 EXISTS\r\n* OK [UIDVALIDITY 7] x\r\n" + tag + " OK [READ-ONLY] done\r\n"))
					case "UID":
						c.Write([]byte(reply))
						c.Write([]byte(tag + " OK done\r\n"))
					case "LOGOUT":
						c.Write([]byte("* BYE\r\n" + tag + " OK bye\r\n"))
						return
					default:
						c.Write([]byte(tag + " BAD unknown\r\n"))
					}
				}
			}
		}()
	}
}
