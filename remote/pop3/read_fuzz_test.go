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

// FuzzReadData feeds any bytes, as a server would send them, to the
// readers of a session: readData (the data of a multi-line answer) and
// readStatus (a status line). The bytes arrive in reads of chunk bytes (as
// over a network), through a bufio.Reader of the session's size or of
// bufio's minimum, so that lines straddle fills. Reading an in-memory
// stream always ends: at the terminator or at EOF.
//
// readData must give exactly what a line-by-line reading of RFC 1939 gives:
// the lines before the first "." line, each with its line ending and with
// one leading "." removed, and must leave everything after that line
// unread, so nothing from after the terminator gets into a message. Without
// a terminator it fails with ErrUnavailable and marks the session broken.
//
// The same bytes, taken as a message and dot-stuffed, must read back as
// themselves (with the CRLF a server adds to a last line without one).
func FuzzReadData(f *testing.F) {
	long := strings.Repeat("z", 100)
	for _, s := range []string{
		".\r\n",
		"a\r\n.\r\nRETR-NEXT",
		"..\r\n...\r\n.x\r\n. \r\n.\r\n",
		"bare\nlf\n.dot\n.\n",
		"cr\rinside\r\n.\r\n",
		"." + long + "\r\n" + long + ".\r\n.\r\n",
		"x\r\n.\r\n.\r\n",
		"Subject: hi\r\n\r\nbody\r\n.\r\n+OK next\r\n",
		"no terminator\r\n",
		"a\r\n.",
		"a\r\n.\r",
		"",
		"+OK 99999999999999 octets\r\n" + long + "\r\n.\r\n",
		"-ERR [IN-USE] locked\r\n",
		"nul\x00byte\r\n.\r\n",
	} {
		f.Add([]byte(s), uint8(0), false)
		f.Add([]byte(s), uint8(3), true)
	}
	f.Fuzz(func(t *testing.T, wire []byte, chunk uint8, small bool) {
		size := 64 << 10 // as a session reads
		if small {
			size = 16
		}
		n := 1 + int(chunk)%64

		// readData against the line-by-line reading.
		s := fuzzSession(wire, n, size)
		got, err := s.readData("RETR", 0)
		rest, _ := io.ReadAll(s.br)
		want, wantRest, ok := unstuff(wire)
		switch {
		case ok && err != nil:
			t.Fatalf("readData(%q): got error %v, want %q", wire, err, want)
		case ok && (!bytes.Equal(got, want) || !bytes.Equal(rest, wantRest)):
			t.Fatalf("readData(%q): got %q, leaving %q; want %q, leaving %q", wire, got, rest, want, wantRest)
		case !ok && err == nil:
			t.Fatalf("readData(%q): got %q and no error, want an error (no terminator)", wire, got)
		case !ok && (!errors.Is(err, remote.ErrUnavailable) || !s.broken):
			t.Fatalf("readData(%q): got %v (broken %v), want ErrUnavailable and a broken session", wire, err, s.broken)
		}

		// Dot-stuffing undone is the inverse of dot-stuffing.
		msg := wire
		wantMsg := msg
		if len(msg) > 0 && msg[len(msg)-1] != '\n' {
			wantMsg = append(bytes.Clone(msg), '\r', '\n')
		}
		s = fuzzSession(append(stuff(msg), ".\r\n+OK next\r\n"...), n, size)
		got, err = s.readData("RETR", 0)
		rest, _ = io.ReadAll(s.br)
		if err != nil || !bytes.Equal(got, wantMsg) || string(rest) != "+OK next\r\n" {
			t.Fatalf("message %q stuffed: got %q, %v, leaving %q; want %q, leaving %q", msg, got, err, rest, wantMsg, "+OK next\r\n")
		}

		// readStatus reads one line and no more.
		s = fuzzSession(wire, n, size)
		status, err := s.readStatus("RETR")
		rest, _ = io.ReadAll(s.br)
		line, after, full := bytes.Cut(wire, []byte("\n"))
		var re *respError
		switch {
		case err == nil:
			text := strings.TrimRight(string(line), "\r")
			if !full || len(line)+1 > maxLine || !(text == "+OK" || strings.HasPrefix(text, "+OK ")) {
				t.Fatalf("readStatus(%q): got %q and no error, want an error", wire, status)
			}
			if strings.Contains(status, "\n") || !strings.HasSuffix(text, status) {
				t.Fatalf("readStatus(%q): got %q, not the text of line %q", wire, status, line)
			}
			if !bytes.Equal(rest, after) {
				t.Fatalf("readStatus(%q): left %q, want %q", wire, rest, after)
			}
		case errors.As(err, &re):
			if !bytes.HasPrefix(line, []byte("-ERR")) || strings.ContainsFunc(re.Error(), isControl) {
				t.Fatalf("readStatus(%q): got %q, want -ERR's text on one line", wire, re.Error())
			}
			if !bytes.Equal(rest, after) {
				t.Fatalf("readStatus(%q): left %q, want %q", wire, rest, after)
			}
		case !errors.Is(err, remote.ErrProtocol) && !errors.Is(err, remote.ErrUnavailable):
			t.Fatalf("readStatus(%q): got %v, want ErrProtocol or ErrUnavailable", wire, err)
		case !s.broken:
			t.Fatalf("readStatus(%q): got %v, session not marked broken", wire, err)
		case strings.ContainsAny(err.Error(), "\r\n"):
			t.Fatalf("readStatus(%q): got %q, want one line", wire, err)
		}
	})
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// fuzzSession is a session reading wire in reads of at most chunk bytes
// through a bufio.Reader of size bytes.
func fuzzSession(wire []byte, chunk, size int) *session {
	a := &Account{cfg: Config{Addr: "fuzz:110"}}
	return &session{a: a, br: bufio.NewReaderSize(&chunkReader{b: wire, n: chunk}, size)}
}

// chunkReader hands out b in reads of at most n bytes, as a network
// connection would.
type chunkReader struct {
	b []byte
	n int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), r.n)], r.b)
	r.b = r.b[k:]
	return k, nil
}

// unstuff reads wire line by line as RFC 1939 says: the data up to the
// first line that is only ".", with the leading "." of other lines
// removed, and what follows that line. ok is false without such a line.
func unstuff(wire []byte) (data, rest []byte, ok bool) {
	data = []byte{}
	for len(wire) > 0 {
		i := bytes.IndexByte(wire, '\n')
		if i < 0 {
			break
		}
		line := wire[:i+1]
		wire = wire[i+1:]
		if string(line) == ".\r\n" || string(line) == ".\n" {
			return data, wire, true
		}
		data = append(data, bytes.TrimPrefix(line, []byte("."))...)
	}
	return nil, nil, false
}

// stuff is what a server sends for msg: every line starting with "." gets
// another, and a last line without a line ending gets CRLF.
func stuff(msg []byte) []byte {
	var out []byte
	for len(msg) > 0 {
		line := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line = msg[:i+1]
		}
		msg = msg[len(line):]
		if line[0] == '.' {
			out = append(out, '.')
		}
		out = append(out, line...)
		if line[len(line)-1] != '\n' {
			out = append(out, '\r', '\n')
		}
	}
	return out
}
