package pop3server

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Message is one message of the maildrop.
type Message struct {
	// UIDL is served verbatim by UIDL: 1 to 70 characters 0x21-0x7E (RFC
	// 1939), or with Options.LaxUIDL anything but CR and LF. Duplicates
	// are allowed, to test clients against them. An empty UIDL is
	// replaced by a generated one.
	UIDL string
	// Raw is the message as stored. It is served as it stands (bare LF
	// stays bare LF), except that a last line without a line ending gets
	// CRLF, as real servers do.
	Raw []byte
}

// Options configures a Server.
type Options struct {
	// Username and Password are the only account (default "demo"/"demo").
	Username, Password string
	// NoUIDL makes UIDL answer -ERR (and leaves it out of CAPA).
	NoUIDL bool
	// NoTOP makes TOP answer -ERR (and leaves it out of CAPA).
	NoTOP bool
	// APOP puts a timestamp in the greeting and accepts APOP.
	APOP bool
	// TLSConfig enables STLS, and implicit TLS on the listener ServeTLS
	// opens.
	TLSConfig *tls.Config
	// Timeout closes a connection that sends no command for this long
	// (default 1 minute).
	Timeout time.Duration

	// Misbehaviour, to test clients against broken or hostile servers.

	// EndlessRETR makes RETR and TOP send the data and then lines
	// forever, never the terminating ".".
	EndlessRETR bool
	// RETRPause makes RETR stop for this long after its status line and
	// the first line of data: a slow server, or a large message on a slow
	// link.
	RETRPause time.Duration
	// ListSizes replaces the LIST (and STAT) size of the messages with
	// these UIDLs: a server whose LIST lies.
	ListSizes map[string]int
	// LaxUIDL accepts UIDLs with any byte but CR and LF, spaces included,
	// which RFC 1939 forbids but some servers send.
	LaxUIDL bool
}

// Server is a running POP3 server on 127.0.0.1 with one maildrop.
type Server struct {
	Addr     string // 127.0.0.1:port
	Username string
	Password string

	opts Options

	mu     sync.Mutex // protects the fields below
	drop   []*stored
	nextID uint64
	locked bool // a session is in the TRANSACTION state
	lns    []net.Listener
	conns  map[net.Conn]struct{}
	closed bool

	done chan struct{}  // closed by Close: ends pauses
	wg   sync.WaitGroup // accept loops and connections
}

// stored is a message of the maildrop.
type stored struct {
	id   uint64
	uidl string
	raw  []byte // as added
	wire []byte // raw with the final line ending added if missing
}

// maxLine bounds a command line (RFC 2449 allows 255 octets).
const maxLine = 512

// Start serves msgs on a free port of 127.0.0.1.
func Start(msgs []Message, opts Options) (*Server, error) {
	if opts.Username == "" && opts.Password == "" {
		opts.Username, opts.Password = "demo", "demo"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = time.Minute
	}
	for _, m := range msgs {
		if err := checkUIDL(m.UIDL, opts.LaxUIDL); err != nil {
			return nil, err
		}
	}
	s := &Server{Username: opts.Username, Password: opts.Password, opts: opts, conns: map[net.Conn]struct{}{}, done: make(chan struct{})}
	s.Add(msgs...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("pop3server: listen: %w", err)
	}
	s.Addr = ln.Addr().String()
	s.serve(ln, false)
	return s, nil
}

// checkUIDL refuses a UIDL that POP3 cannot carry (lax: one that breaks
// the line it is sent on).
func checkUIDL(u string, lax bool) error {
	if lax {
		if strings.ContainsAny(u, "\r\n") {
			return fmt.Errorf("pop3server: UIDL %q has a line break", u)
		}
		return nil
	}
	if len(u) > 70 {
		return fmt.Errorf("pop3server: UIDL %q longer than 70 characters", u)
	}
	for i := 0; i < len(u); i++ {
		if u[i] < 0x21 || u[i] > 0x7e {
			return fmt.Errorf("pop3server: UIDL %q has a character outside 0x21-0x7E", u)
		}
	}
	return nil
}

// ServeTLS opens another listener on a free port of 127.0.0.1 that speaks
// implicit TLS (POP3S) with Options.TLSConfig, on the same maildrop, and
// returns its address.
func (s *Server) ServeTLS() (string, error) {
	if s.opts.TLSConfig == nil {
		return "", errors.New("pop3server: ServeTLS needs Options.TLSConfig")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("pop3server: listen: %w", err)
	}
	if !s.serve(ln, true) {
		return "", errors.New("pop3server: closed")
	}
	return ln.Addr().String(), nil
}

func (s *Server) serve(ln net.Listener, implicitTLS bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		ln.Close()
		return false
	}
	s.lns = append(s.lns, ln)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				c.Close()
				return
			}
			s.conns[c] = struct{}{}
			s.wg.Add(1)
			s.mu.Unlock()
			go func() {
				defer s.wg.Done()
				defer func() {
					s.mu.Lock()
					delete(s.conns, c)
					s.mu.Unlock()
					c.Close()
				}()
				s.handle(c, implicitTLS)
			}()
		}
	}()
	return true
}

// Close stops the listeners, closes every connection (uncommitted
// deletions are dropped) and waits for their goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	if !s.closed {
		close(s.done)
	}
	s.closed = true
	for _, ln := range s.lns {
		ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// Messages returns the maildrop (what committed deletions left), each
// message with its UIDL (generated ones included) and Raw as added.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.drop))
	for i, m := range s.drop {
		out[i] = Message{UIDL: m.uidl, Raw: bytes.Clone(m.raw)}
	}
	return out
}

// Add appends messages to the maildrop, behind any client's back: a
// session sees the maildrop as it was when it logged in. It panics on a
// UIDL that POP3 cannot carry.
func (s *Server) Add(msgs ...Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range msgs {
		if err := checkUIDL(m.UIDL, s.opts.LaxUIDL); err != nil {
			panic(err)
		}
		s.nextID++
		u := m.UIDL
		if u == "" {
			u = fmt.Sprintf("gen%08d", s.nextID)
		}
		raw := bytes.Clone(m.Raw)
		s.drop = append(s.drop, &stored{id: s.nextID, uidl: u, raw: raw, wire: wireForm(raw)})
	}
}

// Remove deletes every message with the UIDL from the maildrop, behind any
// client's back (a session that is open keeps serving it).
func (s *Server) Remove(uidl string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.drop[:0]
	for _, m := range s.drop {
		if m.uidl != uidl {
			kept = append(kept, m)
		}
	}
	clear(s.drop[len(kept):])
	s.drop = kept
}

// wireForm is raw as the server sends it before dot-stuffing: a last line
// without a line ending gets CRLF, since the terminating "." must start a
// line. LIST sizes count these bytes.
func wireForm(raw []byte) []byte {
	w := bytes.Clone(raw)
	if len(w) > 0 && w[len(w)-1] != '\n' {
		w = append(w, '\r', '\n')
	}
	return w
}

// session is one client connection.
type session struct {
	s    *Server
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	tls  bool

	greeting string // with the APOP timestamp, if any
	user     string // from USER
	msgs     []*stored
	deleted  []bool
	locked   bool // this session holds the maildrop lock
}

var errTooLong = errors.New("line too long")

func (s *Server) handle(c net.Conn, implicitTLS bool) {
	ss := &session{s: s, conn: c}
	if implicitTLS {
		tc := tls.Server(c, s.opts.TLSConfig)
		c.SetDeadline(time.Now().Add(s.opts.Timeout))
		if err := tc.Handshake(); err != nil {
			return
		}
		ss.conn, ss.tls = tc, true
	}
	defer ss.unlock()
	ss.r = bufio.NewReaderSize(ss.conn, 4096)
	ss.w = bufio.NewWriter(ss.conn)
	ss.greeting = "+OK mailfs pop3server ready"
	if s.opts.APOP {
		var b [8]byte
		rand.Read(b[:])
		ss.greeting += fmt.Sprintf(" <%s.%d@pop3server.invalid>", hex.EncodeToString(b[:]), time.Now().UnixNano())
	}
	if !ss.reply(ss.greeting) {
		return
	}
	for {
		ss.conn.SetDeadline(time.Now().Add(s.opts.Timeout))
		line, err := ss.readLine()
		if err == errTooLong {
			ss.reply("-ERR line too long")
			return
		}
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		if !ss.command(strings.ToUpper(verb), arg) {
			return
		}
	}
}

func (ss *session) readLine() (string, error) {
	line, err := ss.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull || len(line) > maxLine {
		return "", errTooLong
	}
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(line), "\r\n"), nil
}

// reply sends one line and flushes; false when the connection is gone.
func (ss *session) reply(line string) bool {
	ss.w.WriteString(line + "\r\n")
	return ss.w.Flush() == nil
}

func (ss *session) unlock() {
	if ss.locked {
		ss.s.mu.Lock()
		ss.s.locked = false
		ss.s.mu.Unlock()
		ss.locked = false
	}
}

// command runs one command; false ends the connection.
func (ss *session) command(verb, arg string) bool {
	o := &ss.s.opts
	if verb == "CAPA" {
		caps := []string{"USER", "RESP-CODES", "AUTH-RESP-CODE", "IMPLEMENTATION mailfs-pop3server"}
		if !o.NoTOP {
			caps = append(caps, "TOP")
		}
		if !o.NoUIDL {
			caps = append(caps, "UIDL")
		}
		if o.TLSConfig != nil && !ss.tls && !ss.locked {
			caps = append(caps, "STLS")
		}
		ss.w.WriteString("+OK capability list follows\r\n")
		for _, c := range caps {
			ss.w.WriteString(c + "\r\n")
		}
		return ss.reply(".")
	}
	if verb == "QUIT" {
		if ss.locked {
			ss.commit()
		}
		ss.reply("+OK bye")
		return false
	}
	if !ss.locked {
		return ss.authorization(verb, arg)
	}
	return ss.transaction(verb, arg)
}

func (ss *session) authorization(verb, arg string) bool {
	o := &ss.s.opts
	switch verb {
	case "STLS":
		if o.TLSConfig == nil || ss.tls {
			return ss.reply("-ERR STLS not available")
		}
		if !ss.reply("+OK begin TLS negotiation") {
			return false
		}
		if ss.r.Buffered() > 0 {
			return false // commands pipelined into the handshake
		}
		tc := tls.Server(ss.conn, o.TLSConfig)
		if err := tc.Handshake(); err != nil {
			return false
		}
		ss.conn, ss.tls = tc, true
		ss.r = bufio.NewReaderSize(tc, 4096)
		ss.w = bufio.NewWriter(tc)
		ss.user = ""
		return true
	case "USER":
		if arg == "" {
			return ss.reply("-ERR USER needs a name")
		}
		ss.user = arg
		return ss.reply("+OK send PASS")
	case "PASS":
		if ss.user == "" {
			return ss.reply("-ERR USER first")
		}
		user := ss.user
		ss.user = ""
		return ss.login(user == ss.s.Username && equal(arg, ss.s.Password))
	case "APOP":
		if !o.APOP {
			return ss.reply("-ERR APOP not supported")
		}
		name, digest, _ := strings.Cut(arg, " ")
		i := strings.IndexByte(ss.greeting, '<')
		sum := md5.Sum([]byte(ss.greeting[i:] + ss.s.Password))
		return ss.login(name == ss.s.Username && equal(strings.ToLower(digest), hex.EncodeToString(sum[:])))
	case "NOOP", "STAT", "LIST", "UIDL", "RETR", "TOP", "DELE", "RSET":
		return ss.reply("-ERR not logged in")
	}
	return ss.reply("-ERR unknown command")
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// login locks the maildrop and takes a snapshot of it.
func (ss *session) login(ok bool) bool {
	if !ok {
		return ss.reply("-ERR [AUTH] invalid user name or password")
	}
	s := ss.s
	s.mu.Lock()
	if s.locked {
		s.mu.Unlock()
		return ss.reply("-ERR [IN-USE] maildrop already locked by another session")
	}
	s.locked = true
	ss.locked = true
	ss.msgs = append([]*stored(nil), s.drop...)
	ss.deleted = make([]bool, len(ss.msgs))
	s.mu.Unlock()
	return ss.reply(fmt.Sprintf("+OK maildrop has %d messages", len(ss.msgs)))
}

// commit removes the messages marked deleted from the maildrop.
func (ss *session) commit() {
	s := ss.s
	gone := map[uint64]bool{}
	for i, m := range ss.msgs {
		if ss.deleted[i] {
			gone[m.id] = true
		}
	}
	s.mu.Lock()
	kept := s.drop[:0]
	for _, m := range s.drop {
		if !gone[m.id] {
			kept = append(kept, m)
		}
	}
	clear(s.drop[len(kept):])
	s.drop = kept
	s.locked = false
	s.mu.Unlock()
	ss.locked = false
}

// message parses a message number: the index into ss.msgs, or a reply.
func (ss *session) message(arg string) (int, string) {
	n, err := strconv.Atoi(arg)
	if err != nil || n < 1 || strings.HasPrefix(arg, "+") {
		return 0, "-ERR invalid message number"
	}
	if n > len(ss.msgs) {
		return 0, fmt.Sprintf("-ERR no message %d", n)
	}
	if ss.deleted[n-1] {
		return 0, fmt.Sprintf("-ERR message %d is deleted", n)
	}
	return n - 1, ""
}

func (ss *session) transaction(verb, arg string) bool {
	o := &ss.s.opts
	args := strings.Fields(arg)
	switch verb {
	case "NOOP":
		return ss.reply("+OK")
	case "RSET":
		clear(ss.deleted)
		return ss.reply("+OK")
	case "STAT":
		count, size := 0, 0
		for i := range ss.msgs {
			if !ss.deleted[i] {
				count++
				size += ss.listSize(i)
			}
		}
		return ss.reply(fmt.Sprintf("+OK %d %d", count, size))
	case "LIST", "UIDL":
		if verb == "UIDL" && o.NoUIDL {
			return ss.reply("-ERR unknown command")
		}
		item := func(i int) string {
			if verb == "UIDL" {
				return fmt.Sprintf("%d %s", i+1, ss.msgs[i].uidl)
			}
			return fmt.Sprintf("%d %d", i+1, ss.listSize(i))
		}
		if len(args) > 0 {
			i, e := ss.message(args[0])
			if e != "" {
				return ss.reply(e)
			}
			return ss.reply("+OK " + item(i))
		}
		ss.w.WriteString("+OK\r\n")
		for i := range ss.msgs {
			if !ss.deleted[i] {
				ss.w.WriteString(item(i) + "\r\n")
			}
		}
		return ss.reply(".")
	case "RETR", "TOP":
		if verb == "TOP" && o.NoTOP {
			return ss.reply("-ERR unknown command")
		}
		if len(args) != map[string]int{"RETR": 1, "TOP": 2}[verb] {
			return ss.reply("-ERR wrong number of arguments")
		}
		i, e := ss.message(args[0])
		if e != "" {
			return ss.reply(e)
		}
		data := ss.msgs[i].wire
		if verb == "TOP" {
			k, err := strconv.Atoi(args[1])
			if err != nil || k < 0 {
				return ss.reply("-ERR invalid line count")
			}
			data = top(data, k)
		}
		ss.w.WriteString(fmt.Sprintf("+OK %d octets\r\n", len(data)))
		if verb == "RETR" && o.RETRPause > 0 {
			first := len(data)
			if i := bytes.IndexByte(data, '\n'); i >= 0 {
				first = i + 1
			}
			writeStuffed(ss.w, data[:first])
			if ss.w.Flush() != nil {
				return false
			}
			select {
			case <-time.After(o.RETRPause):
			case <-ss.s.done:
				return false
			}
			ss.conn.SetDeadline(time.Now().Add(o.Timeout))
			data = data[first:]
		}
		writeStuffed(ss.w, data)
		if o.EndlessRETR {
			ss.endless()
			return false
		}
		return ss.reply(".")
	case "DELE":
		if len(args) != 1 {
			return ss.reply("-ERR DELE needs a message number")
		}
		i, e := ss.message(args[0])
		if e != "" {
			return ss.reply(e)
		}
		ss.deleted[i] = true
		return ss.reply(fmt.Sprintf("+OK message %d deleted", i+1))
	case "USER", "PASS", "APOP", "STLS":
		return ss.reply("-ERR already logged in")
	}
	return ss.reply("-ERR unknown command")
}

// listSize is what LIST says of message i: its size on the wire, unless
// Options.ListSizes says otherwise.
func (ss *session) listSize(i int) int {
	if n, ok := ss.s.opts.ListSizes[ss.msgs[i].uidl]; ok {
		return n
	}
	return len(ss.msgs[i].wire)
}

// endless sends lines until the client goes away or the server closes.
func (ss *session) endless() {
	line := []byte(strings.Repeat("endless ", 127) + "data\r\n") // 1 KiB
	block := bytes.Repeat(line, 64)
	for {
		select {
		case <-ss.s.done:
			return
		default:
		}
		ss.conn.SetDeadline(time.Now().Add(ss.s.opts.Timeout))
		if _, err := ss.w.Write(block); err != nil {
			return
		}
	}
}

// top is the header of msg (up to and including the empty line that ends
// it; all of msg if there is none) and the first k lines of the body.
func top(msg []byte, k int) []byte {
	end := 0
	for end < len(msg) {
		i := bytes.IndexByte(msg[end:], '\n')
		if i < 0 {
			return msg
		}
		line := msg[end : end+i+1]
		end += i + 1
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			break
		}
	}
	for ; k > 0 && end < len(msg); k-- {
		i := bytes.IndexByte(msg[end:], '\n')
		if i < 0 {
			return msg
		}
		end += i + 1
	}
	return msg[:end]
}

// writeStuffed writes data (whose last line ends with a line ending) with
// every line that starts with "." given one more "." (RFC 1939 section 3).
// Lines end at LF, so a bare-LF line is stuffed too.
func writeStuffed(w *bufio.Writer, data []byte) {
	for len(data) > 0 {
		if data[0] == '.' {
			w.WriteByte('.')
		}
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			w.Write(data)
			return
		}
		w.Write(data[:i+1])
		data = data[i+1:]
	}
}
