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

	// keys maps a UIDL to its message number in this session (the first
	// message with that UIDL); nil until UIDL has run.
	keys map[string]int
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
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

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
		return &respError{cmd: cmd, text: clean(strings.TrimSpace(string(text)))}
	}
	s.broken = true
	return fmt.Errorf("pop3: %s: %s: %w: malformed reply: %s", s.a.cfg.Addr, cmd, remote.ErrProtocol, clean(err.Error()))
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

// startTLS asks for the server's capabilities, requires STLS among them,
// and switches to TLS (RFC 2595). It never goes on in plain text.
func (s *session) startTLS(ctx context.Context) error {
	addr := s.a.cfg.Addr
	caps, err := s.multi("CAPA")
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
		re.text = s.redact(re.text)
		return fmt.Errorf("pop3: %s: login as %q: %w: %w", cfg.Addr, cfg.Username, remote.ErrUnavailable, re)
	case errors.As(err, &re):
		// The server's text, never our password.
		return fmt.Errorf("pop3: %s: login as %q: %w: %s", cfg.Addr, cfg.Username, remote.ErrAuth, s.redact(re.text))
	}
	return err
}

// redact removes the password from server text, in case a server echoes it.
func (s *session) redact(text string) string {
	if p := s.a.cfg.Password; len(p) >= 3 {
		text = strings.ReplaceAll(text, p, "***")
	}
	return text
}

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
		return "", &respError{cmd: cmd, text: clean(strings.TrimSpace(text[4:]))}
	}
	s.broken = true
	return "", fmt.Errorf("pop3: %s: %s: %w: unexpected reply %q", s.a.cfg.Addr, cmd, remote.ErrProtocol, clean(text))
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
// dot-stuffing undone, line endings as sent.
func (s *session) multi(line string) ([]byte, error) {
	name := strings.Fields(line)[0]
	status, err := s.cmd(line)
	if err != nil {
		return nil, err
	}
	data, err := s.readData(name, sizeHint(status))
	if err != nil {
		return nil, err
	}
	return data, s.inSync(name)
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

// maxMessage bounds what one RETR may hold in memory.
const maxMessage = 1 << 30

// readData reads the data of a multi-line response up to the terminating
// ".\r\n" line, which it consumes. Exactly the bytes of each line as sent
// are kept, its line ending included (CRLF, or a bare LF from a server that
// sends one); a line of any length is kept whole; the first "." of a line
// starting with "." is the stuffing and is removed (RFC 1939 section 3). The
// line ending before the terminator belongs to the last line, so a message
// whose last line had no line ending comes back with the CRLF that the
// server had to add.
//
// go-pop3's ReadAll cannot be used for this: it turns every bare LF into
// CRLF and buffers a whole line of any length.
func (s *session) readData(cmd string, hint int) ([]byte, error) {
	out := make([]byte, 0, hint)
	atStart := true
	for {
		frag, err := s.br.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, s.ioError(cmd, err)
		}
		full := err == nil // frag ends a line
		if atStart && len(frag) > 0 && frag[0] == '.' {
			if full && (string(frag) == ".\r\n" || string(frag) == ".\n") {
				return out, nil
			}
			frag = frag[1:]
		}
		out = append(out, frag...)
		atStart = full
		if len(out) > maxMessage {
			s.broken = true
			return nil, fmt.Errorf("pop3: %s: %s: %w: more than %d bytes", s.a.cfg.Addr, cmd, remote.ErrProtocol, maxMessage)
		}
	}
}

// loadKeys runs UIDL once per session and maps each UIDL to its number.
// Duplicates keep their first number.
func (s *session) loadKeys() ([]gopop3.MessageID, error) {
	ids, err := s.pc.Uidl(0)
	if err != nil {
		err = s.libError("UIDL", err)
		var re *respError
		if errors.As(err, &re) {
			return nil, fmt.Errorf("pop3: %s does not support UIDL (%s); mailfs needs stable message names: %w", s.a.cfg.Addr, re.text, remote.ErrProtocol)
		}
		return nil, err
	}
	if err := s.inSync("UIDL"); err != nil {
		return nil, err
	}
	s.keys = make(map[string]int, len(ids))
	for _, id := range ids {
		if _, dup := s.keys[id.UID]; dup {
			s.a.log.Warn("pop3: duplicate UIDL, only its first message is shown", "addr", s.a.cfg.Addr, "uidl", id.UID, "message", id.ID)
			continue
		}
		s.keys[id.UID] = id.ID
	}
	return ids, nil
}

// number returns the message number of key in this session.
func (s *session) number(key string) (int, bool, error) {
	if s.keys == nil {
		if _, err := s.loadKeys(); err != nil {
			return 0, false, err
		}
	}
	n, ok := s.keys[key]
	return n, ok, nil
}

// quit ends the session with QUIT (which commits DELEs) and closes it.
func (s *session) quit() error {
	err := s.pc.Quit() // closes the connection
	s.raw.Close()
	if err != nil {
		return s.libError("QUIT", err)
	}
	return nil
}

// close drops the connection without QUIT: nothing is committed.
func (s *session) close() {
	s.broken = true
	s.raw.Close()
}
