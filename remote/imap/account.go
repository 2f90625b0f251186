package imap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"mailfs/internal/deadline"
	"mailfs/remote"
)

// TLSMode says how the connection is protected.
type TLSMode string

const (
	TLSImplicit TLSMode = "implicit"
	TLSStartTLS TLSMode = "starttls"
	TLSNone     TLSMode = "none"
)

// Config is what Dial needs. Password is only ever sent to the server.
type Config struct {
	Addr      string // host:port
	TLS       TLSMode
	TLSConfig *tls.Config
	Username  string
	Password  string
	// Auth is "plain" (AUTHENTICATE PLAIN, LOGIN where the server has no
	// AUTH=PLAIN), "login" (LOGIN) or "xoauth2" (Password is the token).
	Auth string
	// Connections bounds the pool (default 4).
	Connections int
	// Timeout fails a command that makes no progress for this long
	// (default 30 s).
	Timeout time.Duration
	Logger  *slog.Logger
	// DialContext replaces the network dialer (tests).
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// Expunge says when messages that Delete flagged \Deleted are
	// removed for good: ExpungeNever (the default: they stay, flagged),
	// ExpungeOnUnmount (Close removes them) or ExpungeImmediate (Delete
	// does). Either of the last two needs UIDPLUS, to expunge exactly those
	// UIDs; without it Dial logs a warning and falls back to ExpungeNever.
	Expunge string
}

// Expunge modes (Config.Expunge).
const (
	ExpungeNever     = "never"
	ExpungeOnUnmount = "on-unmount"
	ExpungeImmediate = "immediate"
)

// Account is a remote.Account on one IMAP login.
type Account struct {
	cfg Config
	log *slog.Logger

	sem chan struct{} // one token per connection that may be open

	mu     sync.Mutex // protects idle, closed, busy, conn.shared, conn.drop
	idle   []*conn
	closed bool
	busy   map[*conn]struct{} // connections handed out by get

	caps    imap.CapSet // the server's, as the first login saw them
	expunge string      // effective Config.Expunge

	pmu     sync.Mutex // protects pending
	pending map[string]*pendingExpunge

	raw nameMap // folder names go-imap could not decode (wire.go)

	// changing serializes the changes that safeStore checks, across the
	// whole account: one of them must not take another's effect (a
	// message flagged on another connection meanwhile) for the server's
	// doing. Its token is held across network waits, by changes only
	// (reads never take it), and taken before a connection is: a change
	// waiting for it holds no connection whose deadline could run out.
	changing chan struct{}
}

// lockChanges takes the change token, or fails when ctx ends first.
func (a *Account) lockChanges(ctx context.Context) (unlock func(), err error) {
	select {
	case a.changing <- struct{}{}:
		return func() { <-a.changing }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

var (
	_ remote.Account       = (*Account)(nil)
	_ remote.RangeReader   = (*Account)(nil)
	_ remote.BulkFetcher   = (*Account)(nil)
	_ remote.RangeStreamer = (*Account)(nil)
)

type conn struct {
	c        *imapclient.Client
	dc       *deadline.Conn
	selected string // folder open on this connection, "" if none
	rw       bool   // selected read-write (SELECT), not EXAMINE
	validity uint32
	exists   uint32
	broken   bool
	lastUsed time.Time
	// sent is set by a change before a command that must not be sent
	// twice (APPEND, MOVE, EXPUNGE...): a failure after it is never
	// retried.
	sent bool

	shared string // selected, for other goroutines; under Account.mu
	drop   bool   // close instead of pooling; under Account.mu
}

// Dial logs in once, so that a wrong password or an unreachable server is an
// error at mount time, and keeps that connection in the pool.
func Dial(ctx context.Context, cfg Config) (*Account, error) {
	if cfg.Connections <= 0 {
		cfg.Connections = 4
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.TLS == "" {
		cfg.TLS = TLSImplicit
	}
	switch cfg.Expunge {
	case "":
		cfg.Expunge = ExpungeNever
	case ExpungeNever, ExpungeOnUnmount, ExpungeImmediate:
	default:
		return nil, fmt.Errorf("imap: unknown expunge mode %q (want %q, %q or %q)", cfg.Expunge, ExpungeNever, ExpungeOnUnmount, ExpungeImmediate)
	}
	a := &Account{cfg: cfg, log: cfg.Logger, sem: make(chan struct{}, cfg.Connections), changing: make(chan struct{}, 1),
		busy: make(map[*conn]struct{}), pending: make(map[string]*pendingExpunge)}
	cn, err := a.get(ctx, "")
	if err != nil {
		return nil, err
	}
	a.caps = cn.c.Caps()
	a.put(cn)
	a.expunge = cfg.Expunge
	if a.expunge != ExpungeNever && !a.caps.Has(imap.CapUIDPlus) {
		a.log.Warn("imap: the server lacks UIDPLUS, so it cannot expunge exactly the messages mailfs deleted: "+
			"deleted messages stay on the server flagged \\Deleted (expunge = never)",
			"addr", cfg.Addr, "expunge", cfg.Expunge)
		a.expunge = ExpungeNever
	}
	return a, nil
}

func (a *Account) dial(ctx context.Context) (*conn, error) {
	dialCtx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	var raw net.Conn
	var err error
	if a.cfg.DialContext != nil {
		raw, err = a.cfg.DialContext(dialCtx, "tcp", a.cfg.Addr)
	} else {
		var d net.Dialer
		raw, err = d.DialContext(dialCtx, "tcp", a.cfg.Addr)
	}
	if err != nil {
		return nil, fmt.Errorf("imap: connect to %s: %w: %v", a.cfg.Addr, remote.ErrUnavailable, err)
	}
	dc := deadline.New(raw, a.cfg.Timeout, true)
	end := dc.Begin(ctx)
	defer end()
	dc.SetLimit(commandLimit(a.cfg.Timeout))

	opts := &imapclient.Options{
		TLSConfig:   a.cfg.TLSConfig,
		WordDecoder: wordDecoder,
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Fetch: a.unsolicited,
		},
	}
	var c *imapclient.Client
	switch a.cfg.TLS {
	case TLSImplicit:
		tc := tls.Client(dc, a.cfg.TLSConfig)
		if err := tc.HandshakeContext(dialCtx); err != nil {
			raw.Close()
			return nil, fmt.Errorf("imap: %s: %w: %v", a.cfg.Addr, remote.ErrTLS, err)
		}
		c = imapclient.New(newGuard(tc, dc, a), opts)
	case TLSStartTLS:
		tc, err := a.startTLS(dialCtx, dc)
		if err != nil {
			raw.Close()
			return nil, err
		}
		c = imapclient.New(newGuard(tc, dc, a), opts)
	case TLSNone:
		c = imapclient.New(newGuard(dc, dc, a), opts)
	default:
		raw.Close()
		return nil, fmt.Errorf("imap: unknown tls mode %q", a.cfg.TLS)
	}
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, fmt.Errorf("imap: %s: greeting: %w: %v", a.cfg.Addr, remote.ErrUnavailable, err)
	}
	// A PREAUTH greeting has logged the session in already.
	if c.State() != imap.ConnStateAuthenticated {
		if err := a.login(c); err != nil {
			c.Close()
			return nil, err
		}
	}
	return &conn{c: c, dc: dc}, nil
}

func (a *Account) login(c *imapclient.Client) error {
	var err error
	switch a.cfg.Auth {
	case "", "plain":
		if c.Caps().Has(imap.AuthCap(sasl.Plain)) {
			err = c.Authenticate(sasl.NewPlainClient("", a.cfg.Username, a.cfg.Password))
		} else {
			err = c.Login(a.cfg.Username, a.cfg.Password).Wait()
		}
	case "login":
		err = c.Login(a.cfg.Username, a.cfg.Password).Wait()
	case "xoauth2":
		err = c.Authenticate(&xoauth2Client{user: a.cfg.Username, token: a.cfg.Password})
	default:
		return fmt.Errorf("imap: unknown auth %q (want plain, login or xoauth2)", a.cfg.Auth)
	}
	if err != nil {
		var imapErr *imap.Error
		if errors.As(err, &imapErr) {
			// The server's text, never our password: a server may echo
			// the command, and its text reaches a terminal.
			return fmt.Errorf("imap: login as %q: %w: %s", a.cfg.Username, remote.ErrAuth, a.serverText(imapErr.Text))
		}
		return fmt.Errorf("imap: login: %w: %s", remote.ErrUnavailable, a.serverText(err.Error()))
	}
	return nil
}

// get takes a connection from the pool, preferring one that has folder open.
func (a *Account) get(ctx context.Context, folder string) (*conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case a.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		<-a.sem
		return nil, fmt.Errorf("imap: account closed: %w", remote.ErrUnavailable)
	}
	var cn *conn
	for i := len(a.idle) - 1; i >= 0; i-- {
		if folder != "" && a.idle[i].selected == folder {
			cn = a.idle[i]
			a.idle = slices.Delete(a.idle, i, i+1)
			break
		}
	}
	if cn == nil && len(a.idle) > 0 {
		cn = a.idle[len(a.idle)-1]
		a.idle = a.idle[:len(a.idle)-1]
	}
	a.mu.Unlock()
	if cn != nil && !a.alive(ctx, cn) {
		cn.c.Close()
		cn = nil
	}
	if cn == nil {
		var err error
		cn, err = a.dial(ctx)
		if err != nil {
			<-a.sem
			return nil, err
		}
	}
	a.mu.Lock()
	a.busy[cn] = struct{}{}
	a.mu.Unlock()
	return cn, nil
}

// commandLimit is the overall time one request may take, besides the
// timeout without progress: four timeouts, more for the literals and
// listing rows it turns out to carry.
func commandLimit(timeout time.Duration) time.Duration { return 4 * timeout }

// perRow is the time a listing may take per message, beyond commandLimit.
const perRow = time.Millisecond

// maxRows bounds a listing (about 100 bytes a row in memory): a server
// that sends rows without end fails instead.
const maxRows = 5_000_000

// idleCheck is how long a pooled connection may sit unused before it is
// checked with a NOOP: after a laptop's sleep or a NAT timeout, a dead
// connection would otherwise cost a whole timeout at its next use.
const idleCheck = 2 * time.Minute

// alive reports whether a pooled connection can be used.
func (a *Account) alive(ctx context.Context, cn *conn) bool {
	select {
	case <-cn.c.Closed():
		return false
	default:
	}
	if time.Since(cn.lastUsed) < idleCheck {
		return true
	}
	nctx, cancel := context.WithTimeout(ctx, min(a.cfg.Timeout, 5*time.Second))
	defer cancel()
	end := cn.dc.Begin(nctx)
	defer end()
	return cn.c.Noop().Wait() == nil
}

// put returns a connection to the pool, or closes it if it broke.
func (a *Account) put(cn *conn) {
	cn.lastUsed = time.Now()
	a.mu.Lock()
	delete(a.busy, cn)
	if cn.broken || cn.drop || a.closed {
		a.mu.Unlock()
		cn.c.Close()
	} else {
		a.idle = append(a.idle, cn)
		a.mu.Unlock()
	}
	<-a.sem
}

// selMode says how do opens the folder.
type selMode int

const (
	// selRead: EXAMINE, unless the connection has the folder open already
	// (read-only or read-write).
	selRead selMode = iota
	// selReread: open the folder again, which refreshes UIDVALIDITY and
	// EXISTS (read-write again if it was, else EXAMINE).
	selReread
	// selWrite: SELECT read-write, always anew, so that the UIDVALIDITY
	// a change is checked against is the folder's right before it. A
	// selection kept from earlier is not enough: Dovecot does not end a
	// session whose selected folder another client deleted and recreated,
	// and on that stale selection UID MOVE moves the new folder's message
	// that has the UID.
	selWrite
)

// do runs fn on a pooled connection with folder opened as mode says (unless
// folder is ""), with the deadline armed. A connection that fails below the
// IMAP layer is discarded. A failure is retried once on a fresh connection
// when the pooled one turned out dead before anything was done: at its
// first command, or (the server said BYE: Dovecot does when a folder the
// connection has open was deleted) while opening the folder or in a change
// that had not yet sent anything that must not be sent twice (conn.sent).
func (a *Account) do(ctx context.Context, folder string, mode selMode, fn func(cn *conn) error) error {
	for attempt := 0; ; attempt++ {
		cn, err := a.get(ctx, folder)
		if err != nil {
			return err
		}
		cn.sent = false
		opening := false
		end := cn.dc.Begin(ctx)
		// Besides the timeout without progress, an overall limit: a
		// server that trickles bytes cannot hold a request for ever.
		// Literals announced extend it (wire.go), and so do the rows of
		// a listing (List).
		cn.dc.SetLimit(commandLimit(a.cfg.Timeout))
		err = func() error {
			if folder != "" {
				opening = true
				switch mode {
				case selReread:
					if err := a.open(cn, folder, cn.selected == folder && cn.rw, true); err != nil {
						return err
					}
				case selWrite:
					if err := a.open(cn, folder, true, true); err != nil {
						return err
					}
				default:
					if err := a.open(cn, folder, false, false); err != nil {
						return err
					}
				}
				opening = false
			}
			return fn(cn)
		}()
		end()
		if err != nil && !keepsConn(err) {
			cn.broken = true
		}
		a.put(cn)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		raw := err
		if cn.broken && !errors.Is(err, remote.ErrUnavailable) {
			err = fmt.Errorf("imap: %w: %w", remote.ErrUnavailable, err)
		}
		retry := isStale(err)
		if opening || mode == selWrite {
			// Nothing reached the caller yet: a connection the server
			// closed (BYE, then EOF) may be replaced.
			retry = retry || isStale(raw) || errors.Is(raw, io.ErrUnexpectedEOF)
		}
		if cn.broken && attempt == 0 && !cn.sent && retry {
			continue
		}
		return err
	}
}

// keepsConn reports an error after which the connection is still in a
// known state: the server answered NO or BAD, or the request was refused
// before or without breaking anything.
func keepsConn(err error) bool {
	var imapErr *imap.Error
	if errors.As(err, &imapErr) {
		return true
	}
	for _, e := range []error{remote.ErrNotFound, remote.ErrUIDValidity, remote.ErrProtocol,
		remote.ErrNotEmpty, remote.ErrExists, remote.ErrUnsupported, remote.ErrReadOnly,
		remote.ErrInvalid, remote.ErrTooLarge, errRefused} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// isStale reports an error that a connection the server had already closed
// would give at its first use.
func isStale(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "connection reset")
}

// open opens folder on cn: read-write (SELECT) if rw, else read-only
// (EXAMINE). An open folder is kept unless again is set or read-write is
// asked of a connection that only EXAMINEd it; reads use a read-write
// selection as it is (they fetch with BODY.PEEK).
func (a *Account) open(cn *conn, folder string, rw, again bool) error {
	if !again && cn.selected == folder && (cn.rw || !rw) {
		return nil
	}
	cn.selected, cn.rw = "", false
	a.share(cn)
	data, err := cn.c.Select(folder, &imap.SelectOptions{ReadOnly: !rw}).Wait()
	if err != nil {
		var imapErr *imap.Error
		if errors.As(err, &imapErr) {
			// Only a folder the server says does not exist is not found;
			// another refusal (no permission, a broken folder) is an
			// error the user must see, not an empty folder.
			text := a.serverText(imapErr.Text)
			if imapErr.Code == imap.ResponseCodeNonExistent {
				return fmt.Errorf("imap: folder %q: %w: %s", folder, remote.ErrNotFound, text)
			}
			// Many servers give no code: the folder list tells.
			if f, lerr := listOne(cn, folder); lerr == nil && (f == nil || nonExistent(f)) {
				return fmt.Errorf("imap: folder %q: %w: %s", folder, remote.ErrNotFound, text)
			}
			return fmt.Errorf("imap: the server refused to open folder %q: %s %s: %w", folder, imapErr.Type, text, errRefused)
		}
		return err
	}
	cn.selected, cn.rw = folder, rw
	cn.validity = data.UIDValidity
	cn.exists = data.NumMessages
	a.share(cn)
	return nil
}

// share publishes cn's selection to other goroutines (see dropFolder).
func (a *Account) share(cn *conn) {
	a.mu.Lock()
	cn.shared = cn.selected
	a.mu.Unlock()
}

// Folders implements remote.Account with LIST "" "*".
func (a *Account) Folders(ctx context.Context) ([]remote.Folder, error) {
	var out []remote.Folder
	err := a.do(ctx, "", selRead, func(cn *conn) error {
		list, err := cn.c.List("", "*", nil).Collect()
		if err != nil {
			return err
		}
		out = out[:0]
		for _, l := range list {
			f := remote.Folder{Name: l.Mailbox}
			if l.Delim != 0 {
				f.Delim = string(l.Delim)
				f.Path = strings.Split(l.Mailbox, string(l.Delim))
			} else {
				f.Path = []string{l.Mailbox}
			}
			for _, attr := range l.Attrs {
				if attr == imap.MailboxAttrNoSelect || attr == imap.MailboxAttrNonExistent {
					f.NoSelect = true
				}
			}
			out = append(out, f)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(x, y remote.Folder) int { return strings.Compare(x.Name, y.Name) })
	return out, nil
}

// List implements remote.Account: EXAMINE, then one
// UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE).
func (a *Account) List(ctx context.Context, folder string) (*remote.Listing, error) {
	var lst *remote.Listing
	err := a.do(ctx, folder, selReread, func(cn *conn) error {
		lst = &remote.Listing{UIDValidity: cn.validity}
		if cn.exists == 0 {
			return nil
		}
		cn.dc.Extend(time.Duration(min(cn.exists, maxRows)) * perRow)
		var set imap.UIDSet
		set.AddRange(1, 0)
		cmd := cn.c.Fetch(set, &imap.FetchOptions{UID: true, Flags: true, RFC822Size: true, InternalDate: true})
		var broken bool
		defer closeFetch(cmd, &broken)
		rows := make(map[uint32]int)
		for {
			msg := cmd.Next()
			if msg == nil {
				break
			}
			var (
				row                remote.MessageInfo
				haveSize, haveDate bool
				haveFlags          bool
			)
			for {
				item := msg.Next()
				if item == nil {
					break
				}
				switch item := item.(type) {
				case imapclient.FetchItemDataUID:
					row.UID = uint32(item.UID)
				case imapclient.FetchItemDataFlags:
					row.Flags = flagStrings(item.Flags)
					haveFlags = true
				case imapclient.FetchItemDataRFC822Size:
					row.Size = item.Size
					haveSize = true
				case imapclient.FetchItemDataInternalDate:
					row.Date = item.Time
					haveDate = true
				case imapclient.FetchItemDataBodySection:
					if err := drain(item.Literal); err != nil {
						broken = true
						return err
					}
				}
			}
			if row.UID == 0 {
				continue // never routed here: a row with UID 0 is logged by unsolicited
			}
			if row.Size < 0 || row.Size > maxNumber {
				// Beyond IMAP's 32-bit numbers: no range can reach the
				// end of it, so the size is learnt from the body.
				a.log.Warn("imap: impossible RFC822.SIZE, taken as unknown", "folder", folder, "uid", row.UID, "size", row.Size)
				row.Size = 0
			}
			if i, ok := rows[row.UID]; ok {
				// A second response for one UID (an unsolicited flag
				// update): take what it carries, never a partial row.
				if haveFlags {
					lst.Messages[i].Flags = row.Flags
				}
				continue
			}
			if !haveSize || !haveDate {
				a.log.Warn("imap: listing row without size or date, skipped", "folder", folder, "uid", row.UID)
				continue
			}
			if len(lst.Messages) >= maxRows {
				// The connection ends, so that closing the command
				// (deferred) drains only what is on its way.
				cn.broken = true
				cn.dc.Conn.Close()
				return fmt.Errorf("imap: folder %q: more than %d messages listed: %w", folder, maxRows, remote.ErrProtocol)
			}
			row.Key = strconv.FormatUint(uint64(row.UID), 10)
			rows[row.UID] = len(lst.Messages)
			lst.Messages = append(lst.Messages, row)
		}
		return cmd.Close()
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(lst.Messages, func(x, y remote.MessageInfo) int { return cmpUint(x.UID, y.UID) })
	return lst, nil
}

func cmpUint(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func flagStrings(flags []imap.Flag) []string {
	out := make([]string, len(flags))
	for i, f := range flags {
		out[i] = string(f)
	}
	remote.SortFlags(out)
	return out
}

// checkValidity fails when the folder's UIDVALIDITY is not the one ref was
// listed under: the UID may now name another message.
func checkValidity(cn *conn, ref remote.Ref) error {
	if ref.UIDValidity != 0 && cn.validity != ref.UIDValidity {
		return fmt.Errorf("imap: folder %q: %w (listed under %d, now %d)", ref.Folder, remote.ErrUIDValidity, ref.UIDValidity, cn.validity)
	}
	return nil
}

// fetchSection fetches one section of one message and hands its literal to
// consume (nil when the server sent NIL for it).
func (a *Account) fetchSection(ctx context.Context, ref remote.Ref, section *imap.FetchItemBodySection, consume func(lit imap.LiteralReader) error) error {
	return a.do(ctx, ref.Folder, selRead, func(cn *conn) error {
		if err := checkValidity(cn, ref); err != nil {
			return err
		}
		found, err := fetchOneSection(cn, ref.UID, section, consume)
		if err != nil || found {
			return err
		}
		// No answer for a listed UID: the session may not know of the
		// message yet (Dovecot answers nothing for a UID appended since
		// it last told this session the folder's size). A NOOP lets the
		// server tell it; only if the message is still not there is it
		// gone.
		if err := catchUp(cn); err != nil {
			return err
		}
		found, err = fetchOneSection(cn, ref.UID, section, consume)
		if err != nil || found {
			return err
		}
		return fmt.Errorf("imap: %s/%d: %w", ref.Folder, ref.UID, remote.ErrNotFound)
	})
}

// sentNIL is the error of a body or range the server sent as NIL, not
// "": Dovecot's answer for a message another session expunged. Never an
// empty message, nor the end of one.
func sentNIL(ref remote.Ref) error {
	return fmt.Errorf("imap: %s/%d: the server sends NIL for it: %w", ref.Folder, ref.UID, remote.ErrNotFound)
}

// catchUp has the session learn what changed in its folder since it last
// heard (NOOP).
func catchUp(cn *conn) error {
	return cn.c.Noop().Wait()
}

// fetchOneSection is UID FETCH uid (UID BODY.PEEK[section]); consume gets
// the literal of the response naming uid.
func fetchOneSection(cn *conn, uid uint32, section *imap.FetchItemBodySection, consume func(lit imap.LiteralReader) error) (bool, error) {
	found := false
	err := fetchSections(cn, imap.UIDSetNum(imap.UID(uid)), section, func(got uint32, lit imap.LiteralReader) error {
		if got != uid || found {
			return nil // not ours: drained by readSection
		}
		found = true
		return consume(lit)
	})
	return found, err
}

// fetchSections is UID FETCH set (UID BODY.PEEK[section]); consume gets
// each response's UID and literal (see readSection).
func fetchSections(cn *conn, set imap.UIDSet, section *imap.FetchItemBodySection, consume func(uid uint32, lit imap.LiteralReader) error) error {
	cmd := cn.c.Fetch(set, &imap.FetchOptions{
		UID:         true,
		BodySection: []*imap.FetchItemBodySection{section},
	})
	var broken bool
	defer closeFetch(cmd, &broken)
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		if _, err := readSection(cn, msg, section, consume); err != nil {
			broken = true
			return err
		}
	}
	return cmd.Close()
}

// fetchOne fetches one section of one message into memory.
func (a *Account) fetchOne(ctx context.Context, ref remote.Ref, section *imap.FetchItemBodySection, max int64) ([]byte, error) {
	var out []byte
	err := a.fetchSection(ctx, ref, section, func(lit imap.LiteralReader) error {
		if lit == nil {
			// NIL, not "" (which a range past the end is): Dovecot's
			// answer for a message another session expunged. Never an
			// empty message, nor the end of one.
			return sentNIL(ref)
		}
		var err error
		out, err = readLiteral(lit, max)
		return err
	})
	return out, err
}

// StreamRange implements remote.RangeStreamer: one
// BODY.PEEK[]<off.n>, delivered in pieces as it arrives.
func (a *Account) StreamRange(ctx context.Context, ref remote.Ref, off, n, piece int64, fn func([]byte)) (int64, error) {
	p, err := partial(off, n)
	if err != nil {
		return 0, err
	}
	var delivered int64
	err = a.fetchSection(ctx, ref, &imap.FetchItemBodySection{Peek: true, Partial: p},
		func(lit imap.LiteralReader) error {
			if lit == nil {
				// NIL, not "": the message is gone.
				return sentNIL(ref)
			}
			if lit.Size() > p.Size {
				return fmt.Errorf("imap: the server sends %d bytes where %d at most were asked for: %w", lit.Size(), p.Size, remote.ErrProtocol)
			}
			// A retry on a fresh connection (do) fetches the range again
			// from off: what an earlier attempt delivered is skipped,
			// never delivered twice.
			var got int64
			if delivered > 0 {
				k, err := io.CopyN(io.Discard, lit, delivered)
				got = k
				if err != nil {
					return fmt.Errorf("imap: literal cut short at %d of %d bytes: %w", got, lit.Size(), remote.ErrUnavailable)
				}
			}
			for {
				buf := make([]byte, piece)
				k, err := io.ReadFull(lit, buf)
				if k > 0 {
					got += int64(k)
					delivered += int64(k)
					fn(buf[:k])
				}
				switch {
				case err == io.EOF || err == io.ErrUnexpectedEOF:
					// A literal has a declared size: fewer bytes
					// than it means the connection broke.
					if lit.Size() >= 0 && got < lit.Size() {
						return fmt.Errorf("imap: literal cut short at %d of %d bytes: %w", got, lit.Size(), remote.ErrUnavailable)
					}
					return nil
				case err != nil:
					return err
				}
			}
		})
	return delivered, err
}

// closeFetch releases a FETCH command, unless reading its data failed: the
// connection is then broken and will be closed, and draining the command
// would read the connection's buffer concurrently with imapclient's reader
// goroutine, which a failed literal read has already let go on.
func closeFetch(cmd *imapclient.FetchCommand, broken *bool) {
	if !*broken {
		cmd.Close()
	}
}

// readSection consumes one message of a FETCH response for one body
// section; consume gets the section's literal (nil for NIL) and the UID
// that came before it. Whatever consume leaves unread is drained.
func readSection(cn *conn, msg *imapclient.FetchMessageData, asked *imap.FetchItemBodySection, consume func(uid uint32, lit imap.LiteralReader) error) (uid uint32, err error) {
	for {
		item := msg.Next()
		if item == nil {
			return uid, nil
		}
		switch item := item.(type) {
		case imapclient.FetchItemDataUID:
			uid = uint32(item.UID)
		case imapclient.FetchItemDataBodySection:
			var lit imap.LiteralReader
			if item.Literal != nil {
				lit = &countedLiteral{LiteralReader: item.Literal}
			}
			err := sameRange(asked, item.Section)
			if err == nil {
				err = consume(uid, lit)
			}
			if err != nil {
				// imapclient's reader goroutine waits until the literal
				// is read to its end, and Client.Close waits for it: the
				// connection is closed first, so draining it ends at
				// once, whatever size the server announced.
				if lit != nil {
					cn.broken = true
					cn.dc.Conn.Close()
					drain(lit)
				}
				return uid, err
			}
			if err := drain(lit); err != nil {
				return uid, err
			}
		}
	}
}

// sameRange checks that a response's section starts where the one asked
// for does: a server that ignores <off.n> and sends the body from its
// start must not have those bytes taken for the range.
func sameRange(asked, got *imap.FetchItemBodySection) error {
	if asked == nil || asked.Partial == nil || asked.Partial.Offset == 0 && (got == nil || got.Partial == nil) {
		return nil
	}
	if got == nil || got.Partial == nil || got.Partial.Offset != asked.Partial.Offset {
		var at any = "no origin"
		if got != nil && got.Partial != nil {
			at = got.Partial.Offset
		}
		return fmt.Errorf("imap: asked for bytes from %d, the server answers with %v: %w", asked.Partial.Offset, at, remote.ErrProtocol)
	}
	return nil
}

// drain reads what is left of a literal. One that ends before its
// announced size is an error: imapclient's reader goroutine has then gone
// on reading the connection, which must not be touched here again (the
// next msg.Next would drain the literal once more, concurrently with it).
func drain(lit imap.LiteralReader) error {
	if lit == nil {
		return nil
	}
	c, ok := lit.(*countedLiteral)
	if !ok {
		c = &countedLiteral{LiteralReader: lit}
	}
	if !c.ended {
		// Once a read of the literal has failed or hit its end, the
		// reader goroutine has the connection again: never read on.
		if _, err := io.Copy(io.Discard, c); err != nil {
			return err
		}
	}
	if c.Size() >= 0 && c.n < c.Size() {
		return fmt.Errorf("imap: literal cut short at %d of %d bytes: %w", c.n, c.Size(), remote.ErrUnavailable)
	}
	return nil
}

// countedLiteral counts the bytes read of a literal, and notes when a
// read ended it (EOF or an error).
type countedLiteral struct {
	imap.LiteralReader
	n     int64
	ended bool
}

func (c *countedLiteral) Read(p []byte) (int, error) {
	if c.ended {
		return 0, io.EOF
	}
	n, err := c.LiteralReader.Read(p)
	c.n += int64(n)
	if err != nil {
		c.ended = true
	}
	return n, err
}

// maxBody bounds a message mailfs reads into memory; maxHeader the header
// fields of one.
const (
	maxBody   = 1 << 30
	maxHeader = 1 << 20
)

// readLiteral reads a literal of at most max bytes: a server announcing
// more gets an error, not an allocation of its choosing.
func readLiteral(lit imap.LiteralReader, max int64) ([]byte, error) {
	size := lit.Size()
	if size < 0 {
		b, err := io.ReadAll(io.LimitReader(lit, max+1))
		if err == nil && int64(len(b)) > max {
			err = fmt.Errorf("imap: a literal of more than %d bytes: %w", max, remote.ErrProtocol)
		}
		return b, err
	}
	if size > max {
		return nil, fmt.Errorf("imap: the server sends %d bytes where %d at most were asked for: %w", size, max, remote.ErrProtocol)
	}
	// Exactly the literal's size: a bytes.Buffer would double its
	// capacity at the end to find EOF.
	buf := make([]byte, size)
	if _, err := io.ReadFull(lit, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// Body implements remote.Account with UID FETCH uid BODY.PEEK[].
func (a *Account) Body(ctx context.Context, ref remote.Ref) ([]byte, error) {
	return a.fetchOne(ctx, ref, &imap.FetchItemBodySection{Peek: true}, maxBody)
}

// maxNumber is the largest number IMAP can carry (RFC 3501 "number").
const maxNumber = 1<<32 - 1

// partial returns the <off.n> of a ranged fetch, bounded to what IMAP's
// numbers can say.
func partial(off, n int64) (*imap.SectionPartial, error) {
	if off < 0 || n < 0 || off > maxNumber {
		return nil, fmt.Errorf("imap: range %d+%d cannot be asked for: %w", off, n, remote.ErrTooLarge)
	}
	return &imap.SectionPartial{Offset: off, Size: min(n, maxNumber)}, nil
}

// BodyRange implements remote.RangeReader with BODY.PEEK[]<off.n>.
func (a *Account) BodyRange(ctx context.Context, ref remote.Ref, off, n int64) ([]byte, error) {
	p, err := partial(off, n)
	if err != nil {
		return nil, err
	}
	n = p.Size
	return a.fetchOne(ctx, ref, &imap.FetchItemBodySection{Peek: true, Partial: p}, n)
}

// Header implements remote.Account with
// BODY.PEEK[HEADER.FIELDS (SUBJECT FROM TO CC DATE MESSAGE-ID)].
func (a *Account) Header(ctx context.Context, ref remote.Ref) ([]byte, error) {
	return a.fetchOne(ctx, ref, &imap.FetchItemBodySection{
		Peek:         true,
		Specifier:    imap.PartSpecifierHeader,
		HeaderFields: remote.HeaderFields,
	}, maxHeader)
}

// Bodies implements remote.BulkFetcher: one UID FETCH for every ref (all in
// one folder), streamed.
func (a *Account) Bodies(ctx context.Context, refs []remote.Ref, fn func(remote.Ref, []byte)) error {
	if len(refs) == 0 {
		return nil
	}
	folder := refs[0].Folder
	byUID := make(map[uint32]remote.Ref, len(refs))
	var set imap.UIDSet
	for _, r := range refs {
		if r.Folder != folder {
			return fmt.Errorf("imap: bulk fetch across folders %q and %q", folder, r.Folder)
		}
		byUID[r.UID] = r
		set.AddNum(imap.UID(r.UID))
	}
	return a.do(ctx, folder, selRead, func(cn *conn) error {
		if err := checkValidity(cn, refs[0]); err != nil {
			return err
		}
		if err := fetchBodies(cn, set, byUID, fn); err != nil || len(byUID) == 0 {
			return err
		}
		// Listed messages the session did not answer for may be new to
		// it: once more after a NOOP (see fetchSection).
		if err := catchUp(cn); err != nil {
			return err
		}
		var rest imap.UIDSet
		for u := range byUID {
			rest.AddNum(imap.UID(u))
		}
		return fetchBodies(cn, rest, byUID, fn)
	})
}

// fetchBodies is UID FETCH set (UID BODY.PEEK[]); each body of a UID in
// byUID goes to fn and leaves byUID.
func fetchBodies(cn *conn, set imap.UIDSet, byUID map[uint32]remote.Ref, fn func(remote.Ref, []byte)) error {
	return fetchSections(cn, set, &imap.FetchItemBodySection{Peek: true}, func(uid uint32, lit imap.LiteralReader) error {
		r, ok := byUID[uid]
		if !ok || lit == nil {
			// NIL is no body (an expunged message), not an empty one:
			// left undelivered.
			return nil
		}
		body, err := readLiteral(lit, maxBody)
		if err != nil {
			return err
		}
		delete(byUID, uid)
		fn(r, body)
		return nil
	})
}

// Close expunges what Delete flagged (expunge = on-unmount, or what an
// immediate expunge left behind), then logs out of every idle connection.
func (a *Account) Close() error {
	a.mu.Lock()
	closed := a.closed
	a.mu.Unlock()
	var err error
	if !closed {
		err = a.expungePending()
	}
	a.mu.Lock()
	a.closed = true
	idle := a.idle
	a.idle = nil
	a.mu.Unlock()
	for _, cn := range idle {
		end := cn.dc.Begin(context.Background())
		cn.c.Logout().Wait()
		end()
		cn.c.Close()
	}
	return err
}

// unsolicited reads a FETCH response no command took. imapclient hands a
// UID command only responses naming one of its UIDs: a listing row with
// UID 0 lands here, and is said so in the log rather than dropped
// silently.
func (a *Account) unsolicited(msg *imapclient.FetchMessageData) {
	for {
		item := msg.Next()
		if item == nil {
			return
		}
		if u, ok := item.(imapclient.FetchItemDataUID); ok && u.UID == 0 {
			a.log.Warn("imap: a FETCH response with UID 0, skipped", "seq", msg.SeqNum)
		}
	}
}

// errRefused: the server answered NO or BAD to something that should have
// worked; the connection is still usable.
var errRefused = errors.New("refused by the server")

// serverText makes text from the server fit for an error message or a
// log line (remote.ServerText), the password blanked.
func (a *Account) serverText(text string) string { return remote.ServerText(text, a.cfg.Password) }
