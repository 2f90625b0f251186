package pop3

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	gopop3 "github.com/knadh/go-pop3"

	"mailfs/internal/deadline"
	"mailfs/remote"
)

// session is one POP3 session: connected, authenticated, in the
// TRANSACTION state. Message numbers are only valid inside it.
type session struct {
	a       *Account
	raw     net.Conn       // the TCP connection
	dc      *deadline.Conn // raw with deadlines
	conn    net.Conn       // dc, or the TLS connection over it
	br      *bufio.Reader  // reads conn; shared with go-pop3 through g
	g       *gate
	pc      *gopop3.Conn
	started time.Time
	broken  bool  // an I/O or protocol failure: close, never reuse
	ioErr   error // the I/O failure, if that is what broke it
	// handed is set once the running operation wrote message data to a
	// caller's writer: it cannot be repeated in another session.
	handed bool
	// deleting marks a session that Delete runs: its view of the maildrop
	// is about to change, so it is not offered to List (see Account.view).
	deleting bool

	// keys maps a UIDL to its message number in this session (the first
	// message with that UIDL), sizes a message number to its LIST size,
	// rows is the listing (UIDL order, messages LIST lacks left out); nil
	// until loadKeys has run.
	keys  map[string]int
	sizes map[int]int64
	rows  []remote.MessageInfo
}

// respError is a server's "-ERR" answer: the session stays usable.
type respError struct {
	cmd  string
	text string
}

func (e *respError) Error() string {
	if e.text == "" {
		return e.cmd + " refused"
	}
	return e.cmd + " refused: " + e.text
}

// code reports whether the answer carries the RFC 2449 response code, e.g.
// "IN-USE" for "-ERR [IN-USE] locked".
func (e *respError) code(c string) bool {
	return strings.HasPrefix(strings.ToUpper(e.text), "["+c+"]") ||
		strings.HasPrefix(strings.ToUpper(e.text), "["+c+"/")
}

// temporary reports a refusal that is about the server's state, not about
// the request: the maildrop is locked or the server has trouble.
func (e *respError) temporary() bool {
	return e.code("IN-USE") || e.code("LOGIN-DELAY") || e.code("SYS")
}

// clean makes server text fit in a one-line error message.
func clean(s string) string { return remote.ServerText(s, "") }

// ioError wraps a failure below POP3 (the connection broke, timed out or was
// cancelled) as remote.ErrUnavailable.
func (s *session) ioError(cmd string, err error) error {
	s.broken = true
	if s.ioErr == nil {
		s.ioErr = err
	}
	if errors.Is(err, errLineTooLong) {
		return fmt.Errorf("pop3: %s: %s: %w: %v", s.a.cfg.Addr, cmd, remote.ErrProtocol, err)
	}
	return fmt.Errorf("pop3: %s: %s: %w: %v", s.a.cfg.Addr, cmd, remote.ErrUnavailable, err)
}

// dead reports whether the session broke because the server had closed the
// connection (as it does with an idle one after its autologout time), not
// because it stopped answering.
func (s *session) dead() bool {
	err := s.ioErr
	return err != nil && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE))
}

// libError classifies an error from a go-pop3 call, which gives "-ERR"
// answers and broken connections alike as plain strings (see gate).
func (s *session) libError(cmd string, err error) error {
	if err == nil {
		return nil
	}
	if s.g.err != nil {
		return s.ioError(cmd, s.g.err)
	}
	if text, ok := bytes.CutPrefix(s.g.last, []byte("-ERR")); ok {
		return &respError{cmd: cmd, text: s.text(strings.TrimSpace(string(text)))}
	}
	s.broken = true
	return fmt.Errorf("pop3: %s: %s: %w: malformed reply: %s", s.a.cfg.Addr, cmd, remote.ErrProtocol, s.text(err.Error()))
}

// inSync fails when the server sent more than the answer to cmd: POP3 is
// strictly request and response (this package never pipelines), so bytes
// left over mean the session has lost track of which answer is which.
func (s *session) inSync(cmd string) error {
	if s.br.Buffered() > 0 {
		s.broken = true
		return fmt.Errorf("pop3: %s: %s: %w: the server sent more than its answer", s.a.cfg.Addr, cmd, remote.ErrProtocol)
	}
	return nil
}

// open connects, protects the connection as configured, reads the greeting
// and logs in. The caller holds the account's session slot.
func (a *Account) open(ctx context.Context) (*session, error) {
	dialCtx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(dialCtx, "tcp", a.cfg.Addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("pop3: connect to %s: %w: %v", a.cfg.Addr, remote.ErrUnavailable, err)
	}
	s := &session{a: a, raw: raw, dc: deadline.New(raw, a.cfg.Timeout, false), started: time.Now()}
	s.conn = s.dc
	end := s.dc.Begin(ctx)
	defer end()
	if err := s.setup(ctx); err != nil {
		raw.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return s, nil
}

func (s *session) setup(ctx context.Context) error {
	cfg := &s.a.cfg
	if cfg.TLS == TLSImplicit {
		if err := s.handshake(ctx); err != nil {
			return err
		}
	}
	s.br = bufio.NewReaderSize(s.conn, 64<<10)
	greeting, err := s.readStatus("greeting")
	var re *respError
	if errors.As(err, &re) {
		return fmt.Errorf("pop3: %s refused the connection: %w: %s", cfg.Addr, remote.ErrUnavailable, re.text)
	}
	if err != nil {
		return err
	}
	if cfg.TLS == TLSStartTLS {
		if err := s.startTLS(ctx); err != nil {
			return err
		}
	}

	// From here on go-pop3 drives the simple commands, through the gate.
	s.g = &gate{Conn: s.conn, br: s.br}
	s.g.replay([]byte("+OK " + greeting + "\r\n"))
	host, port := hostPort(cfg.Addr)
	s.pc, err = gopop3.New(gopop3.Opt{Host: host, Port: port, Dialer: gateDialer{s.g}}).NewConn()
	if err != nil {
		return s.libError("greeting", err)
	}
	return s.login(greeting)
}

func hostPort(addr string) (string, int) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 0
	}
	port, _ := strconv.Atoi(p)
	return host, port
}

// handshake runs a TLS client handshake over the connection.
func (s *session) handshake(ctx context.Context) error {
	cfg := s.a.cfg.TLSConfig
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
		cfg = cfg.Clone()
		cfg.ServerName, _ = hostPort(s.a.cfg.Addr)
	}
	tc := tls.Client(s.dc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		s.broken = true
		return fmt.Errorf("pop3: %s: %w: %v", s.a.cfg.Addr, remote.ErrTLS, err)
	}
	s.conn = tc
	return nil
}

// maxCapa bounds a CAPA answer.
const maxCapa = 64 << 10

// startTLS asks for the server's capabilities, requires STLS among them,
// and switches to TLS (RFC 2595). It never goes on in plain text.
func (s *session) startTLS(ctx context.Context) error {
	addr := s.a.cfg.Addr
	caps, err := s.multi("CAPA", maxCapa, -1)
	var re *respError
	if errors.As(err, &re) {
		return fmt.Errorf("pop3: %s does not offer STLS (CAPA %s): %w: not falling back to plain text", addr, re.text, remote.ErrTLS)
	}
	if err != nil {
		return err
	}
	offered := false
	for _, line := range bytes.Split(caps, []byte("\n")) {
		if f := strings.Fields(string(line)); len(f) > 0 && strings.EqualFold(f[0], "STLS") {
			offered = true
		}
	}
	if !offered {
		return fmt.Errorf("pop3: %s does not offer STLS: %w: not falling back to plain text", addr, remote.ErrTLS)
	}
	if _, err := s.cmd("STLS"); err != nil {
		if errors.As(err, &re) {
			return fmt.Errorf("pop3: %s refused STLS (%s): %w: not falling back to plain text", addr, re.text, remote.ErrTLS)
		}
		return err
	}
	if s.br.Buffered() > 0 {
		// Bytes sent before the handshake would be taken as protected
		// (the STARTTLS injection attack).
		s.broken = true
		return fmt.Errorf("pop3: %s: %w: the server sent data after accepting STLS", addr, remote.ErrTLS)
	}
	if err := s.handshake(ctx); err != nil {
		return err
	}
	s.br = bufio.NewReaderSize(s.conn, 64<<10)
	return nil
}

// login authenticates with USER/PASS or APOP. Retries on a locked maildrop
// are the caller's.
func (s *session) login(greeting string) error {
	cfg := &s.a.cfg
	var err error
	switch cfg.Auth {
	case AuthUser:
		if err = s.pc.User(cfg.Username); err == nil {
			err = s.pc.Pass(cfg.Password)
		}
		err = s.libError("USER/PASS", err)
		if err == nil {
			err = s.inSync("PASS")
		}
	case AuthAPOP:
		ts := apopTimestamp(greeting)
		if ts == "" {
			return fmt.Errorf("pop3: %s: APOP: the server's greeting has no timestamp, so it does not offer APOP: %w; use auth = \"user\"", cfg.Addr, remote.ErrProtocol)
		}
		sum := md5.Sum([]byte(ts + cfg.Password))
		_, err = s.pc.Cmd("APOP", false, cfg.Username, hex.EncodeToString(sum[:]))
		err = s.libError("APOP", err)
		if err == nil {
			err = s.inSync("APOP")
		}
	}
	var re *respError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &re) && re.temporary():
		// re.text is the server's text without our password (s.text).
		return fmt.Errorf("pop3: %s: login as %q: %w: %w", cfg.Addr, cfg.Username, remote.ErrUnavailable, re)
	case errors.As(err, &re):
		// The server's text, never our password (s.text).
		return fmt.Errorf("pop3: %s: login as %q: %w: %s", cfg.Addr, cfg.Username, remote.ErrAuth, re.text)
	}
	return err
}

// text makes server text fit for an error message, the password blanked
// (before it is shortened, so that no part of it is left).
func (s *session) text(t string) string { return remote.ServerText(t, s.a.cfg.Password) }

// apopTimestamp returns the <...> timestamp of an APOP greeting, or "".
func apopTimestamp(greeting string) string {
	i := strings.IndexByte(greeting, '<')
	if i < 0 {
		return ""
	}
	j := strings.IndexByte(greeting[i:], '>')
	if j < 0 {
		return ""
	}
	return greeting[i : i+j+1]
}

// send writes one command line.
func (s *session) send(line string) error {
	if _, err := io.WriteString(s.conn, line+"\r\n"); err != nil {
		return s.ioError(strings.Fields(line)[0], err)
	}
	return nil
}

// readStatus reads a status line: the text after "+OK", a *respError for
// "-ERR", a protocol error for anything else.
func (s *session) readStatus(cmd string) (string, error) {
	line, err := s.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull || len(line) > maxLine {
		err = errLineTooLong
	}
	if err != nil {
		return "", s.ioError(cmd, err)
	}
	text := strings.TrimRight(string(line), "\r\n")
	switch {
	case text == "+OK" || strings.HasPrefix(text, "+OK "):
		return strings.TrimPrefix(strings.TrimPrefix(text, "+OK"), " "), nil
	case text == "-ERR" || strings.HasPrefix(text, "-ERR "):
		return "", &respError{cmd: cmd, text: s.text(strings.TrimSpace(text[4:]))}
	}
	s.broken = true
	return "", fmt.Errorf("pop3: %s: %s: %w: unexpected reply %q", s.a.cfg.Addr, cmd, remote.ErrProtocol, s.text(text))
}

// cmd sends a command and reads its status line (the data of a multi-line
// answer follows it).
func (s *session) cmd(line string) (string, error) {
	if err := s.send(line); err != nil {
		return "", err
	}
	return s.readStatus(strings.Fields(line)[0])
}

// multi sends a command with a multi-line answer and returns the data,
// dot-stuffing undone, line endings as sent; more than limit bytes of data
// are a protocol error (listed: as for multiTo).
func (s *session) multi(line string, limit, listed int64) ([]byte, error) {
	var buf sliceWriter // multiTo preallocates it
	if _, err := s.multiTo(line, &buf, limit, listed); err != nil {
		return nil, err
	}
	return buf.b, nil
}

// multiTo sends a command with a multi-line answer and writes the data to w
// as it arrives (see readDataTo). listed is the message's LIST size, for
// the error message (-1: none).
func (s *session) multiTo(line string, w io.Writer, limit, listed int64) (int64, error) {
	name := strings.Fields(line)[0]
	status, err := s.cmd(line)
	if err != nil {
		return 0, err
	}
	if sw, ok := w.(*sliceWriter); ok && sw.b == nil {
		sw.b = make([]byte, 0, min(int64(sizeHint(status)), limit+1))
	}
	n, err := s.readDataTo(name, w, limit, listed)
	if err != nil {
		return n, err
	}
	return n, s.inSync(name)
}

// sliceWriter collects what is written to it.
type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// sizeHint reads the size from "+OK 1234 octets" (as Dovecot and others
// answer RETR), for preallocation only.
func sizeHint(status string) int {
	f := strings.Fields(status)
	if len(f) == 0 {
		return 0
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n < 0 {
		return 0
	}
	return min(n, 16<<20) + 64
}

// Bounds on what one RETR or TOP may send. A server that never sends the
// terminating "." (or lies in LIST) is stopped once the data passes
// twice the message's LIST size plus slack (a LIST size may leave out the
// CRLF a server adds at the end, or count LF line endings it sends as
// CRLF), and never reads past maxMessage.
const (
	maxMessage = 1 << 30
	sizeSlack  = 1 << 20
)

// limitFor is the most data a RETR or TOP of a message whose LIST size is
// listed may send.
func limitFor(listed int64) int64 {
	if listed < 0 || listed > (maxMessage-sizeSlack)/2 {
		return maxMessage
	}
	return 2*listed + sizeSlack
}

// readData is readDataTo into memory, bounded by maxMessage.
func (s *session) readData(cmd string, hint int) ([]byte, error) {
	w := sliceWriter{b: make([]byte, 0, hint)}
	if _, err := s.readDataTo(cmd, &w, maxMessage, -1); err != nil {
		return nil, err
	}
	return w.b, nil
}

// readDataTo reads the data of a multi-line response up to the terminating
// ".\r\n" line, which it consumes, and writes it to w as it arrives; it
// returns the bytes written. Exactly the bytes of each line as sent are
// kept, its line ending included (CRLF, or a bare LF from a server that
// sends one); a line of any length is kept whole; the first "." of a line
// starting with "." is the stuffing and is removed (RFC 1939 section 3).
// The line ending before the terminator belongs to the last line, so a
// message whose last line had no line ending comes back with the CRLF that
// the server had to add.
//
// Data beyond limit bytes is a protocol error (listed, the LIST size, is
// named in it when known): the session is broken, never reused. So is a
// session whose writer failed, since the rest of the answer is unread; the
// writer's error is returned as it is.
//
// go-pop3's ReadAll cannot be used for this: it turns every bare LF into
// CRLF and buffers a whole line of any length.
func (s *session) readDataTo(cmd string, w io.Writer, limit, listed int64) (int64, error) {
	var total int64
	atStart := true
	for {
		frag, err := s.br.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return total, s.ioError(cmd, err)
		}
		full := err == nil // frag ends a line
		if atStart && len(frag) > 0 && frag[0] == '.' {
			if full && (string(frag) == ".\r\n" || string(frag) == ".\n") {
				return total, nil
			}
			frag = frag[1:]
		}
		atStart = full
		if total+int64(len(frag)) > limit {
			s.broken = true
			if listed >= 0 && limit < maxMessage {
				return total, fmt.Errorf("pop3: %s: %s: %w: more than %d bytes of a message whose LIST size is %d; the server does not end it",
					s.a.cfg.Addr, cmd, remote.ErrProtocol, limit, listed)
			}
			return total, fmt.Errorf("pop3: %s: %s: %w: more than %d bytes", s.a.cfg.Addr, cmd, remote.ErrProtocol, limit)
		}
		if len(frag) == 0 {
			continue
		}
		n, werr := w.Write(frag)
		total += int64(n)
		if werr == nil && n < len(frag) {
			werr = io.ErrShortWrite
		}
		if werr != nil {
			s.broken = true // the rest of the answer is unread
			return total, werr
		}
	}
}

// maxMessages bounds the lines of a UIDL or LIST listing: a server that
// lists more is not believed.
const maxMessages = 1 << 20

// maxUIDL is the longest UIDL kept (RFC 1939 allows 70 characters): a
// message's file name is its UIDL.
const maxUIDL = 250

// loadKeys runs UIDL and, with list, LIST, once per session, and records
// each UIDL's message number (duplicates keep their first number), each
// number's LIST size and the listing they make; see parseUIDL for the
// UIDLs that are refused. The listing becomes the account's view of the
// maildrop. Delete needs no LIST: it runs UIDL alone.
func (s *session) loadKeys(list bool) error {
	addr := s.a.cfg.Addr
	var ids []uidlRow
	numbers := map[int]bool{}
	err := s.listing("UIDL", func(line []byte) error {
		n, uidl, problem, err := parseUIDL(line)
		switch {
		case err != nil:
			return fmt.Errorf("pop3: %s: UIDL: %w: %v", addr, remote.ErrProtocol, err)
		case problem != "":
			s.a.log.Warn("pop3: message skipped: "+problem, "addr", addr, "message", n, "uidl", clean(string(line)))
			return nil
		case numbers[n]:
			s.a.log.Warn("pop3: message listed twice by UIDL, its first UIDL kept", "addr", addr, "message", n, "uidl", uidl)
			return nil
		}
		numbers[n] = true
		if strings.Contains(uidl, " ") && s.a.spaceNoted.CompareAndSwap(false, true) {
			s.a.log.Info("pop3: the server's UIDLs contain spaces (RFC 1939 forbids them); each is kept whole as the message's name", "addr", addr, "uidl", uidl)
		}
		ids = append(ids, uidlRow{n, uidl})
		return nil
	})
	if err != nil {
		var re *respError
		if errors.As(err, &re) {
			return fmt.Errorf("pop3: %s does not support UIDL (%s); mailfs needs stable message names: %w", addr, re.text, remote.ErrProtocol)
		}
		return err
	}
	s.keys = make(map[string]int, len(ids))
	for _, id := range ids {
		if _, dup := s.keys[id.uidl]; dup {
			s.a.log.Warn("pop3: duplicate UIDL, only its first message is shown", "addr", addr, "uidl", id.uidl, "message", id.n)
			continue
		}
		s.keys[id.uidl] = id.n
	}
	if !list {
		return nil
	}
	sizes := make(map[int]int64, len(ids))
	err = s.listing("LIST", func(line []byte) error {
		n, size, err := parseScan(line)
		if err != nil {
			return fmt.Errorf("pop3: %s: LIST: %w: %v", addr, remote.ErrProtocol, err)
		}
		if _, dup := sizes[n]; !dup {
			sizes[n] = size
		}
		return nil
	})
	var re *respError
	if errors.As(err, &re) {
		return fmt.Errorf("pop3: %s: LIST: %s: %w", addr, re, remote.ErrProtocol)
	}
	if err != nil {
		return err
	}
	s.sizes = sizes
	s.rows = make([]remote.MessageInfo, 0, len(ids))
	for _, id := range ids {
		if s.keys[id.uidl] != id.n {
			continue // a duplicate UIDL, logged above
		}
		size, ok := sizes[id.n]
		if !ok {
			s.a.log.Warn("pop3: message in UIDL but not in LIST, skipped", "addr", addr, "uidl", id.uidl, "message", id.n)
			continue
		}
		s.rows = append(s.rows, remote.MessageInfo{Key: id.uidl, Size: size})
	}
	if !s.deleting {
		s.a.setView(s)
	}
	return nil
}

type uidlRow struct {
	n    int
	uidl string
}

// listing sends cmd (UIDL or LIST without an argument) and calls fn with
// each line of the answer, line ending and dot-stuffing removed. Lines are
// bounded by maxLine, their number by maxMessages.
func (s *session) listing(cmd string, fn func(line []byte) error) error {
	if _, err := s.cmd(cmd); err != nil {
		return err
	}
	for count := 0; ; count++ {
		line, err := s.br.ReadSlice('\n')
		switch {
		case err == bufio.ErrBufferFull || (err == nil && len(line) > maxLine):
			return s.ioError(cmd, errLineTooLong)
		case err == io.EOF:
			return s.ioError(cmd, io.ErrUnexpectedEOF)
		case err != nil:
			return s.ioError(cmd, err)
		}
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		if len(line) > 0 && line[0] == '.' {
			if len(line) == 1 {
				return s.inSync(cmd)
			}
			line = line[1:]
		}
		if count >= maxMessages {
			s.broken = true
			return fmt.Errorf("pop3: %s: %s: %w: more than %d messages listed", s.a.cfg.Addr, cmd, remote.ErrProtocol, maxMessages)
		}
		if err := fn(line); err != nil {
			s.broken = true
			return err
		}
	}
}

// parseNumber parses the message number that starts a listing line and
// returns the rest of the line after it.
func parseNumber(line []byte) (int, []byte, error) {
	i := 0
	for i < len(line) && line[i] >= '0' && line[i] <= '9' {
		i++
	}
	n, err := strconv.Atoi(string(line[:i]))
	if err != nil || n < 1 {
		return 0, nil, fmt.Errorf("bad message number in %q", clean(string(line)))
	}
	return n, line[i:], nil
}

// parseUIDL parses a line of a UIDL listing: the message number, one
// space, the UIDL. The UIDL is everything after that space, kept whole
// even where it holds spaces (which RFC 1939 forbids), so that no two
// messages can end up with one name. A UIDL that is empty, longer than
// maxUIDL or holds a control character cannot name a file: problem says
// so and the message is skipped. err is for a line that is not a UIDL
// line at all.
func parseUIDL(line []byte) (n int, uidl, problem string, err error) {
	n, rest, err := parseNumber(line)
	if err != nil {
		return 0, "", "", err
	}
	if len(rest) > 0 && rest[0] != ' ' {
		return 0, "", "", fmt.Errorf("bad message number in %q", clean(string(line)))
	}
	if len(rest) > 0 {
		rest = rest[1:]
	}
	switch {
	case len(rest) == 0:
		return n, "", "its UIDL is empty", nil
	case len(rest) > maxUIDL:
		return n, "", fmt.Sprintf("its UIDL is longer than %d bytes", maxUIDL), nil
	case bytes.ContainsFunc(rest, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return n, "", "its UIDL holds a control character", nil
	}
	return n, string(rest), "", nil
}

// parseScan parses a line of a LIST listing: the message number, a space,
// the size; RFC 1939 allows anything after that.
func parseScan(line []byte) (int, int64, error) {
	n, rest, err := parseNumber(line)
	if err != nil {
		return 0, 0, err
	}
	f := bytes.Fields(rest)
	if len(rest) == 0 || rest[0] != ' ' || len(f) == 0 {
		return 0, 0, fmt.Errorf("no size in %q", clean(string(line)))
	}
	size, err := strconv.ParseInt(string(f[0]), 10, 64)
	if err != nil || size < 0 || f[0][0] == '+' {
		return 0, 0, fmt.Errorf("bad size in %q", clean(string(line)))
	}
	return n, size, nil
}

// number returns the message number of key in this session and its LIST
// size; ok is false for a key the session does not list.
func (s *session) number(key string) (n int, size int64, ok bool, err error) {
	if s.sizes == nil {
		if err := s.loadKeys(true); err != nil {
			return 0, 0, false, err
		}
	}
	n, ok = s.keys[key]
	if !ok {
		return 0, 0, false, nil
	}
	size, ok = s.sizes[n]
	return n, size, ok, nil
}

// quit ends the session with QUIT (which commits DELEs) and closes it.
func (s *session) quit() error {
	s.a.dropView(s)
	err := s.pc.Quit() // closes the connection
	s.raw.Close()
	if err != nil {
		return s.libError("QUIT", err)
	}
	return nil
}

// close drops the connection without QUIT: nothing is committed.
func (s *session) close() {
	s.a.dropView(s)
	s.broken = true
	s.raw.Close()
}
