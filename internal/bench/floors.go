package main

import (
	"context"
	"fmt"
	"io"
	"net"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

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
