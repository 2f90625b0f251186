package pop3

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"mailfs/remote"
)

// sessionOn is a session whose reader reads wire through a buffer of size
// bytes (bufio's minimum is 16), so that lines straddle fills.
func sessionOn(wire string, size int) *session {
	a := &Account{cfg: Config{Addr: "test:110"}}
	return &session{a: a, br: bufio.NewReaderSize(strings.NewReader(wire), size)}
}

func TestReadData(t *testing.T) {
	long := strings.Repeat("z", 100)
	for _, tc := range []struct{ wire, want, rest string }{
		{".\r\n", "", ""},
		{"a\r\n.\r\nRETR-NEXT", "a\r\n", "RETR-NEXT"},
		{"..\r\n...\r\n.x\r\n. \r\n.\r\n", ".\r\n..\r\nx\r\n \r\n", ""},
		{"bare\nlf\n.dot\n.\n", "bare\nlf\ndot\n", ""}, // a bare-LF terminator is taken too
		{"cr\rinside\r\n.\r\n", "cr\rinside\r\n", ""},
		{"." + long + "\r\n" + long + ".\r\n.\r\n", long + "\r\n" + long + ".\r\n", ""},
		{long + "\r\n.\r\n", long + "\r\n", ""},
		{"x\r\n.\r\n.\r\n", "x\r\n", ".\r\n"},
	} {
		for _, size := range []int{16, 4096} {
			s := sessionOn(tc.wire, size)
			got, err := s.readData("RETR", 0)
			if err != nil || string(got) != tc.want {
				t.Errorf("%q (buffer %d): got %q, %v; want %q", tc.wire, size, got, err, tc.want)
			}
			rest, _ := io.ReadAll(s.br)
			if string(rest) != tc.rest {
				t.Errorf("%q (buffer %d): left %q, want %q", tc.wire, size, rest, tc.rest)
			}
		}
	}
	for _, wire := range []string{"", "a\r\n", "a\r\n.", "a\r\n.\r", long} {
		s := sessionOn(wire, 16)
		if _, err := s.readData("RETR", 0); !errors.Is(err, remote.ErrUnavailable) || !strings.Contains(err.Error(), "unexpected EOF") {
			t.Errorf("%q: got %v, want ErrUnavailable (unexpected EOF)", wire, err)
		}
		if !s.broken {
			t.Errorf("%q: session not marked broken", wire)
		}
	}
}

func TestGate(t *testing.T) {
	s := sessionOn("+OK\r\n1 a\r\n.\r\n+OK "+strings.Repeat("x", maxLine)+"\r\n", 1<<16)
	g := &gate{br: s.br}
	g.replay([]byte("+OK greeting\r\n"))
	r := bufio.NewReader(g)
	var lines []string
	for range 4 {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, l)
		// go-pop3's reader never holds more than the line it reads.
		if r.Buffered() != 0 {
			t.Fatalf("%d bytes buffered beyond %q", r.Buffered(), l)
		}
	}
	if got := strings.Join(lines, ""); got != "+OK greeting\r\n+OK\r\n1 a\r\n.\r\n" {
		t.Errorf("lines %q", got)
	}
	if string(g.last) != "." {
		t.Errorf("last %q", g.last)
	}
	if _, err := r.ReadString('\n'); !errors.Is(err, errLineTooLong) || !errors.Is(g.err, errLineTooLong) {
		t.Errorf("long line: %v", err)
	}
}

func TestHeaderFields(t *testing.T) {
	in := "Received: from x\r\n\tby y\r\nSubject: hi\r\n there\r\nX-Subject: no\r\nfrom : a@b\r\nTO: c@d\r\nMessage-ID: <m@x>\r\nDate: now\r\nCc: e\r\n\r\nSubject: body\r\n"
	want := "Subject: hi\r\n there\r\nfrom : a@b\r\nTO: c@d\r\nMessage-ID: <m@x>\r\nDate: now\r\nCc: e\r\n\r\n"
	if got := headerFields([]byte(in)); string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// No empty line (TOP of a message without a body), no final newline.
	if got := headerFields([]byte("Subject: x\nFrom: y")); string(got) != "Subject: x\nFrom: y\r\n\r\n" {
		t.Errorf("got %q", got)
	}
	if got := headerFields(nil); !bytes.Equal(got, []byte("\r\n")) {
		t.Errorf("empty: %q", got)
	}
}

func TestAPOPTimestamp(t *testing.T) {
	for greeting, want := range map[string]string{
		"POP3 server ready <1896.697170952@dbc.mtview.ca.us>": "<1896.697170952@dbc.mtview.ca.us>",
		"Dovecot ready.": "",
		"broken <no end": "",
		"a <x> and <y>":  "<x>",
	} {
		if got := apopTimestamp(greeting); got != want {
			t.Errorf("%q: got %q, want %q", greeting, got, want)
		}
	}
}
