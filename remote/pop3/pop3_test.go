package pop3_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"mailfs/internal/header"
	"mailfs/internal/mailgen"
	"mailfs/internal/pop3server"
	"mailfs/remote"
	"mailfs/remote/pop3"
	"mailfs/remote/remotetest"

	"mailfs/internal/testenv"
)

// hostile are messages that test the RETR reader: dot-stuffing, long
// lines (one longer than the reader's 64 KiB buffer), bare LF, a last line
// without a line ending.
var hostile = [][]byte{
	[]byte("Subject: dots\r\nMessage-ID: <dots@test>\r\n\r\n.leading dot\r\n..two dots\r\n.\r\n...\r\n. \r\nend\r\n"),
	[]byte("Subject: long lines\r\nMessage-ID: <long@test>\r\n\r\n" + strings.Repeat("x", 2000) + "\r\n." + strings.Repeat("y", 100000) + "\r\nend\r\n"),
	[]byte("Subject: bare lf\nFrom: a@example.org\nMessage-ID: <lf@test>\n\nline one\n.dot line\n.\nline two\n"),
	[]byte("Subject: no final crlf\r\nMessage-ID: <nocrlf@test>\r\n\r\nlast line without CRLF"),
	[]byte("Subject: dot last\r\nMessage-ID: <dotlast@test>\r\n\r\nthe last line is a dot without CRLF\r\n."),
}

// pop3Form is what RETR gives for a message stored as b: b, plus the CRLF a
// server sends before the terminating "." when b's last line has no line
// ending.
func pop3Form(b []byte) []byte {
	if len(b) == 0 || b[len(b)-1] == '\n' {
		return b
	}
	return append(bytes.Clone(b), '\r', '\n')
}

// dated gives listing rows a date: remotetest requires one, and POP3 has
// none (the account leaves Date zero; mailfs fills it in above remote).
type dated struct{ remote.Account }

func (d dated) List(ctx context.Context, folder string) (*remote.Listing, error) {
	l, err := d.Account.List(ctx, folder)
	if err != nil {
		return nil, err
	}
	for i := range l.Messages {
		if !l.Messages[i].Date.IsZero() || l.Messages[i].UID != 0 {
			return nil, fmt.Errorf("row %d has a date or UID: %+v", i, l.Messages[i])
		}
		l.Messages[i].Date = time.Unix(1700000000, 0)
	}
	if l.UIDValidity != 0 {
		return nil, fmt.Errorf("UIDVALIDITY %d, want 0", l.UIDValidity)
	}
	return l, nil
}

func dial(t *testing.T, cfg pop3.Config) *pop3.Account {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if cfg.TLS == "" {
		cfg.TLS = pop3.TLSNone
	}
	a, err := pop3.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func startServer(t *testing.T, msgs []pop3server.Message, opts pop3server.Options) *pop3server.Server {
	t.Helper()
	s, err := pop3server.Start(msgs, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func serverConfig(s *pop3server.Server) pop3.Config {
	return pop3.Config{Addr: s.Addr, TLS: pop3.TLSNone, Username: s.Username, Password: s.Password}
}

// mailbox is the fixtures and the hostile messages, with UIDLs.
func mailbox() ([]pop3server.Message, [][]byte) {
	var msgs []pop3server.Message
	var want [][]byte
	for i, m := range mailgen.Fixtures() {
		msgs = append(msgs, pop3server.Message{UIDL: fmt.Sprintf("fixture-%02d", i), Raw: m.Raw})
		want = append(want, pop3Form(m.Raw))
	}
	for i, raw := range hostile {
		msgs = append(msgs, pop3server.Message{UIDL: fmt.Sprintf("hostile-%d", i), Raw: raw})
		want = append(want, pop3Form(raw))
	}
	return msgs, want
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func inbox(key string) remote.Ref { return remote.Ref{Folder: "INBOX", Key: key} }

func TestConformancePOP3Server(t *testing.T) {
	msgs, want := mailbox()
	s := startServer(t, msgs, pop3server.Options{})
	a := dial(t, serverConfig(s))
	remotetest.Run(t, dated{a}, []remotetest.Want{{Folder: "INBOX", Messages: want}})

	// The rest of the contract that the suite does not check.
	ctx := ctxFor(t)
	folders, err := a.Folders(ctx)
	if err != nil || len(folders) != 1 || folders[0].Name != "INBOX" || strings.Join(folders[0].Path, "/") != "INBOX" || folders[0].NoSelect {
		t.Errorf("Folders = %v, %v", folders, err)
	}
	l, err := a.List(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range l.Messages {
		if m.Key != msgs[i].UIDL {
			t.Errorf("row %d: key %q, want %q (server order)", i, m.Key, msgs[i].UIDL)
		}
	}
	if _, ok := any(a).(remote.RangeReader); ok {
		t.Errorf("a POP3 account claims ranged reads")
	}
	// Header returns exactly the named fields, then an empty line.
	h, err := a.Header(ctx, inbox("hostile-2"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "Subject: bare lf\nFrom: a@example.org\nMessage-ID: <lf@test>\n\r\n"; string(h) != want {
		t.Errorf("Header = %q, want %q", h, want)
	}
}

func TestUIDLNames(t *testing.T) {
	uidls := []string{"a/b", "100%", "%2F", "..", "x/../y", "~!@#$^&*()"}
	var msgs []pop3server.Message
	for i, u := range uidls {
		msgs = append(msgs, pop3server.Message{UIDL: u, Raw: fmt.Appendf(nil, "Subject: %d\r\n\r\nbody %d\r\n", i, i)})
	}
	s := startServer(t, msgs, pop3server.Options{})
	a := dial(t, serverConfig(s))
	ctx := ctxFor(t)
	l, err := a.List(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Messages) != len(uidls) {
		t.Fatalf("%d messages, want %d", len(l.Messages), len(uidls))
	}
	for i, m := range l.Messages {
		if m.Key != uidls[i] {
			t.Errorf("key %q, want %q", m.Key, uidls[i])
		}
		b, err := a.Body(ctx, inbox(m.Key))
		if err != nil || !bytes.Equal(b, msgs[i].Raw) {
			t.Errorf("Body(%q) = %q, %v", m.Key, b, err)
		}
	}
}

func TestNoUIDL(t *testing.T) {
	msgs, _ := mailbox()
	s := startServer(t, msgs, pop3server.Options{NoUIDL: true})
	a := dial(t, serverConfig(s)) // login works
	ctx := ctxFor(t)
	_, err := a.List(ctx, "INBOX")
	if !errors.Is(err, remote.ErrProtocol) || !strings.Contains(err.Error(), "does not support UIDL") {
		t.Errorf("List: got %v, want ErrProtocol saying UIDL is missing", err)
	}
	t.Log(err)
	if _, err := a.Body(ctx, inbox("fixture-00")); !errors.Is(err, remote.ErrProtocol) {
		t.Errorf("Body: got %v, want ErrProtocol", err)
	}
	if err := a.Delete(ctx, []remote.Ref{inbox("fixture-00")}); !errors.Is(err, remote.ErrProtocol) || !strings.Contains(err.Error(), "nothing was deleted") {
		t.Errorf("Delete: got %v", err)
	}
	if len(s.Messages()) != len(msgs) {
		t.Errorf("messages deleted")
	}
}

func TestNoTOP(t *testing.T) {
	msgs, want := mailbox()
	s := startServer(t, msgs, pop3server.Options{NoTOP: true})
	a := dial(t, serverConfig(s))
	ctx := ctxFor(t)
	for i, m := range msgs {
		h, err := a.Header(ctx, inbox(m.UIDL))
		if err != nil {
			t.Fatal(err)
		}
		got, exp := header.Fields(h), header.Fields(want[i])
		for _, f := range []string{"subject", "from", "to", "cc", "date", "message-id"} {
			if got[f] != exp[f] {
				t.Errorf("%s %s: %q, want %q", m.UIDL, f, got[f], exp[f])
			}
		}
	}
}

func TestDuplicateUIDL(t *testing.T) {
	msgs := []pop3server.Message{
		{UIDL: "same", Raw: []byte("Subject: first\r\n\r\n")},
		{UIDL: "other", Raw: []byte("Subject: other\r\n\r\n")},
		{UIDL: "same", Raw: []byte("Subject: second\r\n\r\n")},
	}
	s := startServer(t, msgs, pop3server.Options{})
	var logBuf syncBuffer
	cfg := serverConfig(s)
	cfg.Logger = slog.New(slog.NewTextHandler(&logBuf, nil))
	a := dial(t, cfg)
	ctx := ctxFor(t)
	l, err := a.List(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Messages) != 2 || l.Messages[0].Key != "same" || l.Messages[1].Key != "other" {
		t.Fatalf("listing %+v", l.Messages)
	}
	if b, err := a.Body(ctx, inbox("same")); err != nil || string(b) != "Subject: first\r\n\r\n" {
		t.Errorf("Body(same) = %q, %v; want the first", b, err)
	}
	if !strings.Contains(logBuf.String(), "duplicate UIDL") || !strings.Contains(logBuf.String(), "level=WARN") {
		t.Errorf("no warning logged: %q", logBuf.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestWrongPassword(t *testing.T) {
	msgs, _ := mailbox()
	s := startServer(t, msgs, pop3server.Options{Username: "me", Password: "right"})
	ctx := ctxFor(t)
	_, err := pop3.Dial(ctx, pop3.Config{Addr: s.Addr, TLS: pop3.TLSNone, Username: "me", Password: "s3cret-wrong"})
	if !errors.Is(err, remote.ErrAuth) {
		t.Fatalf("got %v, want ErrAuth", err)
	}
	if strings.Contains(err.Error(), "s3cret-wrong") || !strings.Contains(err.Error(), "invalid user name or password") {
		t.Errorf("error %q: want the server's text, never the password", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error on more than one line: %q", err)
	}
}

func TestAPOP(t *testing.T) {
	msgs, want := mailbox()
	s := startServer(t, msgs, pop3server.Options{Username: "me", Password: "apop-secret", APOP: true})
	ctx := ctxFor(t)
	a := dial(t, pop3.Config{Addr: s.Addr, TLS: pop3.TLSNone, Username: "me", Password: "apop-secret", Auth: pop3.AuthAPOP})
	if b, err := a.Body(ctx, inbox("fixture-01")); err != nil || !bytes.Equal(b, want[1]) {
		t.Errorf("Body over APOP: %v", err)
	}

	_, err := pop3.Dial(ctx, pop3.Config{Addr: s.Addr, TLS: pop3.TLSNone, Username: "me", Password: "wrong-apop-pw", Auth: pop3.AuthAPOP})
	if !errors.Is(err, remote.ErrAuth) || strings.Contains(err.Error(), "wrong-apop-pw") {
		t.Errorf("wrong APOP password: got %v, want ErrAuth without the password", err)
	}

	// A server whose greeting has no timestamp has no APOP.
	plain := startServer(t, msgs, pop3server.Options{})
	_, err = pop3.Dial(ctx, pop3.Config{Addr: plain.Addr, TLS: pop3.TLSNone, Username: "demo", Password: "demo", Auth: pop3.AuthAPOP})
	if err == nil || !strings.Contains(err.Error(), "no timestamp") || errors.Is(err, remote.ErrAuth) {
		t.Errorf("APOP without a timestamp: %v", err)
	}
}

func TestBadConfig(t *testing.T) {
	ctx := ctxFor(t)
	for _, cfg := range []pop3.Config{
		{Addr: "127.0.0.1:1", TLS: "tls"},
		{Addr: "127.0.0.1:1", Auth: "plain"},
		{Addr: "127.0.0.1:1", TLS: pop3.TLSNone, Username: "me", Password: "pw\r\nDELE 1"},
		{Addr: "127.0.0.1:1", TLS: pop3.TLSNone, Username: "me too", Password: "pw", Auth: pop3.AuthAPOP},
	} {
		if _, err := pop3.Dial(ctx, cfg); err == nil || strings.Contains(err.Error(), "DELE") {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
}

func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = pop3.Dial(ctxFor(t), pop3.Config{Addr: addr, TLS: pop3.TLSNone, Username: "u", Password: "p", Timeout: time.Second})
	if !errors.Is(err, remote.ErrUnavailable) {
		t.Errorf("closed port: got %v, want ErrUnavailable", err)
	}
}

func TestTLS(t *testing.T) {
	srvCfg, pool := testenv.SelfSigned(t)
	msgs, want := mailbox()
	s := startServer(t, msgs, pop3server.Options{TLSConfig: srvCfg})
	implicitAddr, err := s.ServeTLS()
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t)
	for _, tc := range []struct{ mode, addr string }{{pop3.TLSStartTLS, s.Addr}, {pop3.TLSImplicit, implicitAddr}} {
		t.Run(tc.mode, func(t *testing.T) {
			// The client trusts the certificate through RootCAs; the
			// server name comes from the address.
			cfg := pop3.Config{Addr: tc.addr, TLS: tc.mode, TLSConfig: &tls.Config{RootCAs: pool}, Username: "demo", Password: "demo"}
			a := dial(t, cfg)
			l, err := a.List(ctx, "INBOX")
			if err != nil {
				t.Fatal(err)
			}
			if b, err := a.Body(ctx, inbox(l.Messages[3].Key)); err != nil || !bytes.Equal(b, want[3]) {
				t.Errorf("Body over TLS: %v", err)
			}

			// Without the root the certificate is refused.
			cfg.TLSConfig = &tls.Config{}
			if _, err := pop3.Dial(ctx, cfg); !errors.Is(err, remote.ErrTLS) {
				t.Errorf("untrusted certificate: got %v, want ErrTLS", err)
			}
		})
	}
}

func TestSTLSNotOffered(t *testing.T) {
	msgs, _ := mailbox()
	s := startServer(t, msgs, pop3server.Options{}) // no TLSConfig: no STLS
	ctx := ctxFor(t)
	_, err := pop3.Dial(ctx, pop3.Config{Addr: s.Addr, TLS: pop3.TLSStartTLS, Username: "demo", Password: "demo"})
	if !errors.Is(err, remote.ErrTLS) || !strings.Contains(err.Error(), "does not offer STLS") {
		t.Errorf("got %v, want ErrTLS saying STLS is not offered", err)
	}

	// A server without CAPA, and one that offers STLS but refuses it.
	for _, reply := range []map[string]string{
		{"CAPA": "-ERR unknown command\r\n"},
		{"CAPA": "+OK\r\nSTLS\r\n.\r\n", "STLS": "-ERR not now\r\n"},
	} {
		addr := fakeServer(t, "+OK hello", func(c net.Conn, cmd string) bool {
			if r, ok := reply[cmd]; ok {
				c.Write([]byte(r))
				return true
			}
			t.Errorf("plain-text command %q after STLS failed", cmd)
			return false
		})
		_, err := pop3.Dial(ctx, pop3.Config{Addr: addr, TLS: pop3.TLSStartTLS, Username: "u", Password: "p"})
		if !errors.Is(err, remote.ErrTLS) {
			t.Errorf("%v: got %v, want ErrTLS", reply, err)
		}
	}
}

// fakeServer greets and answers each command line through handle (which
// gets the command's first word); false closes the connection.
func fakeServer(t *testing.T, greeting string, handle func(c net.Conn, cmd string) bool) string {
	t.Helper()
	return testenv.Serve(t, func(c net.Conn) {
		c.Write([]byte(greeting + "\r\n"))
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			cmd, _, _ := strings.Cut(strings.TrimSpace(line), " ")
			if !handle(c, strings.ToUpper(cmd)) {
				return
			}
		}
	})
}

// stallingServer logs in, lists one message and stops answering halfway
// through RETR (keeping the connection open).
func stallingServer(t *testing.T) string {
	return fakeServer(t, "+OK hello", func(c net.Conn, cmd string) bool {
		switch cmd {
		case "USER", "PASS", "QUIT":
			c.Write([]byte("+OK\r\n"))
		case "UIDL":
			c.Write([]byte("+OK\r\n1 k1\r\n.\r\n"))
		case "LIST":
			c.Write([]byte("+OK\r\n1 1000\r\n.\r\n"))
		case "RETR":
			c.Write([]byte("+OK 1000 octets\r\nSubject: stalls\r\n\r\nfirst li"))
			// Then nothing; the connection stays open until the client
			// gives up (the read loop waits for its next line).
		default:
			c.Write([]byte("-ERR no\r\n"))
		}
		return cmd != "QUIT"
	})
}

func TestStallMidRETR(t *testing.T) {
	addr := stallingServer(t)
	ctx := ctxFor(t)
	a := dial(t, pop3.Config{Addr: addr, Username: "u", Password: "p", Timeout: 500 * time.Millisecond})
	start := time.Now()
	_, err := a.Body(ctx, inbox("k1"))
	if !errors.Is(err, remote.ErrUnavailable) {
		t.Errorf("got %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("stalled RETR failed after %v with a 500 ms timeout", d)
	}

	// A stall in a parked session costs one timeout, not two: a server
	// that stops answering is not asked again in a fresh session.
	a = dial(t, pop3.Config{Addr: addr, Username: "u", Password: "p", Timeout: time.Second})
	if _, err := a.List(ctx, "INBOX"); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if _, err := a.Body(ctx, inbox("k1")); !errors.Is(err, remote.ErrUnavailable) {
		t.Errorf("parked session: got %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 1800*time.Millisecond {
		t.Errorf("stalled RETR in a parked session failed after %v with a 1 s timeout", d)
	}

	// A cancelled context aborts at once, whatever the timeout.
	a = dial(t, pop3.Config{Addr: addr, Username: "u", Password: "p", Timeout: time.Minute})
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(200*time.Millisecond, cancel)
	start = time.Now()
	_, err = a.Body(cctx, inbox("k1"))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cancelled RETR returned after %v", d)
	}
}

func TestSilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { <-done; c.Close() }()
		}
	}()
	start := time.Now()
	_, err = pop3.Dial(ctxFor(t), pop3.Config{Addr: ln.Addr().String(), TLS: pop3.TLSNone, Username: "u", Password: "p", Timeout: 500 * time.Millisecond})
	if !errors.Is(err, remote.ErrUnavailable) {
		t.Errorf("got %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("silent server: took %v with a 500 ms timeout", d)
	}
}

func TestBrokenReplies(t *testing.T) {
	for name, reply := range map[string]string{
		"garbage status":   "hello\r\n",
		"bad number":       "+OK\r\nx k1\r\n.\r\n",
		"eof in listing":   "+OK\r\n1 k1\r\n",
		"endless line":     "+OK\r\n1 " + strings.Repeat("k", 100000) + "\r\n.\r\n",
		"status then junk": "+OK\r\n.\r\n+OK extra\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			addr := fakeServer(t, "+OK hi", func(c net.Conn, cmd string) bool {
				switch cmd {
				case "UIDL":
					c.Write([]byte(reply))
					return name != "eof in listing"
				case "LIST":
					c.Write([]byte("+OK\r\n.\r\n"))
				default:
					c.Write([]byte("+OK\r\n"))
				}
				return true
			})
			a := dial(t, pop3.Config{Addr: addr, Username: "u", Password: "p", Timeout: time.Second})
			done := make(chan error, 1)
			go func() {
				_, err := a.List(ctxFor(t), "INBOX")
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, remote.ErrProtocol) && !errors.Is(err, remote.ErrUnavailable) {
					t.Errorf("List: got %v, want ErrProtocol or ErrUnavailable", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("List hung on a broken reply")
			}
		})
	}
}

func TestNumberingChangesBetweenSessions(t *testing.T) {
	var msgs []pop3server.Message
	for i := 1; i <= 5; i++ {
		msgs = append(msgs, pop3server.Message{UIDL: fmt.Sprintf("m%d", i), Raw: fmt.Appendf(nil, "Subject: %d\r\n\r\nmessage %d\r\n", i, i)})
	}
	s := startServer(t, msgs, pop3server.Options{})
	ctx := ctxFor(t)
	a := dial(t, serverConfig(s))
	if _, err := a.List(ctx, "INBOX"); err != nil {
		t.Fatal(err)
	}
	// Another client deletes message 1: its login waits until a's parked
	// session is over (the server locks the maildrop), and from then on
	// "m3" is message 2.
	b := dial(t, serverConfig(s))
	if err := b.Delete(ctx, []remote.Ref{inbox("m1")}); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Body(ctx, inbox("m3")); err != nil || !bytes.Equal(got, msgs[2].Raw) {
		t.Errorf("Body(m3) after renumbering = %q, %v", got, err)
	}
	if _, err := a.Body(ctx, inbox("m1")); !errors.Is(err, remote.ErrNotFound) {
		t.Errorf("Body(m1) after its deletion: got %v, want ErrNotFound", err)
	}
	// m1 and nonexistent are gone: said so, m3 deleted all the same.
	if err := a.Delete(ctx, []remote.Ref{inbox("m3"), inbox("m1"), inbox("nonexistent")}); !errors.Is(err, remote.ErrNotFound) {
		t.Fatalf("delete with gone refs: got %v, want ErrNotFound", err)
	}
	var left []string
	for _, m := range s.Messages() {
		left = append(left, m.UIDL)
	}
	if got := strings.Join(left, " "); got != "m2 m4 m5" {
		t.Errorf("maildrop %q, want m2 m4 m5", got)
	}
}

func TestParkedSession(t *testing.T) {
	msgs, want := mailbox()
	s := startServer(t, msgs, pop3server.Options{})
	ctx := ctxFor(t)
	a := dial(t, serverConfig(s))
	if _, err := a.Body(ctx, inbox("fixture-00")); err != nil {
		t.Fatal(err)
	}
	// The session is parked: the maildrop stays locked for a while.
	if loginRaw(t, s) {
		t.Errorf("maildrop not locked right after a read")
	}
	// A message that arrives meanwhile is not in the parked session's
	// view: the read goes to a fresh session.
	s.Add(pop3server.Message{UIDL: "late", Raw: []byte("Subject: late\r\n\r\n")})
	if b, err := a.Body(ctx, inbox("late")); err != nil || string(b) != "Subject: late\r\n\r\n" {
		t.Errorf("Body(late) = %q, %v", b, err)
	}
	// A message removed meanwhile: the parked session still serves its own
	// view; a listing (always a fresh session) no longer has it.
	s.Remove("fixture-01")
	if b, err := a.Body(ctx, inbox("fixture-01")); err != nil || !bytes.Equal(b, want[1]) {
		t.Errorf("Body(fixture-01) from the parked session: %v", err)
	}
	l, err := a.List(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range l.Messages {
		if m.Key == "fixture-01" {
			t.Errorf("listing has a removed message")
		}
	}
	if _, err := a.Body(ctx, inbox("fixture-01")); !errors.Is(err, remote.ErrNotFound) {
		t.Errorf("Body of a removed message after a listing: got %v", err)
	}
	// After the idle window the session is gone.
	deadline := time.Now().Add(5 * time.Second)
	for !loginRaw(t, s) {
		if time.Now().After(deadline) {
			t.Fatal("parked session still open 5 s after the last read")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Close ends a parked session at once; the account is unusable after.
	if _, err := a.Body(ctx, inbox("fixture-00")); err != nil {
		t.Fatal(err)
	}
	a.Close()
	if !loginRaw(t, s) {
		t.Errorf("maildrop still locked after Close")
	}
	if _, err := a.Body(ctx, inbox("fixture-00")); !errors.Is(err, remote.ErrUnavailable) {
		t.Errorf("Body after Close: got %v, want ErrUnavailable", err)
	}
}

func TestParkedSessionDropped(t *testing.T) {
	// The server closes idle connections long before the parked session
	// would expire: the next read finds it dead and logs in again.
	msgs, want := mailbox()
	s := startServer(t, msgs, pop3server.Options{Timeout: 200 * time.Millisecond})
	ctx := ctxFor(t)
	a := dial(t, serverConfig(s))
	for i := range 3 {
		if b, err := a.Body(ctx, inbox(msgs[i].UIDL)); err != nil || !bytes.Equal(b, want[i]) {
			t.Fatalf("Body #%d: %v", i, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// loginRaw reports whether a plain client can log in (and QUITs).
func loginRaw(t *testing.T, s *pop3server.Server) bool {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	fmt.Fprintf(c, "USER %s\r\nPASS %s\r\nQUIT\r\n", s.Username, s.Password)
	var lines []string
	for range 4 {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("raw login: %v after %q", err, lines)
		}
		lines = append(lines, l)
	}
	return strings.HasPrefix(lines[2], "+OK")
}

func TestDelete(t *testing.T) {
	msgs, _ := mailbox()
	s := startServer(t, msgs, pop3server.Options{})
	ctx := ctxFor(t)
	a := dial(t, serverConfig(s))

	// A cancelled delete deletes nothing.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	err := a.Delete(cctx, []remote.Ref{inbox("fixture-00")})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "nothing was deleted") {
		t.Errorf("cancelled Delete: %v", err)
	}

	del := map[string]bool{"fixture-00": true, "fixture-05": true, "hostile-1": true}
	var refs []remote.Ref
	for k := range del {
		refs = append(refs, inbox(k))
	}
	refs = append(refs, inbox("fixture-05"), inbox("gone"), remote.Ref{Folder: "Other", Key: "fixture-01"})
	if err := a.Delete(ctx, refs); !errors.Is(err, remote.ErrNotFound) {
		t.Fatalf("delete with gone refs: got %v, want ErrNotFound", err)
	}
	got := s.Messages()
	var wantLeft []pop3server.Message
	for _, m := range msgs {
		if !del[m.UIDL] {
			wantLeft = append(wantLeft, m)
		}
	}
	if len(got) != len(wantLeft) {
		t.Fatalf("%d messages left, want %d", len(got), len(wantLeft))
	}
	for i := range got {
		if got[i].UIDL != wantLeft[i].UIDL || !bytes.Equal(got[i].Raw, wantLeft[i].Raw) {
			t.Errorf("left #%d: %s, want %s", i, got[i].UIDL, wantLeft[i].UIDL)
		}
	}
	l, err := a.List(ctx, "INBOX")
	if err != nil || len(l.Messages) != len(wantLeft) {
		t.Errorf("listing after Delete: %d messages, %v", len(l.Messages), err)
	}
}

func TestDeleteFailures(t *testing.T) {
	ctx := ctxFor(t)
	// The connection breaks at DELE: nothing was deleted.
	addr := fakeServer(t, "+OK hi", func(c net.Conn, cmd string) bool {
		switch cmd {
		case "UIDL":
			c.Write([]byte("+OK\r\n1 k1\r\n2 k2\r\n.\r\n"))
		case "DELE":
			return false
		default:
			c.Write([]byte("+OK\r\n"))
		}
		return true
	})
	a := dial(t, pop3.Config{Addr: addr, Username: "u", Password: "p", Timeout: time.Second})
	err := a.Delete(ctx, []remote.Ref{inbox("k2")})
	if !errors.Is(err, remote.ErrUnavailable) || !strings.Contains(err.Error(), "nothing was deleted") {
		t.Errorf("broken at DELE: %v", err)
	}

	// QUIT answered -ERR: the server may have removed some.
	addr = fakeServer(t, "+OK hi", func(c net.Conn, cmd string) bool {
		switch cmd {
		case "UIDL":
			c.Write([]byte("+OK\r\n1 k1\r\n.\r\n"))
		case "QUIT":
			c.Write([]byte("-ERR some deleted messages not removed\r\n"))
		default:
			c.Write([]byte("+OK\r\n"))
		}
		return true
	})
	a = dial(t, pop3.Config{Addr: addr, Username: "u", Password: "p", Timeout: time.Second})
	if err := a.Delete(ctx, []remote.Ref{inbox("k1")}); err == nil || !strings.Contains(err.Error(), "some deleted messages not removed") {
		t.Errorf("QUIT refused: %v", err)
	}
}

func TestFolders(t *testing.T) {
	msgs, _ := mailbox()
	s := startServer(t, msgs, pop3server.Options{})
	a := dial(t, serverConfig(s))
	ctx := ctxFor(t)
	if _, err := a.List(ctx, "Sent"); !errors.Is(err, remote.ErrNotFound) {
		t.Errorf("List(Sent): %v", err)
	}
	if _, err := a.Body(ctx, remote.Ref{Folder: "Sent", Key: "fixture-00"}); !errors.Is(err, remote.ErrNotFound) {
		t.Errorf("Body in Sent: %v", err)
	}
}
