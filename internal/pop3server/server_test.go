package pop3server

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"mailfs/internal/testenv"
)

// client is a raw POP3 client for checking bytes on the wire.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dial(t *testing.T, addr string) (*client, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	cl := &client{t: t, conn: c, r: bufio.NewReader(c)}
	return cl, cl.line()
}

func (c *client) line() string {
	c.t.Helper()
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	if !strings.HasSuffix(l, "\r\n") {
		c.t.Fatalf("line %q does not end in CRLF", l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

func (c *client) cmd(line string) string {
	c.t.Helper()
	if _, err := fmt.Fprintf(c.conn, "%s\r\n", line); err != nil {
		c.t.Fatal(err)
	}
	return c.line()
}

// multi returns the status line and the data exactly as sent, stuffing
// and all, without the terminating ".\r\n".
func (c *client) multi(line string) (string, []byte) {
	c.t.Helper()
	status := c.cmd(line)
	if !strings.HasPrefix(status, "+OK") {
		return status, nil
	}
	var data []byte
	for {
		l, err := c.r.ReadBytes('\n')
		if err != nil {
			c.t.Fatalf("%s: %v", line, err)
		}
		if string(l) == ".\r\n" {
			return status, data
		}
		data = append(data, l...)
	}
}

func (c *client) login(user, pass string) {
	c.t.Helper()
	if r := c.cmd("USER " + user); !strings.HasPrefix(r, "+OK") {
		c.t.Fatalf("USER: %s", r)
	}
	if r := c.cmd("PASS " + pass); !strings.HasPrefix(r, "+OK") {
		c.t.Fatalf("PASS: %s", r)
	}
}

func start(t *testing.T, msgs []Message, opts Options) *Server {
	t.Helper()
	s, err := Start(msgs, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var sample = []Message{
	{UIDL: "a/1", Raw: []byte("Subject: one\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n")},
	{UIDL: "b%2", Raw: []byte("Subject: two\r\nFrom: x@example.org\r\n\r\nline 1\r\nline 2\r\nno final crlf")},
	{UIDL: "c3", Raw: []byte("Subject: three\n\nbare lf\n.dot bare lf\n")},
}

func TestSession(t *testing.T) {
	s := start(t, sample, Options{})
	c, greeting := dial(t, s.Addr)
	if !strings.HasPrefix(greeting, "+OK") || strings.Contains(greeting, "<") {
		t.Fatalf("greeting %q", greeting)
	}
	if r := c.cmd("STAT"); !strings.HasPrefix(r, "-ERR") {
		t.Errorf("STAT before login: %s", r)
	}
	if r := c.cmd("USER demo"); r[:3] != "+OK" {
		t.Fatal(r)
	}
	if r := c.cmd("PASS wrong"); r != "-ERR [AUTH] invalid user name or password" {
		t.Fatalf("wrong password: %s", r)
	}
	c.login("demo", "demo")

	sizes := []int{len(sample[0].Raw), len(sample[1].Raw) + 2, len(sample[2].Raw)}
	if r, want := c.cmd("STAT"), fmt.Sprintf("+OK 3 %d", sizes[0]+sizes[1]+sizes[2]); r != want {
		t.Errorf("STAT = %q, want %q", r, want)
	}
	if _, d := c.multi("LIST"); string(d) != fmt.Sprintf("1 %d\r\n2 %d\r\n3 %d\r\n", sizes[0], sizes[1], sizes[2]) {
		t.Errorf("LIST = %q", d)
	}
	if r := c.cmd("LIST 2"); r != fmt.Sprintf("+OK 2 %d", sizes[1]) {
		t.Errorf("LIST 2 = %q", r)
	}
	if _, d := c.multi("UIDL"); string(d) != "1 a/1\r\n2 b%2\r\n3 c3\r\n" {
		t.Errorf("UIDL = %q", d)
	}
	if r := c.cmd("UIDL 3"); r != "+OK 3 c3" {
		t.Errorf("UIDL 3 = %q", r)
	}

	for i, want := range []string{
		"Subject: one\r\n\r\n..leading dot\r\n...two dots\r\n..\r\nend\r\n",
		"Subject: two\r\nFrom: x@example.org\r\n\r\nline 1\r\nline 2\r\nno final crlf\r\n",
		"Subject: three\n\nbare lf\n..dot bare lf\n",
	} {
		status, d := c.multi(fmt.Sprintf("RETR %d", i+1))
		if string(d) != want {
			t.Errorf("RETR %d = %q, want %q", i+1, d, want)
		}
		if status != fmt.Sprintf("+OK %d octets", sizes[i]) {
			t.Errorf("RETR %d status %q", i+1, status)
		}
	}
	if _, d := c.multi("TOP 2 0"); string(d) != "Subject: two\r\nFrom: x@example.org\r\n\r\n" {
		t.Errorf("TOP 2 0 = %q", d)
	}
	if _, d := c.multi("TOP 2 1"); string(d) != "Subject: two\r\nFrom: x@example.org\r\n\r\nline 1\r\n" {
		t.Errorf("TOP 2 1 = %q", d)
	}
	if _, d := c.multi("TOP 2 10"); string(d) != "Subject: two\r\nFrom: x@example.org\r\n\r\nline 1\r\nline 2\r\nno final crlf\r\n" {
		t.Errorf("TOP 2 10 = %q", d)
	}
	for _, bad := range []string{"RETR 0", "RETR 4", "RETR x", "RETR", "TOP 1", "DELE 9", "FOO"} {
		if r := c.cmd(bad); !strings.HasPrefix(r, "-ERR") {
			t.Errorf("%s: %s", bad, r)
		}
	}

	// DELE, RSET, DELE again, QUIT commits.
	if r := c.cmd("DELE 1"); r[:3] != "+OK" {
		t.Fatal(r)
	}
	if r := c.cmd("RETR 1"); !strings.HasPrefix(r, "-ERR") {
		t.Errorf("RETR of a deleted message: %s", r)
	}
	if r := c.cmd("RSET"); r != "+OK" {
		t.Fatal(r)
	}
	if _, d := c.multi("UIDL"); string(d) != "1 a/1\r\n2 b%2\r\n3 c3\r\n" {
		t.Errorf("UIDL after RSET = %q", d)
	}
	c.cmd("DELE 2")
	if _, d := c.multi("LIST"); strings.Contains(string(d), "2 ") {
		t.Errorf("LIST shows the deleted message: %q", d)
	}
	if len(s.Messages()) != 3 {
		t.Errorf("deleted before QUIT")
	}
	if r := c.cmd("QUIT"); r[:3] != "+OK" {
		t.Fatal(r)
	}
	got := s.Messages()
	if len(got) != 2 || got[0].UIDL != "a/1" || got[1].UIDL != "c3" ||
		!bytes.Equal(got[0].Raw, sample[0].Raw) || !bytes.Equal(got[1].Raw, sample[2].Raw) {
		t.Errorf("after QUIT: %q", got)
	}
}

func TestNoQuitNoCommit(t *testing.T) {
	s := start(t, sample, Options{})
	c, _ := dial(t, s.Addr)
	c.login("demo", "demo")
	c.cmd("DELE 1")
	c.conn.Close()
	// The lock is released when the server notices; nothing was deleted.
	c2, _ := dial(t, s.Addr)
	c2.cmd("USER demo")
	deadline := time.Now().Add(5 * time.Second)
	for r := c2.cmd("PASS demo"); !strings.HasPrefix(r, "+OK"); r = c2.cmd("PASS demo") {
		if time.Now().After(deadline) {
			t.Fatalf("still locked: %s", r)
		}
		time.Sleep(10 * time.Millisecond)
		c2.cmd("USER demo")
	}
	if n := len(s.Messages()); n != 3 {
		t.Errorf("%d messages after a session without QUIT, want 3", n)
	}
}

func TestLock(t *testing.T) {
	s := start(t, sample, Options{})
	a, _ := dial(t, s.Addr)
	a.login("demo", "demo")
	b, _ := dial(t, s.Addr)
	b.cmd("USER demo")
	if r := b.cmd("PASS demo"); !strings.HasPrefix(r, "-ERR [IN-USE]") {
		t.Fatalf("second session: %s", r)
	}
	a.cmd("QUIT")
	b.login("demo", "demo")
}

func TestSnapshotAndChanges(t *testing.T) {
	s := start(t, sample, Options{})
	c, _ := dial(t, s.Addr)
	c.login("demo", "demo")
	s.Add(Message{UIDL: "new", Raw: []byte("Subject: new\r\n\r\n")}, Message{Raw: []byte("x")})
	s.Remove("a/1")
	if _, d := c.multi("UIDL"); string(d) != "1 a/1\r\n2 b%2\r\n3 c3\r\n" {
		t.Errorf("the session's view changed: %q", d)
	}
	c.cmd("DELE 2")
	c.cmd("QUIT")
	var uidls []string
	for _, m := range s.Messages() {
		uidls = append(uidls, m.UIDL)
	}
	if got := strings.Join(uidls, " "); got != "c3 new gen00000005" {
		t.Errorf("maildrop %q", got)
	}
}

func TestNoUIDLNoTOP(t *testing.T) {
	s := start(t, sample, Options{NoUIDL: true, NoTOP: true})
	c, _ := dial(t, s.Addr)
	if _, caps := c.multi("CAPA"); bytes.Contains(caps, []byte("UIDL")) || bytes.Contains(caps, []byte("TOP")) || bytes.Contains(caps, []byte("STLS")) {
		t.Errorf("CAPA %q", caps)
	}
	c.login("demo", "demo")
	for _, cmd := range []string{"UIDL", "TOP 1 0"} {
		if r := c.cmd(cmd); !strings.HasPrefix(r, "-ERR") {
			t.Errorf("%s: %s", cmd, r)
		}
	}
}

func TestAPOP(t *testing.T) {
	s := start(t, sample, Options{Username: "u", Password: "secret", APOP: true})
	c, greeting := dial(t, s.Addr)
	ts := greeting[strings.IndexByte(greeting, '<'):]
	if !strings.HasSuffix(ts, ">") {
		t.Fatalf("greeting %q", greeting)
	}
	sum := md5.Sum([]byte(ts + "wrong"))
	if r := c.cmd("APOP u " + hex.EncodeToString(sum[:])); !strings.HasPrefix(r, "-ERR [AUTH]") {
		t.Errorf("APOP with a wrong password: %s", r)
	}
	sum = md5.Sum([]byte(ts + "secret"))
	if r := c.cmd("APOP u " + hex.EncodeToString(sum[:])); !strings.HasPrefix(r, "+OK") {
		t.Errorf("APOP: %s", r)
	}

	plain := start(t, sample, Options{})
	c, _ = dial(t, plain.Addr)
	if r := c.cmd("APOP demo 0123"); !strings.HasPrefix(r, "-ERR") {
		t.Errorf("APOP without Options.APOP: %s", r)
	}
}

func TestLimits(t *testing.T) {
	s := start(t, sample, Options{Timeout: 300 * time.Millisecond})
	c, _ := dial(t, s.Addr)
	if r := c.cmd("USER " + strings.Repeat("x", 600)); r != "-ERR line too long" {
		t.Errorf("long line: %q", r)
	}
	if _, err := c.r.ReadByte(); err == nil {
		t.Errorf("connection still open after a too long line")
	}

	c, _ = dial(t, s.Addr)
	start := time.Now()
	if _, err := c.r.ReadByte(); err == nil {
		t.Errorf("idle connection not closed")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("idle connection closed after %v", d)
	}
}

func TestCloseWaits(t *testing.T) {
	before := runtime.NumGoroutine()
	s, err := Start(sample, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	for range 5 {
		c, err := net.Dial("tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
		bufio.NewReader(c).ReadString('\n') // greeted: the handler runs
	}
	fmt.Fprintf(conns[0], "USER demo\r\nPASS demo\r\n")
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs with clients connected")
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after Close, %d before", n, before)
	}
	if _, err := net.DialTimeout("tcp", s.Addr, time.Second); err == nil {
		t.Errorf("still listening after Close")
	}
}

func TestBadUIDL(t *testing.T) {
	for _, u := range []string{"has space", strings.Repeat("x", 71), "tab\t"} {
		if _, err := Start([]Message{{UIDL: u, Raw: []byte("x\r\n")}}, Options{}); err == nil {
			t.Errorf("UIDL %q accepted", u)
		}
	}
}

func TestTLS(t *testing.T) {
	cfg, pool := testenv.SelfSigned(t)
	s := start(t, sample, Options{TLSConfig: cfg})
	clientCfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}

	// STLS.
	c, _ := dial(t, s.Addr)
	if _, caps := c.multi("CAPA"); !bytes.Contains(caps, []byte("STLS\r\n")) {
		t.Fatalf("CAPA without STLS: %q", caps)
	}
	if r := c.cmd("STLS"); !strings.HasPrefix(r, "+OK") {
		t.Fatal(r)
	}
	tc := tls.Client(c.conn, clientCfg)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
	if _, caps := c.multi("CAPA"); bytes.Contains(caps, []byte("STLS")) {
		t.Errorf("STLS offered again under TLS")
	}
	c.login("demo", "demo")
	if _, d := c.multi("RETR 1"); !bytes.HasPrefix(d, []byte("Subject: one")) {
		t.Errorf("RETR under STLS: %q", d)
	}
	c.cmd("QUIT")

	// Implicit TLS.
	addr, err := s.ServeTLS()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := tls.Dial("tcp", addr, clientCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	c = &client{t: t, conn: raw, r: bufio.NewReader(raw)}
	if g := c.line(); !strings.HasPrefix(g, "+OK") {
		t.Fatal(g)
	}
	if r := c.cmd("STLS"); !strings.HasPrefix(r, "-ERR") {
		t.Errorf("STLS under implicit TLS: %s", r)
	}
	c.login("demo", "demo")

	// Without a TLS configuration there is no STLS.
	plain := start(t, sample, Options{})
	c, _ = dial(t, plain.Addr)
	if r := c.cmd("STLS"); !strings.HasPrefix(r, "-ERR") {
		t.Errorf("STLS without TLSConfig: %s", r)
	}
}

func TestMisbehaviour(t *testing.T) {
	t.Run("lax UIDL", func(t *testing.T) {
		if _, err := Start([]Message{{UIDL: "a\r\nb", Raw: []byte("x\r\n")}}, Options{LaxUIDL: true}); err == nil {
			t.Errorf("a UIDL with a line break accepted")
		}
		s := start(t, []Message{{UIDL: "has space", Raw: []byte("x\r\n")}}, Options{LaxUIDL: true})
		c, _ := dial(t, s.Addr)
		c.login("demo", "demo")
		if _, data := c.multi("UIDL"); string(data) != "1 has space\r\n" {
			t.Errorf("UIDL: got %q, want %q", data, "1 has space\r\n")
		}
	})
	t.Run("list sizes", func(t *testing.T) {
		s := start(t, sample, Options{ListSizes: map[string]int{"b%2": 7}})
		c, _ := dial(t, s.Addr)
		c.login("demo", "demo")
		_, data := c.multi("LIST")
		want := fmt.Sprintf("1 %d\r\n2 7\r\n3 %d\r\n", len(sample[0].Raw), len(sample[2].Raw))
		if string(data) != want {
			t.Errorf("LIST: got %q, want %q", data, want)
		}
		if r := c.cmd("LIST 2"); r != "+OK 2 7" {
			t.Errorf("LIST 2: got %q", r)
		}
	})
	t.Run("pause", func(t *testing.T) {
		s := start(t, sample, Options{RETRPause: 300 * time.Millisecond})
		c, _ := dial(t, s.Addr)
		c.login("demo", "demo")
		begin := time.Now()
		if _, data := c.multi("RETR 1"); !bytes.Equal(data, []byte("Subject: one\r\n\r\n..leading dot\r\n...two dots\r\n..\r\nend\r\n")) {
			t.Errorf("RETR 1: got %q", data)
		}
		if d := time.Since(begin); d < 300*time.Millisecond {
			t.Errorf("RETR took %v, want at least the pause", d)
		}
	})
	t.Run("endless", func(t *testing.T) {
		s := start(t, sample, Options{EndlessRETR: true})
		c, _ := dial(t, s.Addr)
		c.login("demo", "demo")
		if r := c.cmd("RETR 1"); !strings.HasPrefix(r, "+OK") {
			t.Fatalf("RETR: %s", r)
		}
		var n int
		for n < 4<<20 {
			l, err := c.r.ReadBytes('\n')
			if err != nil {
				t.Fatal(err)
			}
			if string(l) == ".\r\n" {
				t.Fatal("the endless RETR ended")
			}
			n += len(l)
		}
		c.conn.Close()
		done := make(chan struct{})
		go func() { s.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Close hangs behind an endless RETR")
		}
	})
}
