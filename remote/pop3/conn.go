package pop3

import (
	"bufio"
	"bytes"
	"errors"
	"net"
)

// maxLine bounds a status line or a line of a UIDL or LIST listing
// (RFC 2449 allows 512 octets for a response line).
const maxLine = 8192

var errLineTooLong = errors.New("response line too long")

// gate is the net.Conn go-pop3 talks through. It shares the session's
// buffered reader with the commands mailfs reads itself (RETR, TOP), and
// hands go-pop3 at most one line per Read, so go-pop3's own bufio.Reader
// never holds bytes beyond the line it is parsing: at every response
// boundary all unread input is in the session's reader, and either side can
// read the next response.
//
// It also remembers the last line it delivered and the first I/O error, so
// that an error from go-pop3 (a plain string for "-ERR" answers and broken
// connections alike) can be told apart: a server's "-ERR" leaves the
// session usable, a transport failure does not.
type gate struct {
	net.Conn // writes and Close go to the session's connection
	br       *bufio.Reader

	pending []byte // the rest of the line being delivered
	line    []byte // buffer behind pending
	last    []byte // the last complete line delivered, without CRLF
	err     error  // first read or write error
}

func (g *gate) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if len(g.pending) == 0 {
		line, err := g.br.ReadSlice('\n')
		switch {
		case err == bufio.ErrBufferFull || (err == nil && len(line) > maxLine):
			g.err = errLineTooLong
			return 0, g.err
		case err != nil:
			g.err = err
			return 0, err
		}
		g.line = append(g.line[:0], line...)
		g.pending = g.line
		g.last = bytes.TrimRight(g.line, "\r\n")
	}
	n := copy(p, g.pending)
	g.pending = g.pending[n:]
	return n, nil
}

func (g *gate) Write(p []byte) (int, error) {
	n, err := g.Conn.Write(p)
	if err != nil && g.err == nil {
		g.err = err
	}
	return n, err
}

// replay makes the next Read return line (the greeting, already read by the
// session) before anything from the connection.
func (g *gate) replay(line []byte) {
	g.line = append(g.line[:0], line...)
	g.pending = g.line
	g.last = bytes.TrimRight(g.line, "\r\n")
}

// gateDialer is go-pop3's Opt.Dialer: it "dials" by handing over the session's
// connection, already connected, protected (implicit TLS or STLS) and greeted.
type gateDialer struct{ g *gate }

func (d gateDialer) Dial(network, address string) (net.Conn, error) { return d.g, nil }
