package pop3

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mailfs/remote"
)

// TLS modes (Config.TLS).
const (
	TLSImplicit = "implicit" // TLS from the first byte (port 995)
	TLSStartTLS = "starttls" // CAPA, STLS, then TLS (port 110); never plain
	TLSNone     = "none"     // plain text
)

// Auth mechanisms (Config.Auth).
const (
	AuthUser = "user" // USER and PASS
	AuthAPOP = "apop" // APOP with the greeting's timestamp
)

// Config is what Dial needs. Password is only ever sent to the server.
type Config struct {
	Addr      string // host:port
	TLS       string // "implicit" (default), "starttls" or "none"
	TLSConfig *tls.Config
	Username  string
	Password  string
	Auth      string // "user" (default) or "apop"
	// Timeout fails a command that makes no progress for this long
	// (default 30 s).
	Timeout time.Duration
	Logger  *slog.Logger
}

const (
	// idleWindow is how long a session is kept open after an operation, for
	// the next one to use: reading a directory of messages costs one login,
	// not one per message.
	idleWindow = 2 * time.Second
	// maxSessionAge bounds how long one session serves reads: its view of
	// the maildrop is from its start, and a server that locks the maildrop
	// keeps other clients out while it is open.
	maxSessionAge = 30 * time.Second
	// inUseWait is how long a login waits for a maildrop that another client
	// has locked (at most Timeout).
	inUseWait = 5 * time.Second
	// listWait is how long List waits for the session slot before it
	// answers from the view of the session that holds it.
	listWait = 200 * time.Millisecond
)

// Account is a remote.Account on a POP3 maildrop: one folder, INBOX.
type Account struct {
	cfg Config
	log *slog.Logger

	slot chan struct{} // one session at a time: POP3 servers lock the maildrop

	mu      sync.Mutex // protects the fields below
	parked  *session   // open, unused session; taken by whoever holds slot
	timer   *time.Timer
	gen     uint64         // counts parkings; an idle timer expires its own only
	pending sync.WaitGroup // timer callbacks armed or running
	closed  bool
	// view is the open session (holding the slot, or parked) whose UIDL
	// and LIST have run, unless it is a deleting one: its listing is the
	// maildrop as the server shows it while that session lasts. nil once
	// the session ends. viewSet is closed (and replaced) whenever view is
	// set, waking Lists that wait for one.
	view    *session
	viewSet chan struct{}

	noTOP      atomic.Bool // TOP failed where RETR worked: use RETR for headers
	spaceNoted atomic.Bool // UIDLs with spaces were logged once
}

var (
	_ remote.Account      = (*Account)(nil)
	_ remote.Deleter      = (*Account)(nil)
	_ remote.BodyStreamer = (*Account)(nil)
)

// errStale asks for an operation to be tried again in a fresh session.
var errStale = errors.New("stale session")

// Dial logs in once, so that a wrong password or an unreachable server is
// an error at mount time, and QUITs.
func Dial(ctx context.Context, cfg Config) (*Account, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.TLS == "" {
		cfg.TLS = TLSImplicit
	}
	if cfg.Auth == "" {
		cfg.Auth = AuthUser
	}
	switch cfg.TLS {
	case TLSImplicit, TLSStartTLS, TLSNone:
	default:
		return nil, fmt.Errorf("pop3: unknown tls mode %q (want implicit, starttls or none)", cfg.TLS)
	}
	switch cfg.Auth {
	case AuthUser, AuthAPOP:
	default:
		return nil, fmt.Errorf("pop3: unknown auth %q (want user or apop)", cfg.Auth)
	}
	if strings.ContainsAny(cfg.Username+cfg.Password, "\r\n\x00") {
		return nil, fmt.Errorf("pop3: the user name or password contains a line break or NUL, which POP3 cannot send: %w", remote.ErrAuth)
	}
	if cfg.Auth == AuthAPOP && strings.Contains(cfg.Username, " ") {
		return nil, fmt.Errorf("pop3: APOP cannot send a user name with a space: %w; use auth = \"user\"", remote.ErrAuth)
	}
	a := &Account{cfg: cfg, log: cfg.Logger, slot: make(chan struct{}, 1), viewSet: make(chan struct{})}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s, err := a.login(ctx)
	if err != nil {
		return nil, err
	}
	// Nothing stays open after the mount-time check, which the login has
	// passed: a failed QUIT does not matter.
	end := s.dc.Begin(ctx)
	if err := s.quit(); err != nil {
		a.log.Debug("pop3: QUIT after the login check", "addr", a.cfg.Addr, "err", err)
	}
	end()
	return a, nil
}

type useMode int

const (
	useRead   useMode = iota // the parked session if any; parked after
	useFresh                 // a fresh session; parked after
	useDelete                // a fresh session that fn ends with QUIT
)

// do runs fn in a session, holding the account's only session slot. A
// session that fails below POP3 is closed, never reused. fn gets reused =
// true in a parked session: there, errStale or a connection the server has
// closed make do try once more in a fresh session (reads only, and only
// while no data went to the caller's writer).
func (a *Account) do(ctx context.Context, op string, mode useMode, fn func(s *session, reused bool) error) error {
	return a.doWithin(ctx, 0, op, mode, fn)
}

// minRate is the slowest transfer a RETR's overall limit allows for.
const minRate = 64 << 10

// doWithin is do that waits at most wait (0: as long as ctx lasts) for the
// session slot: a read through the mount must not wait behind a
// background download for longer than the timeout, which is as long as it
// would wait for a server that does not answer.
func (a *Account) doWithin(ctx context.Context, wait time.Duration, op string, mode useMode, fn func(s *session, reused bool) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case a.slot <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-timeout:
		return fmt.Errorf("pop3: %s: the maildrop is busy with another transfer (the background download): %w", op, remote.ErrUnavailable)
	}
	defer func() { <-a.slot }()
	return a.run(ctx, op, mode, fn)
}

// run is do for a caller that holds the slot.
func (a *Account) run(ctx context.Context, op string, mode useMode, fn func(s *session, reused bool) error) error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return fmt.Errorf("pop3: %s: account closed: %w", op, remote.ErrUnavailable)
	}
	s := a.takeParked()
	a.mu.Unlock()
	if s != nil && (mode != useRead || time.Since(s.started) > maxSessionAge) {
		// A fresh session must not meet our own old one at a server that
		// locks the maildrop.
		a.quitParked(s)
		s = nil
	}

	var err error
	for {
		reused := s != nil
		if s == nil {
			if s, err = a.login(ctx); err != nil {
				return err
			}
			s.deleting = mode == useDelete
		}
		s.handed = false
		end := s.dc.Begin(ctx)
		// Besides the timeout without progress, an overall limit (a
		// server that trickles bytes), extended by what a RETR is
		// announced to carry (fetch).
		s.dc.SetLimit(4 * a.cfg.Timeout)
		err = fn(s, reused)
		end()
		if reused && !s.handed && ctx.Err() == nil && (errors.Is(err, errStale) || s.dead()) {
			// The parked session's view of the maildrop is too old, or the
			// server dropped it while it was idle. (A server that stopped
			// answering is not asked again: that would double the time
			// the caller waits for the error.)
			a.log.Debug("pop3: parked session stale, starting a fresh one", "op", op, "err", err)
			if s.broken {
				s.close()
			} else {
				a.quitParked(s)
			}
			s = nil
			continue
		}
		break
	}
	switch {
	case mode == useDelete || s.broken || ctx.Err() != nil:
		s.close() // after a Delete fn has QUIT already
	default:
		a.park(s)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// login opens a session, waiting a little for a maildrop that another
// client has locked.
func (a *Account) login(ctx context.Context) (*session, error) {
	deadline := time.Now().Add(min(a.cfg.Timeout, inUseWait))
	delay := 100 * time.Millisecond
	for {
		s, err := a.open(ctx)
		var re *respError
		if err == nil || !errors.As(err, &re) || !re.code("IN-USE") || time.Now().Add(delay).After(deadline) {
			return s, err
		}
		a.log.Debug("pop3: maildrop in use, retrying", "addr", a.cfg.Addr)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		delay = min(2*delay, time.Second)
	}
}

// takeParked takes the parked session, if any; a.mu is held.
func (a *Account) takeParked() *session {
	s := a.parked
	a.parked = nil
	a.gen++
	if a.timer != nil && a.timer.Stop() {
		a.pending.Done()
	}
	a.timer = nil
	return s
}

// park keeps s open for idleWindow; the caller holds the slot.
func (a *Account) park(s *session) {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		a.quitParked(s)
		return
	}
	a.parked = s
	a.gen++
	gen := a.gen
	a.pending.Add(1)
	a.timer = time.AfterFunc(idleWindow, func() {
		defer a.pending.Done()
		a.expire(gen)
	})
	a.mu.Unlock()
}

// expire QUITs the parked session when it has been idle for idleWindow. If
// the slot is taken, its holder has the session or will park it again.
func (a *Account) expire(gen uint64) {
	select {
	case a.slot <- struct{}{}:
	default:
		return
	}
	defer func() { <-a.slot }()
	a.mu.Lock()
	if a.gen != gen {
		a.mu.Unlock()
		return
	}
	s := a.parked
	a.parked, a.timer = nil, nil
	a.mu.Unlock()
	if s != nil {
		a.quitParked(s)
	}
}

// quitParked ends a session that has nothing to commit, with QUIT (bounded
// by the timeout) so that the server unlocks the maildrop at once.
func (a *Account) quitParked(s *session) {
	end := s.dc.Begin(context.Background())
	err := s.quit()
	end()
	if err != nil {
		a.log.Debug("pop3: QUIT of an idle session", "addr", a.cfg.Addr, "err", err)
	}
}

// setView makes s's listing the account's view of the maildrop.
func (a *Account) setView(s *session) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.view = s
	close(a.viewSet)
	a.viewSet = make(chan struct{})
}

// dropView forgets s's listing as it ends.
func (a *Account) dropView(s *session) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.view == s {
		a.view = nil
	}
}

// Folders implements remote.Account: a POP3 maildrop is one folder, INBOX.
func (a *Account) Folders(ctx context.Context) ([]remote.Folder, error) {
	return []remote.Folder{{Name: "INBOX", Path: []string{"INBOX"}}}, nil
}

func checkFolder(folder string) error {
	if !strings.EqualFold(folder, "INBOX") {
		return fmt.Errorf("pop3: folder %q: %w (a POP3 account has only INBOX)", folder, remote.ErrNotFound)
	}
	return nil
}

// List implements remote.Account with UIDL and LIST in one fresh session.
// Keys are the UIDLs, in the server's order; sizes are LIST's; UID,
// UIDValidity and Date are zero (POP3 has none of them).
//
// A listing never waits behind a long operation (the background download
// of a large message): when the session slot stays busy for listWait, List
// answers with the listing of the session holding it, from its UIDL and
// LIST, which is the maildrop as the server shows it while that session
// locks it. It waits on only while the session has not listed yet (a
// login), or deletes.
func (a *Account) List(ctx context.Context, folder string) (*remote.Listing, error) {
	if err := checkFolder(folder); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	timer := time.NewTimer(listWait)
	defer timer.Stop()
	waited := false
	for acquired := false; !acquired; {
		a.mu.Lock()
		view, set := a.view, a.viewSet
		a.mu.Unlock()
		if waited && view != nil {
			a.log.Debug("pop3: session busy, listing from its view of the maildrop", "addr", a.cfg.Addr, "age", time.Since(view.started).Round(time.Millisecond))
			return &remote.Listing{Messages: slices.Clone(view.rows)}, nil
		}
		tc := timer.C
		if waited {
			tc = nil
		}
		select {
		case a.slot <- struct{}{}:
			acquired = true
		case <-tc:
			waited = true
		case <-set:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	defer func() { <-a.slot }()
	lst := &remote.Listing{}
	err := a.run(ctx, "list", useFresh, func(s *session, reused bool) error {
		if err := s.loadKeys(true); err != nil {
			return err
		}
		lst.Messages = slices.Clone(s.rows)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return lst, nil
}

// fetch runs a multi-line command (RETR or TOP) for the message named
// ref.Key in a session: UIDL gives its number in that session, LIST its
// size, which bounds the data (limitFor).
func (a *Account) fetch(ctx context.Context, op string, ref remote.Ref, wait time.Duration, fn func(s *session, n int, size int64) error) error {
	if err := checkFolder(ref.Folder); err != nil {
		return err
	}
	return a.doWithin(ctx, wait, op, useRead, func(s *session, reused bool) error {
		n, size, ok, err := s.number(ref.Key)
		if err != nil {
			return err
		}
		if !ok {
			if reused {
				return errStale // perhaps newer than the session
			}
			return fmt.Errorf("pop3: INBOX/%s: %w", ref.Key, remote.ErrNotFound)
		}
		s.dc.Extend(time.Duration(size) * time.Second / minRate)
		err = fn(s, n, size)
		var re *respError
		switch {
		case errors.As(err, &re) && reused:
			return errStale // perhaps deleted by another client since
		case errors.As(err, &re) && re.temporary():
			return fmt.Errorf("pop3: INBOX/%s: %s: %w", ref.Key, re, remote.ErrUnavailable)
		case errors.As(err, &re):
			return fmt.Errorf("pop3: INBOX/%s: %s: %w", ref.Key, re, remote.ErrNotFound)
		}
		return err
	})
}

// Body implements remote.Account with RETR: the message as the server sends
// it, dot-stuffing undone, line endings as sent, and with the CRLF that ends
// the last line before the terminating "." (which a server adds to a
// message stored without a final line ending; Dovecot's LIST size does not
// count it).
func (a *Account) Body(ctx context.Context, ref remote.Ref) ([]byte, error) {
	var out []byte
	err := a.fetch(ctx, "body", ref, a.cfg.Timeout, func(s *session, n int, size int64) error {
		var err error
		out, err = s.multi("RETR "+strconv.Itoa(n), limitFor(size), size)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// StreamBody implements remote.BodyStreamer: what Body returns, written to
// w as RETR delivers it (in pieces of up to 64 KiB), never held whole.
func (a *Account) StreamBody(ctx context.Context, ref remote.Ref, w io.Writer) (int64, error) {
	var written int64
	err := a.fetch(ctx, "body", ref, 0, func(s *session, n int, size int64) error {
		hw := &handWriter{w: w, s: s}
		bw := bufio.NewWriterSize(hw, 64<<10)
		_, err := s.multiTo("RETR "+strconv.Itoa(n), bw, limitFor(size), size)
		if err == nil {
			err = bw.Flush()
		}
		written = hw.n
		return err
	})
	return written, err
}

// handWriter is the caller's writer: once it has been written to, the
// session's operation cannot be repeated (session.handed).
type handWriter struct {
	w io.Writer
	s *session
	n int64
}

func (h *handWriter) Write(p []byte) (int, error) {
	if len(p) > 0 {
		h.s.handed = true
	}
	n, err := h.w.Write(p)
	h.n += int64(n)
	return n, err
}

// Header implements remote.Account with TOP n 0 (RETR where the server has
// no TOP) and returns the fields named in remote.HeaderFields, each with its
// continuation lines as sent, then an empty line, like IMAP's
// BODY[HEADER.FIELDS (...)].
func (a *Account) Header(ctx context.Context, ref remote.Ref) ([]byte, error) {
	var out []byte
	err := a.fetch(ctx, "header", ref, a.cfg.Timeout, func(s *session, n int, size int64) error {
		retr := "RETR " + strconv.Itoa(n)
		if !a.noTOP.Load() {
			b, err := s.multi("TOP "+strconv.Itoa(n)+" 0", limitFor(size), size)
			var re *respError
			if !errors.As(err, &re) {
				if err != nil {
					return err
				}
				out = headerFields(b)
				return nil
			}
			b, err = s.multi(retr, limitFor(size), size)
			if err != nil {
				return err
			}
			a.log.Info("pop3: TOP refused, reading headers with RETR", "addr", a.cfg.Addr, "reply", re.text)
			a.noTOP.Store(true)
			out = headerFields(b)
			return nil
		}
		b, err := s.multi(retr, limitFor(size), size)
		if err != nil {
			return err
		}
		out = headerFields(b)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// headerFields returns the fields of msg's header that remote.HeaderFields
// names, with their continuation lines, then an empty line.
func headerFields(msg []byte) []byte {
	var out []byte
	keep := false
	for len(msg) > 0 {
		line := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line, msg = msg[:i+1], msg[i+1:]
		} else {
			msg = nil
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			break // end of the header
		}
		if line[0] != ' ' && line[0] != '\t' {
			keep = false
			if i := bytes.IndexByte(line, ':'); i > 0 {
				name := string(bytes.TrimRight(line[:i], " \t"))
				for _, f := range remote.HeaderFields {
					if strings.EqualFold(name, f) {
						keep = true
					}
				}
			}
		}
		if keep {
			out = append(out, line...)
			if line[len(line)-1] != '\n' {
				out = append(out, '\r', '\n')
			}
		}
	}
	return append(out, '\r', '\n')
}

// Delete implements remote.Deleter in one fresh session: UIDL, DELE for
// every ref the server still has, then QUIT, which commits. Until QUIT has
// been answered nothing is deleted, and an error says so.
func (a *Account) Delete(ctx context.Context, refs []remote.Ref) error {
	if len(refs) == 0 {
		return nil
	}
	quitSent, quitRefused := false, false
	var gone []string
	err := a.do(ctx, "delete", useDelete, func(s *session, reused bool) error {
		if err := s.loadKeys(false); err != nil {
			return err
		}
		gone = gone[:0]
		seen := map[int]bool{}
		for _, r := range refs {
			n, ok := s.keys[r.Key]
			if !ok || checkFolder(r.Folder) != nil {
				gone = append(gone, r.Key) // gone already, or never a POP3 message
				continue
			}
			if seen[n] {
				continue
			}
			seen[n] = true
			err := s.libError("DELE", s.pc.Dele(n))
			if err == nil {
				err = s.inSync("DELE")
			}
			if err != nil {
				return fmt.Errorf("pop3: DELE %s: %w", r.Key, err)
			}
		}
		quitSent = true
		err := s.quit()
		var re *respError
		if errors.As(err, &re) {
			quitRefused = true
			return fmt.Errorf("pop3: %s: %s: %w", a.cfg.Addr, re, remote.ErrUnavailable)
		}
		return err
	})
	switch {
	case err == nil && len(gone) > 0:
		return fmt.Errorf("pop3: delete: the server no longer has %q: %w (the others are deleted)", gone, remote.ErrNotFound)
	case err == nil:
		return nil
	case quitRefused:
		return fmt.Errorf("pop3: delete: %w; the server may have removed only some of the messages", err)
	case quitSent:
		return fmt.Errorf("pop3: delete: %w; QUIT got no answer, so the messages may or may not have been deleted", err)
	}
	return fmt.Errorf("pop3: delete: %w; nothing was deleted", err)
}

// Close QUITs the parked session, if any. Later operations fail.
func (a *Account) Close() error {
	a.mu.Lock()
	a.closed = true
	s := a.takeParked()
	a.mu.Unlock()
	if s != nil {
		a.quitParked(s)
	}
	a.pending.Wait()
	return nil
}
