package dovecottest

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode/utf16"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// appendDepth is how many APPENDs Append keeps in flight on one connection.
const appendDepth = 16

// withClient runs f on a fresh logged-in connection and logs out. The
// connection is closed when ctx is done, which makes pending commands fail.
func (s *Server) withClient(ctx context.Context, f func(c *imapclient.Client) error) error {
	c, err := s.Connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	err = f(c)
	if !stop() && err != nil && !errors.Is(err, ctx.Err()) {
		// The failure is most likely the closed connection.
		return fmt.Errorf("%w (%w)", err, ctx.Err())
	}
	if err == nil {
		if lerr := c.Logout().Wait(); lerr != nil {
			return fmt.Errorf("dovecottest: logout: %w", lerr)
		}
	}
	return err
}

func mailboxName(folder string) string {
	if folder == "" {
		return "INBOX"
	}
	return folder
}

// CreateFolder creates a folder. name is UTF-8 with "." as hierarchy
// delimiter ("Lists.golang", "Entwürfe"); go-imap sends it in modified
// UTF-7. A folder that already exists is not an error.
func (s *Server) CreateFolder(ctx context.Context, name string) error {
	return s.withClient(ctx, func(c *imapclient.Client) error {
		err := c.Create(name, nil).Wait()
		var ierr *imap.Error
		if errors.As(err, &ierr) && ierr.Code == imap.ResponseCodeAlreadyExists {
			return nil
		}
		if err != nil {
			return fmt.Errorf("dovecottest: create folder %q: %w", name, err)
		}
		return nil
	})
}

// Append stores msgs in folder ("" means INBOX) with APPEND and returns
// their UIDs (from APPENDUID), in the order of msgs. Commands are written
// in order and pipelined; Dovecot assigns increasing UIDs in that order.
func (s *Server) Append(ctx context.Context, folder string, msgs [][]byte) ([]uint32, error) {
	uids := make([]uint32, len(msgs))
	if len(msgs) == 0 {
		return uids, nil
	}
	mailbox := mailboxName(folder)
	err := s.withClient(ctx, func(c *imapclient.Client) error {
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			firstErr error
			errIdx   = len(msgs)
			failed   = make(chan struct{})
			once     sync.Once
			slots    = make(chan struct{}, appendDepth)
		)
		fail := func(i int, err error) {
			mu.Lock()
			if i < errIdx {
				errIdx, firstErr = i, err
			}
			mu.Unlock()
			once.Do(func() { close(failed) })
		}
	loop:
		for i, msg := range msgs {
			select {
			case slots <- struct{}{}:
			case <-failed:
				break loop
			case <-ctx.Done():
				break loop
			}
			// go-imap beta.8 completes commands from its reader goroutine;
			// each command is waited for in its own goroutine because
			// Dovecot may answer pipelined commands out of order.
			cmd := c.Append(mailbox, int64(len(msg)), nil)
			_, werr := cmd.Write(msg)
			cerr := cmd.Close()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				data, err := cmd.Wait()
				switch {
				case err != nil:
					fail(i, fmt.Errorf("dovecottest: append message %d to %q: %w", i, mailbox, err))
				case werr != nil || cerr != nil:
					fail(i, fmt.Errorf("dovecottest: append message %d to %q: %w", i, mailbox, errors.Join(werr, cerr)))
				case data.UID == 0:
					fail(i, fmt.Errorf("dovecottest: append message %d to %q: no APPENDUID in response", i, mailbox))
				default:
					uids[i] = uint32(data.UID)
				}
			}()
		}
		wg.Wait()
		if err := ctx.Err(); err != nil && firstErr == nil {
			return fmt.Errorf("dovecottest: append to %q: %w", mailbox, err)
		}
		return firstErr
	})
	if err != nil {
		return nil, err
	}
	return uids, nil
}

// FetchAll returns the contents of every message in folder ("" means
// INBOX) by UID, as the server serves them (BODY.PEEK[] after EXAMINE, so
// no flags change).
func (s *Server) FetchAll(ctx context.Context, folder string) (map[uint32][]byte, error) {
	mailbox := mailboxName(folder)
	out := make(map[uint32][]byte)
	err := s.withClient(ctx, func(c *imapclient.Client) error {
		sel, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			return fmt.Errorf("dovecottest: examine %q: %w", mailbox, err)
		}
		if sel.NumMessages == 0 {
			return nil
		}
		section := &imap.FetchItemBodySection{Peek: true}
		msgs, err := c.Fetch(imap.UIDSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{
			UID:         true,
			BodySection: []*imap.FetchItemBodySection{section},
		}).Collect()
		if err != nil {
			return fmt.Errorf("dovecottest: fetch %q: %w", mailbox, err)
		}
		for _, m := range msgs {
			body := m.FindBodySection(section)
			if m.UID == 0 || body == nil {
				return fmt.Errorf("dovecottest: fetch %q: incomplete response for message %d", mailbox, m.SeqNum)
			}
			out[uint32(m.UID)] = body
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// MaildirFolder returns the Maildir++ directory of folder: MaildirRoot for
// "" and INBOX, else MaildirRoot/"."+name with name in modified UTF-7
// ("Lists.golang" → ".Lists.golang", "Entwürfe" → ".Entw&APw-rfe").
func (s *Server) MaildirFolder(folder string) (string, error) {
	if folder == "" || strings.EqualFold(folder, "INBOX") {
		return s.MaildirRoot(), nil
	}
	if strings.ContainsAny(folder, "/\x00") || strings.HasPrefix(folder, ".") ||
		strings.HasSuffix(folder, ".") || strings.Contains(folder, "..") {
		return "", fmt.Errorf("dovecottest: folder name %q not supported in Maildir++", folder)
	}
	return filepath.Join(s.MaildirRoot(), "."+encodeUTF7(folder)), nil
}

// WriteMaildir stores msgs directly as files in folder's Maildir cur/
// directory (creating the folder if needed), flagged \Seen, owned by the
// mail user. It is much faster than Append for bulk loads. Dovecot indexes
// the files at its next access and assigns UIDs in the order of msgs.
// File names carry S= (size) and W= (size with CRLF line endings) as
// Dovecot's own do, so RFC822.SIZE is right without reading the files.
func (s *Server) WriteMaildir(folder string, msgs [][]byte) error {
	dir, err := s.MaildirFolder(folder)
	if err != nil {
		return err
	}
	if err := s.makeMaildir(dir, dir != s.MaildirRoot()); err != nil {
		return err
	}
	now := time.Now()
	host := "mailfs"
	tmpDir, curDir := filepath.Join(dir, "tmp"), filepath.Join(dir, "cur")
	for i, msg := range msgs {
		// Dovecot sorts new files by the seconds, then the M (microseconds)
		// field numerically; a per-server sequence keeps the input order
		// across calls within one second.
		seq := s.mailSeq.Add(1)
		base := fmt.Sprintf("%d.M%dP%dQ%s.%s,S=%d,W=%d", now.Unix(), seq, os.Getpid(), randomHex(4), host, len(msg), crlfSize(msg))
		tmp := filepath.Join(tmpDir, base)
		if err := os.WriteFile(tmp, msg, 0o600); err != nil {
			return fmt.Errorf("dovecottest: write message %d: %w", i, err)
		}
		if err := os.Chown(tmp, s.uid, s.gid); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("dovecottest: write message %d: %w", i, err)
		}
		if err := os.Rename(tmp, filepath.Join(curDir, base+":2,S")); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("dovecottest: write message %d: %w", i, err)
		}
	}
	return nil
}

// crlfSize is the size of msg once every bare LF is sent as CRLF, which is
// how Dovecot computes the virtual size (RFC822.SIZE).
func crlfSize(msg []byte) int {
	n := len(msg) + bytes.Count(msg, []byte("\n")) - bytes.Count(msg, []byte("\r\n"))
	return n
}

// makeMaildir creates dir with cur/, new/ and tmp/ (and the maildirfolder
// marker for a subfolder), owned by the mail user.
func (s *Server) makeMaildir(dir string, subfolder bool) error {
	for _, d := range []string{dir, filepath.Join(dir, "cur"), filepath.Join(dir, "new"), filepath.Join(dir, "tmp")} {
		if err := s.mkdirMail(d); err != nil {
			return err
		}
	}
	if subfolder {
		marker := filepath.Join(dir, "maildirfolder")
		f, err := os.OpenFile(marker, os.O_WRONLY|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("dovecottest: %w", err)
		}
		f.Close()
		if err := os.Chown(marker, s.uid, s.gid); err != nil {
			return fmt.Errorf("dovecottest: %w", err)
		}
	}
	return nil
}

// encodeUTF7 encodes a mailbox name in modified UTF-7 (RFC 3501 5.1.3).
func encodeUTF7(name string) string {
	enc := base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)
	var b strings.Builder
	var run []rune
	flush := func() {
		if len(run) == 0 {
			return
		}
		u := utf16.Encode(run)
		buf := make([]byte, 0, 2*len(u))
		for _, c := range u {
			buf = append(buf, byte(c>>8), byte(c))
		}
		b.WriteByte('&')
		b.WriteString(enc.EncodeToString(buf))
		b.WriteByte('-')
		run = run[:0]
	}
	for _, r := range name {
		switch {
		case r == '&':
			flush()
			b.WriteString("&-")
		case r >= 0x20 && r <= 0x7e:
			flush()
			b.WriteRune(r)
		default:
			run = append(run, r)
		}
	}
	flush()
	return b.String()
}
