package imap_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"mailfs/internal/memserver"
	"mailfs/internal/testenv"
	"mailfs/remote"
	"mailfs/remote/imap"
)

// script is a scripted IMAP server: it greets, logs anyone in, and answers
// each command with what its handler writes (a tagged OK unless the handler
// says it answered). Commands are recorded.
type script struct {
	addr string
	mu   sync.Mutex
	cmds []string
}

// handler answers one command line (tag removed, verb upper-cased in verb)
// on w; it returns false to get the default answer.
type handler func(tag, verb, line string, w io.Writer) bool

func startScript(t *testing.T, h handler) *script {
	t.Helper()
	s := &script{}
	s.addr = testenv.Serve(t, func(c net.Conn) { s.serve(c, h) })
	return s
}

func (s *script) serve(c net.Conn, h handler) {
	io.WriteString(c, "* OK [CAPABILITY IMAP4rev1 UIDPLUS] scripted\r\n")
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		s.mu.Lock()
		s.cmds = append(s.cmds, line)
		s.mu.Unlock()
		tag, rest, _ := strings.Cut(line, " ")
		verb, _, _ := strings.Cut(rest, " ")
		verb = strings.ToUpper(verb)
		if verb == "UID" {
			_, r2, _ := strings.Cut(rest, " ")
			v2, _, _ := strings.Cut(r2, " ")
			verb = "UID " + strings.ToUpper(v2)
		}
		if h != nil && h(tag, verb, rest, c) {
			continue
		}
		switch verb {
		case "CAPABILITY":
			io.WriteString(c, "* CAPABILITY IMAP4rev1 UIDPLUS\r\n"+tag+" OK done\r\n")
		case "SELECT", "EXAMINE":
			io.WriteString(c, "* 1 EXISTS\r\n* OK [UIDVALIDITY 7] x\r\n"+tag+" OK done\r\n")
		case "LOGOUT":
			io.WriteString(c, "* BYE\r\n"+tag+" OK bye\r\n")
			return
		default:
			io.WriteString(c, tag+" OK done\r\n")
		}
	}
}

func (s *script) sent(substr string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.cmds {
		if strings.Contains(c, substr) {
			return true
		}
	}
	return false
}

func scriptAccount(t *testing.T, s *script, timeout time.Duration) *imap.Account {
	t.Helper()
	return dial(t, imap.Config{Addr: s.addr, TLS: imap.TLSNone, Username: "u", Password: "secret-pw", Timeout: timeout, Connections: 1})
}

// peakHeap runs fn and returns how far the heap in use rose above where it
// was, sampled every 20 ms.
func peakHeap(fn func()) uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	peak := base
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapInuse)
		}
	}()
	fn()
	close(stop)
	<-done
	return peak - base
}

// flood writes first, then piece every interval until stopped.
func flood(first, piece string, every time.Duration) func(w io.Writer, stop <-chan struct{}) {
	return func(w io.Writer, stop <-chan struct{}) {
		io.WriteString(w, first)
		for {
			select {
			case <-stop:
				return
			case <-time.After(every):
			}
			if _, err := io.WriteString(w, piece); err != nil {
				return
			}
		}
	}
}

// TestEndlessAndTricklingReplies: a response line that never ends grew
// memory to 3.8 GB, and a server trickling bytes held a request far past
// the timeout (26 s with 5 s), because every byte restarted it.
func TestEndlessAndTricklingReplies(t *testing.T) {
	chunk := strings.Repeat("a", 1<<20)
	for _, tc := range []struct {
		name  string
		reply func(w io.Writer, stop <-chan struct{})
		limit time.Duration
	}{
		{"endless line", flood("* 1 FETCH (UID 1 FLAGS (", chunk, 10*time.Millisecond), 10 * time.Second},
		{"endless literal outside FETCH", flood("* OK [ALERT] {4000000000}\r\n", chunk, 10*time.Millisecond), 10 * time.Second},
		{"trickle", flood("* OK ", "a", 300*time.Millisecond), 4*time.Second + 3*time.Second},
		{"stall", func(w io.Writer, stop <-chan struct{}) { <-stop }, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stop := make(chan struct{})
			defer close(stop)
			s := startScript(t, func(tag, verb, line string, w io.Writer) bool {
				if verb != "UID FETCH" {
					return false
				}
				tc.reply(w, stop)
				return true
			})
			a := scriptAccount(t, s, time.Second)
			var err error
			var took time.Duration
			grew := peakHeap(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				start := time.Now()
				_, err = a.List(ctx, "INBOX")
				took = time.Since(start)
			})
			t.Logf("%s: %v after %v, heap grew by %d MiB", tc.name, err, took.Round(time.Millisecond), grew>>20)
			if err == nil {
				t.Fatal("no error")
			}
			if took > tc.limit {
				t.Errorf("took %v with a 1 s timeout; want at most %v", took, tc.limit)
			}
			if grew > 128<<20 {
				t.Errorf("heap grew by %d MiB; want it bounded", grew>>20)
			}
		})
	}
}

// TestBadFolderNames: one folder name that is not modified UTF-7 (or holds
// a control character) made the whole folder list fail, and every path of
// the mount EIO.
func TestBadFolderNames(t *testing.T) {
	s := startScript(t, func(tag, verb, line string, w io.Writer) bool {
		switch verb {
		case "LIST":
			io.WriteString(w, "* LIST () \"/\" INBOX\r\n"+
				"* LIST () \"/\" &Jjo\r\n"+
				"* LIST () \"/\" \"Tab\there\"\r\n"+
				"* LIST () \"/\" {8}\r\nNUL\x00name\r\n"+
				"* LIST () \"/\" \"Entw&APw-rfe\"\r\n"+
				tag+" OK done\r\n")
			return true
		case "SELECT", "EXAMINE":
			// Only the server's own spelling of the name opens it.
			if strings.HasSuffix(line, " &Jjo") || strings.HasSuffix(line, " \"&Jjo\"") {
				io.WriteString(w, "* 0 EXISTS\r\n* OK [UIDVALIDITY 9] x\r\n"+tag+" OK done\r\n")
				return true
			}
			io.WriteString(w, tag+" NO [NONEXISTENT] no such folder\r\n")
			return true
		}
		return false
	})
	a := scriptAccount(t, s, 2*time.Second)
	ctx := context.Background()
	folders, err := a.Folders(ctx)
	if err != nil {
		t.Fatalf("folder list with bad names: %v", err)
	}
	var names []string
	for _, f := range folders {
		names = append(names, f.Name)
	}
	want := []string{"&Jjo", "Entwürfe", "INBOX", "NUL\x00name", "Tab\there"}
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Fatalf("folders %q, want %q", names, want)
	}
	l, err := a.List(ctx, "&Jjo")
	if err != nil {
		t.Fatalf("opening the folder with the invalid name: %v", err)
	}
	if l.UIDValidity != 9 {
		t.Errorf("UIDVALIDITY %d, want 9", l.UIDValidity)
	}
	if !s.sent("EXAMINE &Jjo") && !s.sent(`EXAMINE "&Jjo"`) {
		t.Errorf("the server's own name was not sent back: %q", s.cmds)
	}
}

// TestImpossibleSize: RFC822.SIZE of 2^32 or more made a message unreadable
// for good (the size probe asked for a range IMAP cannot express).
func TestImpossibleSize(t *testing.T) {
	body := "Subject: x\r\n\r\nhello\r\n"
	s := startScript(t, func(tag, verb, line string, w io.Writer) bool {
		if verb != "UID FETCH" {
			return false
		}
		if strings.Contains(line, "BODY.PEEK[]") && !strings.Contains(line, "<") {
			fmt.Fprintf(w, "* 1 FETCH (UID 1 BODY[] {%d}\r\n%s)\r\n%s OK done\r\n", len(body), body, tag)
			return true
		}
		if strings.Contains(line, "BODY.PEEK") {
			io.WriteString(w, tag+" BAD number too big\r\n")
			return true
		}
		io.WriteString(w, "* 1 FETCH (UID 1 RFC822.SIZE 99999999999998 INTERNALDATE \"01-Jan-2024 00:00:00 +0000\" FLAGS ())\r\n"+tag+" OK done\r\n")
		return true
	})
	a := scriptAccount(t, s, 2*time.Second)
	ctx := context.Background()
	l, err := a.List(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Messages) != 1 || l.Messages[0].Size != 0 {
		t.Fatalf("listing %+v: want one message of unknown size (0)", l.Messages)
	}
	ref := remote.Ref{Folder: "INBOX", UIDValidity: l.UIDValidity, UID: 1, Key: "1"}
	if _, err := a.BodyRange(ctx, ref, 99999999999997, 2); !errors.Is(err, remote.ErrTooLarge) {
		t.Errorf("a range beyond IMAP's numbers: got %v, want ErrTooLarge", err)
	}
	if s.sent("<99999999999997") {
		t.Error("a range beyond IMAP's numbers was sent")
	}
	b, err := a.Body(ctx, ref)
	if err != nil || string(b) != body {
		t.Fatalf("body: %q, %v", b, err)
	}
}

// TestLoginTextSanitized: the login error printed the server's text as it
// came: a server that echoes the command put the password, and escape
// sequences, on the terminal.
func TestLoginTextSanitized(t *testing.T) {
	addr := testenv.Serve(t, func(c net.Conn) {
		io.WriteString(c, "* OK [CAPABILITY IMAP4rev1] hi\r\n")
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			tag, rest, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
			if strings.HasPrefix(strings.ToUpper(rest), "LOGIN") {
				io.WriteString(c, tag+" NO [AUTHENTICATIONFAILED] \x1b[2J\x1b]0;pwned\x07you sent: "+rest+"\r\n")
				continue
			}
			io.WriteString(c, tag+" OK done\r\n")
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := imap.Dial(ctx, imap.Config{Addr: addr, TLS: imap.TLSNone, Username: "me", Password: "s3cret-Pass", Auth: "login"})
	if !errors.Is(err, remote.ErrAuth) {
		t.Fatalf("got %v, want ErrAuth", err)
	}
	if msg := err.Error(); strings.Contains(msg, "s3cret-Pass") || strings.ContainsAny(msg, "\x1b\x07") {
		t.Errorf("the error shows the password or control characters: %q", msg)
	}
}

// TestStartTLS: STARTTLS, spoken by mailfs itself so that the guard reads
// the decrypted stream, gets a working session.
func TestStartTLS(t *testing.T) {
	serverTLS, pool := testenv.SelfSigned(t)
	msgs, _ := memMailbox()
	srv, err := memserver.StartWith(msgs, memserver.Quirks{TLS: serverTLS})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	a := dial(t, imap.Config{Addr: srv.Addr, TLS: imap.TLSStartTLS, TLSConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"},
		Username: srv.Username, Password: srv.Password})
	l, err := a.List(context.Background(), "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Messages) == 0 {
		t.Fatal("empty INBOX over STARTTLS")
	}
}

// TestLiteralLargerThanAsked: a literal larger than what was asked for is
// refused without being read; imapclient's reader waited for it for ever,
// and the connection, pooled again, hung the next command and Close.
func TestLiteralLargerThanAsked(t *testing.T) {
	body := strings.Repeat("x", 100)
	s := startScript(t, func(tag, verb, line string, w io.Writer) bool {
		if verb != "UID FETCH" || !strings.Contains(line, "<") {
			return false
		}
		fmt.Fprintf(w, "* 1 FETCH (UID 1 BODY[]<0> {%d}\r\n%s)\r\n%s OK done\r\n", len(body), body, tag)
		return true
	})
	a, err := imap.Dial(context.Background(), imap.Config{Addr: s.addr, TLS: imap.TLSNone, Username: "u", Password: "p", Timeout: 2 * time.Second, Connections: 1})
	if err != nil {
		t.Fatal(err)
	}
	ref := remote.Ref{Folder: "INBOX", UID: 1, Key: "1"}
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := a.BodyRange(ctx, ref, 0, 10); !errors.Is(err, remote.ErrProtocol) {
			t.Errorf("a literal of 100 bytes for 10 asked: got %v, want ErrProtocol", err)
		}
		if _, err := a.Folders(ctx); err != nil {
			t.Errorf("the next request: %v", err)
		}
		a.Close()
	}()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("hung after a literal larger than asked for")
	}
}

// TestNILBody: Dovecot answers BODY[] NIL for a message another session
// expunged; it was read as an empty message (grep -r saw a file of 0
// bytes while rm ran in parallel).
func TestNILBody(t *testing.T) {
	s := startScript(t, func(tag, verb, line string, w io.Writer) bool {
		if verb != "UID FETCH" {
			return false
		}
		io.WriteString(w, "* 1 FETCH (UID 1 BODY[] NIL)\r\n* 2 FETCH (UID 2 BODY[] NIL)\r\n"+tag+" NO Some messages were also expunged\r\n")
		return true
	})
	a := scriptAccount(t, s, 2*time.Second)
	ctx := context.Background()
	b, err := a.Body(ctx, remote.Ref{Folder: "INBOX", UIDValidity: 7, UID: 1, Key: "1"})
	if err == nil {
		t.Fatalf("a NIL body: got %q, nil; want an error", b)
	}
	var got []remote.Ref
	err = a.Bodies(ctx, []remote.Ref{{Folder: "INBOX", UIDValidity: 7, UID: 1, Key: "1"}, {Folder: "INBOX", UIDValidity: 7, UID: 2, Key: "2"}},
		func(r remote.Ref, b []byte) { got = append(got, r) })
	if len(got) != 0 {
		t.Errorf("bulk fetch delivered %d NIL bodies as messages (err %v)", len(got), err)
	}
}

// TestListingRowsDropped: rows a listing cannot use (no UID, no size) are
// left out, and said so in the log, not dropped silently.
func TestListingRowsDropped(t *testing.T) {
	s := startScript(t, func(tag, verb, line string, w io.Writer) bool {
		if verb != "UID FETCH" {
			return false
		}
		date := `INTERNALDATE "01-Jan-2024 00:00:00 +0000"`
		io.WriteString(w, "* 1 FETCH (UID 0 RFC822.SIZE 5 "+date+" FLAGS ())\r\n"+
			"* 2 FETCH (UID 2 "+date+" FLAGS ())\r\n"+
			"* 3 FETCH (UID 3 RFC822.SIZE 7 "+date+" FLAGS ())\r\n"+tag+" OK done\r\n")
		return true
	})
	logs := &syncBuffer{}
	a := dial(t, imap.Config{Addr: s.addr, TLS: imap.TLSNone, Username: "u", Password: "p", Timeout: 2 * time.Second,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	l, err := a.List(context.Background(), "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Messages) != 1 || l.Messages[0].UID != 3 {
		t.Fatalf("listing %+v, want only UID 3", l.Messages)
	}
	// imapclient hands the row with UID 0 to no command: it is logged
	// from its own goroutine.
	deadline := time.Now().Add(2 * time.Second)
	for !strings.Contains(logs.String(), "UID 0") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for _, want := range []string{"UID 0", "without size or date"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no log line %q:\n%s", want, logs)
		}
	}
}

// TestRangeAnswers: a server that ignores <off.n> and sends the body from
// its start, or more than asked, or NIL, must not have that taken for the
// range asked for (wrong bytes, or a message cut short).
func TestRangeAnswers(t *testing.T) {
	body := strings.Repeat("0123456789", 10)
	for _, tc := range []struct {
		name, reply string
		want        error
	}{
		{"no origin", fmt.Sprintf("* 1 FETCH (UID 1 BODY[] {%d}\r\n%s)\r\n", len(body), body), remote.ErrProtocol},
		{"other origin", "* 1 FETCH (UID 1 BODY[]<0> {10}\r\n0123456789)\r\n", remote.ErrProtocol},
		{"more than asked", fmt.Sprintf("* 1 FETCH (UID 1 BODY[]<20> {%d}\r\n%s)\r\n", len(body), body), remote.ErrProtocol},
		{"NIL", "* 1 FETCH (UID 1 BODY[]<20> NIL)\r\n", remote.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startScript(t, func(tag, verb, line string, w io.Writer) bool {
				if verb != "UID FETCH" {
					return false
				}
				io.WriteString(w, tc.reply+tag+" OK done\r\n")
				return true
			})
			a := scriptAccount(t, s, 2*time.Second)
			ref := remote.Ref{Folder: "INBOX", UIDValidity: 7, UID: 1, Key: "1"}
			if b, err := a.BodyRange(context.Background(), ref, 20, 10); !errors.Is(err, tc.want) {
				t.Errorf("BodyRange: got %q, %v; want %v", b, err, tc.want)
			}
			n, err := a.StreamRange(context.Background(), ref, 20, 10, 4, func([]byte) {})
			if !errors.Is(err, tc.want) || n != 0 {
				t.Errorf("StreamRange: %d bytes, %v; want none, %v", n, err, tc.want)
			}
		})
	}
}
