package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	gopop3 "github.com/knadh/go-pop3"

	"mailfs/internal/dovecottest"
)

// The IMAP floors: what a minimal go-imap client needs for the listing
// and for every body, on a connection of its own, login included.

// allUIDs is "1:*".
var allUIDs = imap.UIDSet{{Start: 1, Stop: 0}}

// session connects, logs in, EXAMINEs INBOX, runs f and logs out. The
// connection is closed when ctx is done, which makes a pending command
// fail.
func session(ctx context.Context, srv *dovecottest.Server, f func(c *imapclient.Client) error) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", srv.IMAPAddr)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	c := imapclient.New(conn, nil)
	defer c.Close()
	if err := c.Login(srv.User, srv.Password).Wait(); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		return fmt.Errorf("examine INBOX: %w", err)
	}
	if err := f(c); err != nil {
		return err
	}
	if err := c.Logout().Wait(); err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	return nil
}

// floorList runs UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE) and
// consumes every response; it checks that want messages came back.
func floorList(ctx context.Context, srv *dovecottest.Server, want int) error {
	err := session(ctx, srv, func(c *imapclient.Client) error {
		cmd := c.Fetch(allUIDs, &imap.FetchOptions{
			UID:          true,
			Flags:        true,
			RFC822Size:   true,
			InternalDate: true,
		})
		n := 0
		for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
			buf, err := msg.Collect()
			if err != nil {
				cmd.Close()
				return err
			}
			if buf.UID == 0 || buf.InternalDate.IsZero() {
				cmd.Close()
				return fmt.Errorf("incomplete listing row for message %d", buf.SeqNum)
			}
			n++
		}
		if err := cmd.Close(); err != nil {
			return err
		}
		if n != want {
			return fmt.Errorf("listing has %d messages, want %d", n, want)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("floor_list: %w", err)
	}
	return nil
}

// floorBulkBody runs UID FETCH 1:* (BODY.PEEK[]) and reads every literal
// to the end; it checks the number of messages and of bytes.
func floorBulkBody(ctx context.Context, srv *dovecottest.Server, wantMsgs int, wantBytes int64) error {
	err := session(ctx, srv, func(c *imapclient.Client) error {
		cmd := c.Fetch(allUIDs, &imap.FetchOptions{
			BodySection: []*imap.FetchItemBodySection{{Peek: true}},
		})
		var n int
		var total int64
		for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
			for item := msg.Next(); item != nil; item = msg.Next() {
				body, ok := item.(imapclient.FetchItemDataBodySection)
				if !ok || body.Literal == nil {
					continue
				}
				nb, err := io.Copy(io.Discard, body.Literal)
				if err != nil {
					cmd.Close()
					return err
				}
				total += nb
				n++
			}
		}
		if err := cmd.Close(); err != nil {
			return err
		}
		if n != wantMsgs || total != wantBytes {
			return fmt.Errorf("read %d bodies of %d bytes, want %d of %d bytes", n, total, wantMsgs, wantBytes)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("floor_bulk_body: %w", err)
	}
	return nil
}

// The POP3 floor: what a plain go-pop3 client needs to download the whole
// maildrop, on a connection of its own, login included.

// ctxDialer dials with a context for go-pop3 and closes the connection
// when the context is done, which makes a pending command fail.
type ctxDialer struct {
	ctx  context.Context
	conn net.Conn
	stop func() bool
}

func (d *ctxDialer) Dial(network, addr string) (net.Conn, error) {
	var nd net.Dialer
	conn, err := nd.DialContext(d.ctx, network, addr)
	if err != nil {
		return nil, err
	}
	d.conn = conn
	d.stop = context.AfterFunc(d.ctx, func() { conn.Close() })
	return conn, nil
}

// floorPOP3 connects, sends USER and PASS, runs UIDL, then RETR for every
// message in UIDL's order, reading each payload to its end, and QUITs. It
// checks that want messages came back and returns the bytes of all RETR
// payloads (go-pop3's: dot-stuffing undone, every line ending CRLF).
func floorPOP3(ctx context.Context, srv *dovecottest.Server, want int) (int64, error) {
	total, err := func() (int64, error) {
		host, portStr, err := net.SplitHostPort(srv.POP3Addr)
		if err != nil {
			return 0, err
		}
		port, err := strconv.Atoi(portStr)
		if err != nil {
			return 0, err
		}
		d := &ctxDialer{ctx: ctx}
		c, err := gopop3.New(gopop3.Opt{Host: host, Port: port, Dialer: d}).NewConn()
		if d.conn != nil {
			defer d.stop()
		}
		if err != nil {
			if d.conn != nil {
				d.conn.Close()
			}
			return 0, fmt.Errorf("connect: %w", err)
		}
		quit := true
		defer func() {
			if quit {
				c.Quit()
			}
		}()
		if err := c.User(srv.User); err != nil {
			return 0, fmt.Errorf("USER: %w", err)
		}
		if err := c.Pass(srv.Password); err != nil {
			return 0, fmt.Errorf("PASS: %w", err)
		}
		ids, err := c.Uidl(0)
		if err != nil {
			return 0, fmt.Errorf("UIDL: %w", err)
		}
		if len(ids) != want {
			return 0, fmt.Errorf("UIDL lists %d messages, want %d", len(ids), want)
		}
		var total int64
		for _, id := range ids {
			body, err := c.RetrRaw(id.ID)
			if err != nil {
				return 0, fmt.Errorf("RETR %d: %w", id.ID, err)
			}
			total += int64(body.Len())
		}
		quit = false
		if err := c.Quit(); err != nil {
			return 0, fmt.Errorf("QUIT: %w", err)
		}
		return total, nil
	}()
	if err != nil {
		return 0, fmt.Errorf("floor_pop3_retr: %w", err)
	}
	return total, nil
}
