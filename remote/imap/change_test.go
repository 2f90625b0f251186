package imap_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"mailfs/internal/dovecottest"
	"mailfs/internal/memserver"
	"mailfs/remote"
	"mailfs/remote/imap"
	"mailfs/remote/remotetest"
)

var expungeModes = []string{imap.ExpungeNever, imap.ExpungeOnUnmount, imap.ExpungeImmediate}

// wire records what an account sends, connection by connection.
type wire struct {
	mu    sync.Mutex
	conns []*bytes.Buffer
}

func (w *wire) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	buf := new(bytes.Buffer)
	w.mu.Lock()
	w.conns = append(w.conns, buf)
	w.mu.Unlock()
	return &recConn{Conn: c, w: w, buf: buf}, nil
}

type recConn struct {
	net.Conn
	w   *wire
	buf *bytes.Buffer
}

func (c *recConn) Write(p []byte) (int, error) {
	c.w.mu.Lock()
	c.buf.Write(p)
	c.w.mu.Unlock()
	return c.Conn.Write(p)
}

var tagged = regexp.MustCompile(`^T[0-9]+ `)

// commands returns the tagged command lines sent.
func (w *wire) commands() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, b := range w.conns {
		for _, line := range strings.Split(b.String(), "\r\n") {
			if tagged.MatchString(line) {
				out = append(out, line)
			}
		}
	}
	return out
}

// checkByUID fails the test for any command that names messages by
// sequence number, and any plain EXPUNGE or CLOSE.
func (w *wire) checkByUID(t *testing.T) {
	t.Helper()
	for _, line := range w.commands() {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch strings.ToUpper(f[1]) {
		case "EXPUNGE", "CLOSE", "STORE", "COPY", "MOVE", "FETCH", "SEARCH":
			t.Errorf("sent %q: not by UID", line)
		}
	}
}

// sent reports whether a command whose name starts with prefix was sent.
func (w *wire) sent(prefix string) bool {
	for _, line := range w.commands() {
		if f := strings.SplitN(line, " ", 2); len(f) == 2 && strings.HasPrefix(strings.ToUpper(f[1]), prefix) {
			return true
		}
	}
	return false
}

// capsServer runs go-imap's in-process server with the given capabilities
// (internal/memserver always has IMAP4rev2, hence UIDPLUS and MOVE).
func capsServer(t *testing.T, caps goimap.CapSet) (addr, user, pass string) {
	t.Helper()
	mem := imapmemserver.New()
	u := imapmemserver.NewUser("demo", "demo")
	mem.AddUser(u)
	if err := u.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         caps,
		InsecureAuth: true,
		Logger:       log.New(io.Discard, "", 0),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().String(), "demo", "demo"
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// checkExpungeMode checks what RunChanges left in folder, through a
// separate account, before and after closing acct.
func checkExpungeMode(t *testing.T, mode string, acct *imap.Account, reader *imap.Account, folder string) {
	t.Helper()
	ctx := context.Background()
	msgs := remotetest.ChangeMessages()
	look := func(when string) (deleted bool, present bool) {
		t.Helper()
		l, err := reader.List(ctx, folder)
		if err != nil {
			t.Fatal(err)
		}
		count := make([]int, len(msgs))
		for _, m := range l.Messages {
			b, err := reader.Body(ctx, remote.Ref{Folder: folder, UIDValidity: l.UIDValidity, UID: m.UID, Key: m.Key})
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(msgs, func(raw []byte) bool { return bytes.Equal(raw, b) })
			if i < 0 {
				t.Errorf("%s: unexpected message %d in %q", when, m.UID, folder)
				continue
			}
			count[i]++
			hasDeleted := slices.ContainsFunc(m.Flags, func(f string) bool { return strings.EqualFold(f, `\Deleted`) })
			if i == 1 {
				present, deleted = true, hasDeleted
			} else if hasDeleted {
				t.Errorf("%s: message #%d flagged \\Deleted", when, i)
			}
		}
		if count[0] != 1 || count[2] != 1 || count[1] > 1 {
			t.Errorf("%s: message counts %v, want [1 0-1 1]", when, count)
		}
		return deleted, present
	}
	deleted, present := look("before Close")
	switch {
	case mode == imap.ExpungeImmediate && present:
		t.Errorf("immediate: the deleted message is still there (flagged: %v)", deleted)
	case mode != imap.ExpungeImmediate && (!present || !deleted):
		t.Errorf("%s: before Close the deleted message should be there flagged \\Deleted (present %v, flagged %v)", mode, present, deleted)
	}
	if err := acct.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	deleted, present = look("after Close")
	switch {
	case mode == imap.ExpungeNever && (!present || !deleted):
		t.Errorf("never: after Close the deleted message should still be there flagged (present %v, flagged %v)", present, deleted)
	case mode != imap.ExpungeNever && present:
		t.Errorf("%s: after Close the deleted message is still there", mode)
	}
}

func TestChangesMemServer(t *testing.T) {
	for _, mode := range expungeModes {
		t.Run(mode, func(t *testing.T) {
			srv, err := memserver.Start(nil)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			w := &wire{}
			cfg := imap.Config{Addr: srv.Addr, TLS: imap.TLSNone, Username: srv.Username, Password: srv.Password, Connections: 2}
			reader := dial(t, cfg)
			cfg.Expunge, cfg.DialContext = mode, w.dial
			a := dial(t, cfg)
			remotetest.RunChanges(t, a, "mailfs-test")
			checkExpungeMode(t, mode, a, reader, "mailfs-test")
			w.checkByUID(t)
			if w.sent("UID COPY") {
				t.Errorf("UID COPY sent to a server with MOVE")
			}
		})
	}
}

func TestChangesCopyFallback(t *testing.T) {
	// UIDPLUS without MOVE: UID COPY, UID STORE, UID EXPUNGE of exactly
	// the UIDs copied.
	addr, user, pass := capsServer(t, goimap.CapSet{goimap.CapIMAP4rev1: {}, goimap.CapUIDPlus: {}, goimap.CapUnselect: {}})
	w := &wire{}
	cfg := imap.Config{Addr: addr, TLS: imap.TLSNone, Username: user, Password: pass, Connections: 2}
	reader := dial(t, cfg)
	cfg.Expunge, cfg.DialContext = imap.ExpungeOnUnmount, w.dial
	a := dial(t, cfg)
	remotetest.RunChanges(t, a, "mailfs-test")
	checkExpungeMode(t, imap.ExpungeOnUnmount, a, reader, "mailfs-test")
	w.checkByUID(t)
	if w.sent("UID MOVE") || !w.sent("UID COPY") {
		t.Errorf("want UID COPY and no UID MOVE; sent %q", w.commands())
	}
}

func TestNoUIDPlus(t *testing.T) {
	// Neither UIDPLUS nor MOVE (nor UNSELECT): no expunge, no move.
	addr, user, pass := capsServer(t, goimap.CapSet{goimap.CapIMAP4rev1: {}})
	ctx := context.Background()
	for _, mode := range []string{imap.ExpungeOnUnmount, imap.ExpungeImmediate} {
		var logs syncBuffer
		w := &wire{}
		a, err := imap.Dial(ctx, imap.Config{Addr: addr, TLS: imap.TLSNone, Username: user, Password: pass,
			Expunge: mode, DialContext: w.dial, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(logs.String(), "UIDPLUS"); n != 1 || strings.Count(logs.String(), "\n") != 1 || !strings.Contains(logs.String(), "level=WARN") {
			t.Errorf("%s without UIDPLUS: want one warning line, got %q", mode, logs.String())
		}
		a.Close()
	}

	var logs syncBuffer
	w := &wire{}
	cfg := imap.Config{Addr: addr, TLS: imap.TLSNone, Username: user, Password: pass}
	reader := dial(t, cfg)
	cfg.Expunge, cfg.DialContext, cfg.Logger = imap.ExpungeOnUnmount, w.dial, slog.New(slog.NewTextHandler(&logs, nil))
	a := dial(t, cfg)
	remotetest.RunChanges(t, a, "mailfs-test")
	// Fallen back to never.
	checkExpungeMode(t, imap.ExpungeNever, a, reader, "mailfs-test")
	w.checkByUID(t)
	for _, c := range []string{"UID MOVE", "UID COPY", "UID EXPUNGE"} {
		if w.sent(c) {
			t.Errorf("%s sent to a server without UIDPLUS or MOVE", c)
		}
	}

	// Move is refused before anything is sent.
	b := dial(t, imap.Config{Addr: addr, TLS: imap.TLSNone, Username: user, Password: pass, DialContext: w.dial})
	ap := remote.Appender(b)
	stay := []byte("Subject: stay\r\n\r\nstay\r\n")
	uid, validity, err := ap.Append(ctx, "INBOX", bytes.NewReader(stay), int64(len(stay)), time.Time{}, nil)
	if err != nil || uid != 0 || validity != 0 {
		t.Fatalf("append without UIDPLUS: got %d, %d, %v; want 0, 0, nil", uid, validity, err)
	}
	l, err := b.List(ctx, "INBOX")
	if err != nil || len(l.Messages) != 1 {
		t.Fatalf("list: %v, %v", l, err)
	}
	before := len(w.commands())
	m := l.Messages[0]
	err = b.Move(ctx, []remote.Ref{{Folder: "INBOX", UIDValidity: l.UIDValidity, UID: m.UID, Key: m.Key}}, "mailfs-test")
	if !errors.Is(err, remote.ErrUnsupported) {
		t.Errorf("Move without MOVE or UIDPLUS: got %v, want ErrUnsupported", err)
	}
	if after := w.commands(); len(after) != before {
		t.Errorf("an unsupported Move sent %q", after[before:])
	}
}

func TestExpungeConfig(t *testing.T) {
	srv, err := memserver.Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	_, err = imap.Dial(context.Background(), imap.Config{Addr: srv.Addr, TLS: imap.TLSNone, Username: srv.Username, Password: srv.Password, Expunge: "sometimes"})
	if err == nil || !strings.Contains(err.Error(), "sometimes") {
		t.Errorf("unknown expunge mode: got %v", err)
	}
}

func TestSetFlagsUndeletes(t *testing.T) {
	// SetFlags replaces the flags: without \Deleted it undeletes, and an
	// expunge on unmount leaves the message alone.
	srv, err := memserver.Start([]memserver.Message{
		{Folder: "INBOX", Date: time.Now(), Raw: []byte("Subject: a\r\n\r\na\r\n")},
		{Folder: "INBOX", Date: time.Now(), Raw: []byte("Subject: b\r\n\r\nb\r\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx := context.Background()
	cfg := imap.Config{Addr: srv.Addr, TLS: imap.TLSNone, Username: srv.Username, Password: srv.Password}
	reader := dial(t, cfg)
	cfg.Expunge = imap.ExpungeOnUnmount
	a := dial(t, cfg)
	l, err := a.List(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	var refs []remote.Ref
	for _, m := range l.Messages {
		refs = append(refs, remote.Ref{Folder: "INBOX", UIDValidity: l.UIDValidity, UID: m.UID, Key: m.Key})
	}
	if err := a.Delete(ctx, refs); err != nil {
		t.Fatal(err)
	}
	if err := a.SetFlags(ctx, refs[0], []string{`\Seen`}); err != nil {
		t.Fatal(err)
	}
	if err := a.SetFlags(ctx, refs[0], []string{`\Seen`, "bad flag"}); err == nil {
		t.Error("SetFlags with an invalid flag: no error")
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = reader.List(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Messages) != 1 || l.Messages[0].UID != refs[0].UID || !slices.Equal(l.Messages[0].Flags, []string{`\Seen`}) {
		t.Errorf("after Close: %+v; want only UID %d, flagged \\Seen", l.Messages, refs[0].UID)
	}
}

// msgState is a message as a separate client sees it.
type msgState struct {
	flags []string
	body  []byte
}

// snap returns every message of folder by UID, through a client of its own.
func snap(t *testing.T, dc *dovecottest.Server, folder string) map[uint32]msgState {
	t.Helper()
	c, err := dc.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out := map[uint32]msgState{}
	sel, err := c.Select(folder, &goimap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages > 0 {
		section := &goimap.FetchItemBodySection{Peek: true}
		msgs, err := c.Fetch(goimap.UIDSet{{Start: 1, Stop: 0}}, &goimap.FetchOptions{
			UID: true, Flags: true, BodySection: []*goimap.FetchItemBodySection{section},
		}).Collect()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			var flags []string
			for _, f := range m.Flags {
				if !strings.EqualFold(string(f), `\Recent`) {
					flags = append(flags, strings.ToLower(string(f)))
				}
			}
			remote.SortFlags(flags)
			out[uint32(m.UID)] = msgState{flags, m.FindBodySection(section)}
		}
	}
	c.Logout().Wait()
	return out
}

// compareSnaps checks that after is before, except for the UIDs in changed,
// which must differ only by gaining \Deleted, and those in gone.
func compareSnaps(t *testing.T, before, after map[uint32]msgState, flagged, gone []uint32) {
	t.Helper()
	for uid, b := range before {
		a, ok := after[uid]
		switch {
		case slices.Contains(gone, uid):
			if ok {
				t.Errorf("UID %d still there", uid)
			}
			continue
		case !ok:
			t.Errorf("UID %d gone", uid)
			continue
		case !bytes.Equal(a.body, b.body):
			t.Errorf("UID %d: body changed", uid)
		}
		want := b.flags
		if slices.Contains(flagged, uid) {
			want = append(slices.Clone(b.flags), `\deleted`)
			remote.SortFlags(want)
		}
		if !slices.Equal(a.flags, want) {
			t.Errorf("UID %d: flags %q, want %q", uid, a.flags, want)
		}
	}
	for uid := range after {
		if _, ok := before[uid]; !ok {
			t.Errorf("UID %d appeared", uid)
		}
	}
}

// other changes folder behind the account's back, as another client.
func other(t *testing.T, dc *dovecottest.Server, folder string, expunge []uint32, appendN int) {
	t.Helper()
	ctx := context.Background()
	if len(expunge) > 0 {
		c, err := dc.Connect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Select(folder, nil).Wait(); err != nil {
			t.Fatal(err)
		}
		var set goimap.UIDSet
		for _, u := range expunge {
			set.AddNum(goimap.UID(u))
		}
		if err := c.Store(set, &goimap.StoreFlags{Op: goimap.StoreFlagsAdd, Silent: true, Flags: []goimap.Flag{goimap.FlagDeleted}}, nil).Close(); err != nil {
			t.Fatal(err)
		}
		if err := c.UIDExpunge(set).Close(); err != nil {
			t.Fatal(err)
		}
		c.Logout().Wait()
	}
	if appendN > 0 {
		if _, err := dc.Append(ctx, folder, numbered("other", appendN)); err != nil {
			t.Fatal(err)
		}
	}
}

func numbered(prefix string, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte(fmt.Sprintf("From: x@example.org\r\nSubject: %s %d\r\nMessage-ID: <%s-%d@example.org>\r\n\r\n%s body %d\r\n%s\r\n",
			prefix, i, prefix, i, prefix, i, strings.Repeat("x", i*37)))
	}
	return out
}

func refsOf(l *remote.Listing, folder string, uids ...uint32) []remote.Ref {
	var out []remote.Ref
	for _, m := range l.Messages {
		if len(uids) == 0 || slices.Contains(uids, m.UID) {
			out = append(out, remote.Ref{Folder: folder, UIDValidity: l.UIDValidity, UID: m.UID, Key: m.Key})
		}
	}
	return out
}

func TestChangesDovecot(t *testing.T) {
	dc := dovecottest.Start(t, dovecottest.Options{})
	ctx := context.Background()
	base := imap.Config{Addr: dc.IMAPAddr, TLS: imap.TLSNone, Username: dc.User, Password: dc.Password, Connections: 2}
	reader := dial(t, base)

	for _, mode := range expungeModes {
		t.Run("RunChanges/"+mode, func(t *testing.T) {
			w := &wire{}
			cfg := base
			cfg.Expunge, cfg.DialContext = mode, w.dial
			a := dial(t, cfg)
			folder := "mailfs-test-" + mode
			remotetest.RunChanges(t, a, folder)
			checkExpungeMode(t, mode, a, reader, folder)
			w.checkByUID(t)
		})
	}

	t.Run("ConcurrentChanges", func(t *testing.T) {
		// Another client expunges and appends after our listing: Delete
		// flags exactly the message of the ref.
		const folder = "concurrent"
		if err := dc.CreateFolder(ctx, folder); err != nil {
			t.Fatal(err)
		}
		if _, err := dc.Append(ctx, folder, numbered("conc", 12)); err != nil {
			t.Fatal(err)
		}
		w := &wire{}
		cfg := base
		cfg.Connections, cfg.DialContext = 1, w.dial
		a := dial(t, cfg)
		l, err := a.List(ctx, folder)
		if err != nil {
			t.Fatal(err)
		}
		other(t, dc, folder, []uint32{3, 5}, 2)
		before := snap(t, dc, folder)
		if err := a.Delete(ctx, refsOf(l, folder, 7)); err != nil {
			t.Fatal(err)
		}
		after := snap(t, dc, folder)
		compareSnaps(t, before, after, []uint32{7}, nil)

		// Again with the folder SELECTed on our connection, whose
		// sequence numbers the other client now shifts.
		other(t, dc, folder, []uint32{1, 8}, 1)
		before = snap(t, dc, folder)
		if err := a.Delete(ctx, refsOf(l, folder, 9)); err != nil {
			t.Fatal(err)
		}
		after = snap(t, dc, folder)
		compareSnaps(t, before, after, []uint32{9}, nil)

		// Immediate: exactly that message goes.
		cfg.Expunge = imap.ExpungeImmediate
		b := dial(t, cfg)
		other(t, dc, folder, []uint32{2}, 1)
		before = snap(t, dc, folder)
		if err := b.Delete(ctx, refsOf(l, folder, 10)); err != nil {
			t.Fatal(err)
		}
		after = snap(t, dc, folder)
		compareSnaps(t, before, after, nil, []uint32{10})
		w.checkByUID(t)
	})

	t.Run("AlreadyExpunged", func(t *testing.T) {
		const folder = "expunged"
		if err := dc.CreateFolder(ctx, folder); err != nil {
			t.Fatal(err)
		}
		if _, err := dc.Append(ctx, folder, numbered("gone", 5)); err != nil {
			t.Fatal(err)
		}
		cfg := base
		cfg.Expunge = imap.ExpungeImmediate
		a := dial(t, cfg)
		l, err := a.List(ctx, folder)
		if err != nil {
			t.Fatal(err)
		}
		other(t, dc, folder, []uint32{2}, 0)
		before := snap(t, dc, folder)
		err = a.Delete(ctx, refsOf(l, folder, 2))
		if !errors.Is(err, remote.ErrNotFound) || !strings.Contains(err.Error(), "2") {
			t.Errorf("Delete of an expunged message: got %v, want ErrNotFound naming UID 2", err)
		}
		if err := a.SetFlags(ctx, refsOf(l, folder, 2)[0], []string{`\Seen`}); !errors.Is(err, remote.ErrNotFound) {
			t.Errorf("SetFlags of an expunged message: got %v, want ErrNotFound", err)
		}
		if err := a.Move(ctx, refsOf(l, folder, 2), "INBOX"); !errors.Is(err, remote.ErrNotFound) {
			t.Errorf("Move of an expunged message: got %v, want ErrNotFound", err)
		}
		after := snap(t, dc, folder)
		compareSnaps(t, before, after, nil, nil)
		if inbox := snap(t, dc, "INBOX"); len(inbox) != 0 {
			t.Errorf("INBOX got %d messages", len(inbox))
		}

		// With another ref: that one is done, the error still says.
		err = a.Delete(ctx, refsOf(l, folder, 2, 4))
		if !errors.Is(err, remote.ErrNotFound) {
			t.Errorf("Delete of an expunged and a present message: got %v, want ErrNotFound", err)
		}
		after = snap(t, dc, folder)
		compareSnaps(t, before, after, nil, []uint32{4})
	})

	t.Run("UIDValidityChange", func(t *testing.T) {
		const folder = "recreated"
		if err := dc.CreateFolder(ctx, folder); err != nil {
			t.Fatal(err)
		}
		msgs := numbered("uv", 3)
		if _, err := dc.Append(ctx, folder, msgs); err != nil {
			t.Fatal(err)
		}
		// a only EXAMINEd the folder; b has it SELECTed read-write.
		a := dial(t, base)
		b := dial(t, base)
		l, err := a.List(ctx, folder)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.List(ctx, folder); err != nil {
			t.Fatal(err)
		}
		if err := b.SetFlags(ctx, refsOf(l, folder, 3)[0], nil); err != nil {
			t.Fatal(err)
		}
		c, err := dc.Connect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Delete(folder).Wait(); err != nil {
			t.Fatal(err)
		}
		c.Logout().Wait()
		c.Close()
		if err := dc.CreateFolder(ctx, folder); err != nil {
			t.Fatal(err)
		}
		if _, err := dc.Append(ctx, folder, msgs); err != nil {
			t.Fatal(err)
		}
		l2, err := reader.List(ctx, folder)
		if err != nil {
			t.Fatal(err)
		}
		if l2.UIDValidity == l.UIDValidity {
			t.Fatalf("UIDVALIDITY %d unchanged by delete and create", l.UIDValidity)
		}
		before := snap(t, dc, folder)
		for name, acct := range map[string]*imap.Account{"examined": a, "selected": b} {
			if err := acct.Delete(ctx, refsOf(l, folder, 1)); !errors.Is(err, remote.ErrUIDValidity) {
				t.Errorf("%s: Delete with the old UIDVALIDITY: got %v, want ErrUIDValidity", name, err)
			}
			if err := acct.SetFlags(ctx, refsOf(l, folder, 2)[0], []string{`\Deleted`}); !errors.Is(err, remote.ErrUIDValidity) {
				t.Errorf("%s: SetFlags with the old UIDVALIDITY: got %v, want ErrUIDValidity", name, err)
			}
			if err := acct.Move(ctx, refsOf(l, folder, 3), "INBOX"); !errors.Is(err, remote.ErrUIDValidity) {
				t.Errorf("%s: Move with the old UIDVALIDITY: got %v, want ErrUIDValidity", name, err)
			}
		}
		compareSnaps(t, before, snap(t, dc, folder), nil, nil)
	})

	t.Run("Move100", func(t *testing.T) {
		testMove100(t, dc, base, "m100-a", "m100-b")
	})
}

func TestMoveCopyFallbackDovecot(t *testing.T) {
	// Dovecot announcing UIDPLUS but not MOVE.
	dc := dovecottest.Start(t, dovecottest.Options{ExtraConfig: "imap_capability = IMAP4rev1 LITERAL+ UIDPLUS UNSELECT NAMESPACE CHILDREN LIST-EXTENDED\n"})
	base := imap.Config{Addr: dc.IMAPAddr, TLS: imap.TLSNone, Username: dc.User, Password: dc.Password, Connections: 2}
	w := &wire{}
	base.DialContext = w.dial
	testMove100(t, dc, base, "m100-a", "m100-b")
	if w.sent("UID MOVE") || !w.sent("UID COPY") {
		t.Errorf("want UID COPY and no UID MOVE")
	}
	w.checkByUID(t)
}

// testMove100 moves 100 messages from one folder to another and back:
// every message is there once, byte for byte, with its flags.
func testMove100(t *testing.T, dc *dovecottest.Server, cfg imap.Config, from, to string) {
	ctx := context.Background()
	for _, f := range []string{from, to} {
		if err := dc.CreateFolder(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	msgs := numbered("hundred", 100)
	if _, err := dc.Append(ctx, from, msgs); err != nil {
		t.Fatal(err)
	}
	a := dial(t, cfg)
	// Some flags, to see them travel.
	l, err := a.List(ctx, from)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range refsOf(l, from) {
		if i%3 == 0 {
			if err := a.SetFlags(ctx, r, []string{`\Flagged`, "$Moved"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := map[string][]string{} // body → flags
	for _, m := range snap(t, dc, from) {
		want[string(m.body)] = m.flags
	}
	if len(want) != 100 {
		t.Fatalf("%d distinct messages, want 100", len(want))
	}
	check := func(where, empty string) {
		t.Helper()
		got := snap(t, dc, where)
		if len(got) != 100 {
			t.Errorf("%s: %d messages, want 100", where, len(got))
		}
		seen := map[string]bool{}
		for uid, m := range got {
			flags, ok := want[string(m.body)]
			switch {
			case !ok:
				t.Errorf("%s/%d: a message that was not moved, or altered", where, uid)
			case seen[string(m.body)]:
				t.Errorf("%s/%d: a message there twice", where, uid)
			case !slices.Equal(flags, m.flags):
				t.Errorf("%s/%d: flags %q, want %q", where, uid, m.flags, flags)
			}
			seen[string(m.body)] = true
		}
		if n := len(snap(t, dc, empty)); n != 0 {
			t.Errorf("%s: %d messages left", empty, n)
		}
	}
	for _, step := range [][2]string{{from, to}, {to, from}} {
		l, err := a.List(ctx, step[0])
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := a.Move(ctx, refsOf(l, step[0]), step[1]); err != nil {
			t.Fatal(err)
		}
		t.Logf("moved %d messages from %s to %s in %v", len(l.Messages), step[0], step[1], time.Since(start))
		check(step[1], step[0])
	}
}

func TestDeleteFolderAfterDelete(t *testing.T) {
	// rmdir after rm of every message: with an expunge policy the folder
	// goes (its deleted messages would go at unmount anyway); with never
	// it holds them still. A refused DeleteFolder changes nothing.
	srv, err := memserver.Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx := context.Background()
	for _, mode := range expungeModes {
		cfg := imap.Config{Addr: srv.Addr, TLS: imap.TLSNone, Username: srv.Username, Password: srv.Password, Expunge: mode}
		a := dial(t, cfg)
		folder := "rmdir-" + mode
		if err := a.CreateFolder(ctx, folder); err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			raw := fmt.Sprintf("Subject: %d\r\n\r\n%d\r\n", i, i)
			if _, _, err := a.Append(ctx, folder, strings.NewReader(raw), int64(len(raw)), time.Time{}, nil); err != nil {
				t.Fatal(err)
			}
		}
		l, err := a.List(ctx, folder)
		if err != nil {
			t.Fatal(err)
		}
		refs := refsOf(l, folder)
		if err := a.Delete(ctx, refs[:1]); err != nil {
			t.Fatal(err)
		}
		if err := a.DeleteFolder(ctx, folder); !errors.Is(err, remote.ErrNotEmpty) {
			t.Errorf("%s: DeleteFolder with a message left: got %v, want ErrNotEmpty", mode, err)
		}
		want := 2
		if mode == imap.ExpungeImmediate {
			want = 1
		}
		if l, err := a.List(ctx, folder); err != nil || len(l.Messages) != want {
			t.Errorf("%s: after a refused DeleteFolder: %v, %v; want %d messages", mode, l, err, want)
		}
		if err := a.Delete(ctx, refs[1:]); err != nil {
			t.Fatal(err)
		}
		err = a.DeleteFolder(ctx, folder)
		if mode == imap.ExpungeNever {
			if !errors.Is(err, remote.ErrNotEmpty) {
				t.Errorf("never: DeleteFolder of deleted but unexpunged messages: got %v, want ErrNotEmpty", err)
			}
		} else if err != nil {
			t.Errorf("%s: DeleteFolder after deleting every message: %v", mode, err)
		}
		if err := a.Close(); err != nil {
			t.Errorf("%s: Close: %v", mode, err)
		}
	}
}

func TestFolderGoneUnderPooledConns(t *testing.T) {
	// Pooled connections that have a folder open must not trip over its
	// deletion or renaming (Dovecot ends such sessions).
	dc := dovecottest.Start(t, dovecottest.Options{})
	ctx := context.Background()
	a := dial(t, imap.Config{Addr: dc.IMAPAddr, TLS: imap.TLSNone, Username: dc.User, Password: dc.Password, Connections: 3})
	openEverywhere := func(folder string) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, 3)
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				if folder == "" {
					_, err = a.Folders(ctx)
				} else {
					_, err = a.List(ctx, folder)
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, f := range []string{"gone", "gone.kid"} {
		if err := a.CreateFolder(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	openEverywhere("gone.kid")
	if err := a.RenameFolder(ctx, "gone.kid", "gone.child"); err != nil {
		t.Fatal(err)
	}
	openEverywhere("")
	openEverywhere("gone.child")
	if err := a.DeleteFolder(ctx, "gone.child"); err != nil {
		t.Fatal(err)
	}
	openEverywhere("")
	openEverywhere("gone")
	if err := a.DeleteFolder(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := a.Folders(ctx); err != nil {
			t.Fatal(err)
		}
		if err := a.CreateFolder(ctx, "gone"); err != nil && !errors.Is(err, remote.ErrExists) {
			t.Fatal(err)
		}
	}
	openEverywhere("gone")
}

func TestParallelChanges(t *testing.T) {
	// Deletes, flag changes and reads from many goroutines at once: each
	// change lands on exactly its message.
	var msgs []memserver.Message
	raws := numbered("par", 40)
	for _, raw := range raws {
		msgs = append(msgs, memserver.Message{Folder: "INBOX", Date: time.Now(), Raw: raw})
	}
	srv, err := memserver.Start(msgs)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx := context.Background()
	cfg := imap.Config{Addr: srv.Addr, TLS: imap.TLSNone, Username: srv.Username, Password: srv.Password, Connections: 3}
	reader := dial(t, cfg)
	cfg.Expunge = imap.ExpungeOnUnmount
	a := dial(t, cfg)
	if err := a.CreateFolder(ctx, "Archive"); err != nil {
		t.Fatal(err)
	}
	l, err := a.List(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	refs := refsOf(l, "INBOX")
	var wg sync.WaitGroup
	errs := make(chan error, len(refs)*2)
	for i, r := range refs {
		wg.Add(2)
		go func() {
			defer wg.Done()
			var err error
			switch i % 4 {
			case 0:
				err = a.Delete(ctx, []remote.Ref{r})
			case 1:
				err = a.SetFlags(ctx, r, []string{`\Flagged`})
			case 2:
				err = a.Move(ctx, []remote.Ref{r}, "Archive")
			default:
				_, err = a.Body(ctx, r)
			}
			errs <- err
		}()
		go func() {
			defer wg.Done()
			_, err := a.List(ctx, "INBOX")
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	check := func(folder string, want map[string][]string) {
		t.Helper()
		l, err := reader.List(ctx, folder)
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Messages) != len(want) {
			t.Errorf("%s: %d messages, want %d", folder, len(l.Messages), len(want))
		}
		for _, m := range l.Messages {
			b, err := reader.Body(ctx, refsOf(l, folder, m.UID)[0])
			if err != nil {
				t.Fatal(err)
			}
			flags, ok := want[string(b)]
			if !ok {
				t.Errorf("%s: unexpected message %d", folder, m.UID)
			} else if !slices.Equal(m.Flags, flags) {
				t.Errorf("%s/%d: flags %q, want %q", folder, m.UID, m.Flags, flags)
			}
		}
	}
	inbox, archive := map[string][]string{}, map[string][]string{}
	for i, raw := range raws {
		switch i % 4 {
		case 1:
			inbox[string(raw)] = []string{`\Flagged`}
		case 2:
			archive[string(raw)] = []string{}
		case 3:
			inbox[string(raw)] = []string{}
		}
	}
	check("INBOX", inbox)
	check("Archive", archive)
}
