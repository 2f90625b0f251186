package imap

import (
	"bytes"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mailfs/internal/deadline"
	"mailfs/remote"
)

// The guard sits between the (decrypted) connection and imapclient and
// reads what the server sends the way a careful client must:
//
//   - A response line (its text outside literals) may be at most maxLine
//     bytes: a server that sends an endless line fails the connection
//     instead of growing memory without bound.
//   - A literal may be large only in a FETCH response, where mailfs reads it
//     against what it asked for; elsewhere (a folder name in LIST) it may be
//     at most maxSmallLiteral. Each literal announced moves the command's
//     overall deadline by its size at minRate.
//   - A folder name that go-imap could not decode (not modified UTF-7, a
//     control character: go-imap would fail the whole connection on it) is
//     replaced, in LIST, LSUB and STATUS responses, by a valid encoding of a
//     lenient reading of it; commands naming that folder get the server's
//     own bytes back (Account.rawNames). The folder list survives one bad
//     name, and the folder can still be opened.
const (
	maxLine         = 16 << 20
	maxSmallLiteral = 1 << 20
	// minRate is the slowest transfer of literal data a command's overall
	// deadline allows for.
	minRate = 64 << 10
)

var errLineTooLong = fmt.Errorf("imap: the server sent a response line of more than %d bytes: %w", maxLine, remote.ErrProtocol)

// guard is a net.Conn that checks and rewrites what the server sends (see
// above). Its Read is called by imapclient's reader goroutine only; Write
// by whichever goroutine holds the connection.
type guard struct {
	net.Conn
	dc *deadline.Conn // for extending the deadline by announced literals
	a  *Account

	// Read side.
	buf     []byte       // read from the connection, not yet looked at
	out     bytes.Buffer // looked at, for imapclient
	atStart bool         // at the start of a response line
	head    []byte       // the start of a line, until it says what it is
	fetch   bool         // the line is a FETCH response
	capture *bytes.Buffer
	lineLen int    // bytes of the line outside literals
	tail    []byte // the last bytes of the line since its last literal
	lit     int64  // literal bytes still to come
	err     error

	// Write side.
	wlit int64 // literal bytes of a command still to pass unchanged
}

func newGuard(c net.Conn, dc *deadline.Conn, a *Account) *guard {
	return &guard{Conn: c, dc: dc, a: a, atStart: true, buf: make([]byte, 0, 32<<10)}
}

func (g *guard) Read(p []byte) (int, error) {
	for g.out.Len() == 0 {
		if g.err != nil {
			return 0, g.err
		}
		n, err := g.Conn.Read(g.buf[:cap(g.buf)])
		if n > 0 {
			if perr := g.scan(g.buf[:n]); perr != nil {
				g.err = perr
				g.Conn.Close()
			}
		}
		if err != nil && g.err == nil {
			g.err = err
		}
	}
	return g.out.Read(p)
}

// emit passes looked-at bytes on, or holds them with the line captured.
func (g *guard) emit(b []byte) error {
	if g.capture != nil {
		if g.capture.Len()+len(b) > maxLine+maxSmallLiteral {
			return errLineTooLong
		}
		g.capture.Write(b)
		return nil
	}
	g.out.Write(b)
	return nil
}

// scan looks at bytes as they arrive.
func (g *guard) scan(b []byte) error {
	for len(b) > 0 {
		if g.lit > 0 {
			k := int(min(g.lit, int64(len(b))))
			if err := g.emit(b[:k]); err != nil {
				return err
			}
			g.lit -= int64(k)
			b = b[k:]
			continue
		}
		if g.atStart {
			// Hold the first bytes until they say whether the line is a
			// FETCH, or a LIST, LSUB or STATUS to capture.
			i := bytes.IndexByte(b, '\n')
			take := len(b)
			if i >= 0 {
				take = i + 1
			}
			take = min(take, 24-len(g.head))
			g.head = append(g.head, b[:take]...)
			b = b[take:]
			if len(g.head) < 24 && g.head[len(g.head)-1] != '\n' {
				continue
			}
			g.atStart = false
			kind := lineKind(g.head)
			g.fetch = kind == "FETCH"
			if kind == "LIST" || kind == "LSUB" || kind == "STATUS" {
				g.capture = &bytes.Buffer{}
			}
			head := g.head
			g.head = nil
			g.lineLen = 0
			// The head goes through the line rules below.
			if err := g.line(head); err != nil {
				return err
			}
			continue
		}
		i := bytes.IndexByte(b, '\n')
		seg := b
		if i >= 0 {
			seg = b[:i+1]
		}
		b = b[len(seg):]
		if err := g.line(seg); err != nil {
			return err
		}
	}
	return nil
}

// line takes bytes of a line outside literals, up to and including its
// LF if there is one.
func (g *guard) line(seg []byte) error {
	g.lineLen += len(seg)
	if g.lineLen > maxLine {
		return errLineTooLong
	}
	if err := g.emit(seg); err != nil {
		return err
	}
	g.tail = append(g.tail, seg[max(0, len(seg)-32):]...)
	if len(g.tail) > 32 {
		g.tail = append(g.tail[:0], g.tail[len(g.tail)-32:]...)
	}
	if len(seg) == 0 || seg[len(seg)-1] != '\n' {
		return nil
	}
	tail := g.tail
	g.tail = g.tail[:0]
	// A line ending "{N}\r\n" announces a literal; the response goes on
	// after it.
	if n, ok := literalAt(tail); ok {
		if !g.fetch && n > maxSmallLiteral {
			return fmt.Errorf("imap: the server announced a literal of %d bytes outside a FETCH response: %w", n, remote.ErrProtocol)
		}
		g.lit = n
		if n > 0 {
			g.dc.Extend(time.Duration(n) * time.Second / minRate)
		}
		return nil
	}
	// The end of the response.
	if g.capture != nil {
		line := g.capture.Bytes()
		g.capture = nil
		g.out.Write(g.a.fixNames(line))
	}
	g.atStart, g.fetch = true, false
	return nil
}

// literalAt parses "{N}\r\n" (or "{N+}", or a literal8's "~{N}") at the end
// of b.
func literalAt(b []byte) (int64, bool) {
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) < 3 || b[len(b)-1] != '}' {
		return 0, false
	}
	open := bytes.LastIndexByte(b, '{')
	if open < 0 {
		return 0, false
	}
	num := bytes.TrimSuffix(b[open+1:len(b)-1], []byte("+"))
	n, err := strconv.ParseInt(string(num), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// lineKind returns "FETCH", "LIST", "LSUB", "STATUS" for those untagged
// responses, "" for any other line.
func lineKind(head []byte) string {
	f := strings.Fields(string(head))
	if len(f) < 2 || f[0] != "*" {
		return ""
	}
	switch k := strings.ToUpper(f[1]); k {
	case "LIST", "LSUB", "STATUS":
		return k
	}
	if len(f) >= 3 && strings.HasPrefix(strings.ToUpper(f[2]), "FETCH") {
		return "FETCH"
	}
	return ""
}

// Write passes a command on, with the server's own bytes for a folder
// name that reached imapclient rewritten (fixNames); literal data passes
// unchanged. It follows the literals the commands announce, to tell the
// two apart.
func (g *guard) Write(p []byte) (int, error) {
	rewrite := g.a.hasRawNames()
	var out []byte
	for rest := p; len(rest) > 0; {
		var seg []byte
		if g.wlit > 0 {
			k := min(g.wlit, int64(len(rest)))
			seg, rest = rest[:k], rest[k:]
			g.wlit -= k
		} else {
			i := bytes.IndexByte(rest, '\n')
			if i < 0 {
				i = len(rest) - 1 // the rest of a line
			}
			seg, rest = rest[:i+1], rest[i+1:]
			if rewrite {
				seg = g.a.rawCommand(seg)
			}
			if seg[len(seg)-1] == '\n' {
				if n, ok := literalAt(seg); ok {
					g.wlit = n
				}
			}
		}
		if rewrite {
			out = append(out, seg...)
		}
	}
	if !rewrite {
		return g.Conn.Write(p)
	}
	if _, err := g.Conn.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// rawName is a folder name the server sent that go-imap could not take.
type rawName struct {
	wire    string // the token as the server sent it (atom or quoted string)
	encoded string // the quoted string go-imap sends for the lenient name
}

// nameMap holds the folder names the guard rewrote, by the name
// imapclient was given.
type nameMap struct {
	mu    sync.Mutex // protects names
	names map[string]rawName
	n     atomic.Int32 // len(names), read without the lock on every write
}

func (a *Account) hasRawNames() bool { return a.raw.n.Load() > 0 }

// fixNames rewrites the folder name of a LIST, LSUB or STATUS response
// when go-imap could not decode it.
func (a *Account) fixNames(line []byte) []byte {
	start, end, value, ok := mailboxToken(line)
	if !ok {
		return line
	}
	if _, ok := decodeUTF7(value); ok || strings.EqualFold(value, "INBOX") {
		return line
	}
	name := lenientUTF7(value)
	encoded := quoteIMAP(encodeUTF7(name))
	wire := string(line[start:end])
	a.raw.mu.Lock()
	if a.raw.names == nil {
		a.raw.names = map[string]rawName{}
	}
	_, seen := a.raw.names[name]
	a.raw.names[name] = rawName{wire: wire, encoded: encoded}
	a.raw.n.Store(int32(len(a.raw.names)))
	a.raw.mu.Unlock()
	if !seen {
		a.log.Warn("imap: a folder name is not valid modified UTF-7; shown as decoded leniently",
			"raw", strconv.Quote(value), "shown", strconv.Quote(name))
	}
	out := make([]byte, 0, len(line)+len(encoded))
	out = append(out, line[:start]...)
	out = append(out, encoded...)
	return append(out, line[end:]...)
}

// rawCommand puts the server's own bytes back for every rewritten folder
// name in a command line.
func (a *Account) rawCommand(seg []byte) []byte {
	a.raw.mu.Lock()
	defer a.raw.mu.Unlock()
	for _, r := range a.raw.names {
		if strings.HasPrefix(r.wire, "{") {
			continue // a literal: cannot be put back in one line
		}
		seg = bytes.ReplaceAll(seg, []byte(" "+r.encoded), []byte(" "+r.wire))
	}
	return seg
}

// quoteIMAP writes s as an IMAP quoted string.
func quoteIMAP(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// mailboxToken finds the folder name of "* LIST (...) delim name ...",
// "* LSUB ..." or "* STATUS name (...)": the token's bounds in line and
// its value.
func mailboxToken(line []byte) (start, end int, value string, ok bool) {
	p := &tokenizer{b: line}
	if !p.word("*") {
		return 0, 0, "", false
	}
	kind := strings.ToUpper(p.atom())
	switch kind {
	case "LIST", "LSUB":
		if !p.sp() || !p.skipList() || !p.sp() {
			return 0, 0, "", false
		}
		if _, _, _, ok := p.astring(); !ok { // the delimiter, or NIL
			return 0, 0, "", false
		}
		if !p.sp() {
			return 0, 0, "", false
		}
	case "STATUS":
		if !p.sp() {
			return 0, 0, "", false
		}
	default:
		return 0, 0, "", false
	}
	return p.astring()
}

// tokenizer reads the few IMAP tokens mailboxToken needs.
type tokenizer struct {
	b []byte
	i int
}

func (p *tokenizer) word(w string) bool {
	if !bytes.HasPrefix(p.b[p.i:], []byte(w+" ")) {
		return false
	}
	p.i += len(w) + 1
	return true
}

func (p *tokenizer) sp() bool {
	if p.i < len(p.b) && p.b[p.i] == ' ' {
		p.i++
		return true
	}
	return false
}

func (p *tokenizer) atom() string {
	j := p.i
	for j < len(p.b) && !strings.ContainsRune(" ()\r\n{\"", rune(p.b[j])) {
		j++
	}
	s := string(p.b[p.i:j])
	p.i = j
	return s
}

// skipList skips a parenthesized list without nesting (LIST attributes).
func (p *tokenizer) skipList() bool {
	if p.i >= len(p.b) || p.b[p.i] != '(' {
		return false
	}
	j := bytes.IndexByte(p.b[p.i:], ')')
	if j < 0 {
		return false
	}
	p.i += j + 1
	return true
}

// astring reads an atom, quoted string or literal.
func (p *tokenizer) astring() (start, end int, value string, ok bool) {
	start = p.i
	if p.i >= len(p.b) {
		return 0, 0, "", false
	}
	switch p.b[p.i] {
	case '"':
		var v []byte
		for j := p.i + 1; j < len(p.b); j++ {
			switch c := p.b[j]; c {
			case '\\':
				if j+1 < len(p.b) {
					j++
					v = append(v, p.b[j])
				}
			case '"':
				p.i = j + 1
				return start, p.i, string(v), true
			case '\r', '\n':
				return 0, 0, "", false
			default:
				v = append(v, c)
			}
		}
		return 0, 0, "", false
	case '{':
		j := bytes.IndexByte(p.b[p.i:], '\n')
		if j < 0 {
			return 0, 0, "", false
		}
		n, ok := literalAt(p.b[p.i : p.i+j+1])
		data := p.i + j + 1
		if !ok || int64(len(p.b)-data) < n {
			return 0, 0, "", false
		}
		p.i = data + int(n)
		return start, p.i, string(p.b[data:p.i]), true
	}
	a := p.atom()
	if a == "" {
		return 0, 0, "", false
	}
	return start, p.i, a, true
}
