package fs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"

	"mailfs/internal/dovecottest"
	"mailfs/internal/faultproxy"
	"mailfs/internal/memserver"
	"mailfs/remote"
	"mailfs/remote/imap"
)

func quirkMount(t *testing.T, q memserver.Quirks, msgs []memserver.Message, cfg imap.Config, opts Options) (string, *counting, *memserver.Server) {
	t.Helper()
	srv, err := memserver.StartWith(msgs, q)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	if cfg.Addr == "" {
		cfg.Addr = srv.Addr
	}
	cfg.TLS, cfg.Username, cfg.Password = imap.TLSNone, srv.Username, srv.Password
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	acct, err := imap.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := &counting{inner: acct}
	t.Cleanup(func() { c.Close() })
	dir, _ := mount(t, c, opts)
	return dir, c, srv
}

func simpleMsgs(folder string, n int) []memserver.Message {
	var out []memserver.Message
	for i := 1; i <= n; i++ {
		out = append(out, memserver.Message{Folder: folder, Date: time.Date(2025, 1, i, 0, 0, 0, 0, time.UTC),
			Raw: []byte("Subject: m" + strings.Repeat("x", i) + "\r\n\r\nbody\r\n")})
	}
	return out
}

// timed runs fn and returns how long it took.
func timed(fn func()) time.Duration {
	start := time.Now()
	fn()
	return time.Since(start)
}

// TestStalledServerOldListing: with a listing older than the poll interval
// and a stalled server, cat took two timeouts (the request that started the
// refresh waited for it, then for the body), and every later lookup paid
// again.
func TestStalledServerOldListing(t *testing.T) {
	srv, err := memserver.Start(simpleMsgs("INBOX", 20))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	px, err := faultproxy.New(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	const timeout = 2 * time.Second
	ctx := context.Background()
	acct, err := imap.Dial(ctx, imap.Config{Addr: px.Addr(), TLS: imap.TLSNone, Username: srv.Username, Password: srv.Password, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	c := &counting{inner: acct}
	t.Cleanup(func() { c.Close() })
	dir, _ := mount(t, c, Options{PollInterval: 300 * time.Millisecond})
	inbox := filepath.Join(dir, "INBOX")
	if _, err := os.ReadFile(filepath.Join(inbox, "1.eml")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond) // the listing is old now
	px.Stall(faultproxy.Down)
	defer px.Release()

	// Known already: at once, not after a refresh that cannot come.
	var got []byte
	if d := timed(func() { got, err = os.ReadFile(filepath.Join(inbox, "1.eml")) }); err != nil || d > timeout/2 {
		t.Errorf("cat of a message read before, server stalled: %v after %v; want its bytes at once", err, d)
	}
	if !strings.HasPrefix(string(got), "Subject: mx\r\n") {
		t.Errorf("got %q", got)
	}
	// Not known: an error within one timeout, not two.
	if d := timed(func() { _, err = os.ReadFile(filepath.Join(inbox, "20.eml")) }); !errors.Is(err, syscall.EIO) || d > timeout+timeout/2 {
		t.Errorf("cat of an unread message, server stalled: %v after %v; want EIO within one timeout (%v)", err, d, timeout)
	}
	// The refresh failed; the next ones back off instead of paying again.
	lists := c.lists.Load()
	for i := 0; i < 3; i++ {
		if d := timed(func() { _, err = os.ReadDir(inbox) }); err != nil || d > timeout/2 {
			t.Errorf("ls #%d after a failed refresh: %v after %v; want the old listing at once", i, err, d)
		}
	}
	if n := c.lists.Load() - lists; n > 1 {
		t.Errorf("%d listings asked of a stalled server in a row; want backoff", n)
	}
}

// TestRefusedFolder: EXAMINE answered NO made `ls` show an empty folder
// and exit 0.
func TestRefusedFolder(t *testing.T) {
	for _, tc := range []struct {
		code goimap.ResponseCode
		want syscall.Errno
	}{{"", syscall.EIO}, {goimap.ResponseCodeNoPerm, syscall.EIO}, {goimap.ResponseCodeNonExistent, syscall.ENOENT}} {
		msgs := append(simpleMsgs("INBOX", 1), simpleMsgs("Archive", 2)...)
		dir, _, _ := quirkMount(t, memserver.Quirks{RefuseSelect: "Archive", RefuseCode: tc.code}, msgs, imap.Config{}, Options{})
		_, err := os.ReadDir(filepath.Join(dir, "Archive"))
		if !errors.Is(err, tc.want) {
			t.Errorf("code %q: ls of a folder the server refuses: %v, want %v", tc.code, err, tc.want)
		}
		if _, err := os.ReadDir(filepath.Join(dir, "INBOX")); err != nil {
			t.Errorf("code %q: the other folders: %v", tc.code, err)
		}
	}
}

// TestLongFolderName: a folder name over NAME_MAX made readdir of its
// parent EIO, hiding every entry after it.
func TestLongFolderName(t *testing.T) {
	long := "L" + strings.Repeat("ä", 2000) // 4001 bytes
	msgs := append(simpleMsgs("INBOX", 1), simpleMsgs(long, 2)...)
	msgs = append(msgs, simpleMsgs("Zeta", 1)...)
	dir, _, _ := quirkMount(t, memserver.Quirks{}, msgs, imap.Config{}, Options{})
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("readdir of the root: %v", err)
	}
	var short string
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
		if strings.HasPrefix(e.Name(), "Lä") {
			short = e.Name()
		}
	}
	if len(ents) != 3 || short == "" {
		t.Fatalf("root lists %q; want INBOX, the long folder shortened, Zeta", names)
	}
	if len(short) > 255 {
		t.Errorf("shortened name has %d bytes", len(short))
	}
	inside, err := os.ReadDir(filepath.Join(dir, short))
	if err != nil || len(inside) != 2 {
		t.Fatalf("the long folder: %d entries, %v; want 2", len(inside), err)
	}
	b, err := os.ReadFile(filepath.Join(dir, short, inside[0].Name()))
	if err != nil || !strings.Contains(string(b), "body") {
		t.Errorf("a message of the long folder: %q, %v", b, err)
	}
}

// TestDelimiterInName: mkdir x.y on a server whose delimiter is "." made
// the folder y inside x.
func TestDelimiterInName(t *testing.T) {
	dc := dovecottest.Start(t, dovecottest.Options{})
	ctx := context.Background()
	acct, err := imap.Dial(ctx, imap.Config{Addr: dc.IMAPAddr, TLS: imap.TLSNone, Username: dc.User, Password: dc.Password})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { acct.Close() })
	dir, _ := mount(t, acct, Options{})
	if err := os.Mkdir(filepath.Join(dir, "x.y"), 0o755); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("mkdir x.y on a \".\" server: %v, want EINVAL", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "plain"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "plain"), filepath.Join(dir, "p.q")); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("rename to p.q on a \".\" server: %v, want EINVAL", err)
	}
	folders, err := acct.Folders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range folders {
		if strings.HasPrefix(f.Name, "x") || strings.HasPrefix(f.Name, "p.") {
			t.Errorf("folder %q created on the server", f.Name)
		}
	}
}

// TestInvalidFlag: an invalid flag given to setfattr was EIO.
func TestInvalidFlag(t *testing.T) {
	dir, _, _ := quirkMount(t, memserver.Quirks{}, simpleMsgs("INBOX", 1), imap.Config{}, Options{})
	p := filepath.Join(dir, "INBOX", "1.eml")
	for _, v := range []string{`bad(flag`, `\Seen "quoted"`, "ctl\x01"} {
		if err := syscall.Setxattr(p, "user.mail.flags", []byte(v), 0); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("setfattr user.mail.flags=%q: %v, want EINVAL", v, err)
		}
	}
	if err := syscall.Setxattr(p, "user.mail.flags", []byte(`\Seen $label`), 0); err != nil {
		t.Fatalf("a valid flag: %v", err)
	}
}

// TestDraftOpenedWhileWritten: a file being written that something else
// opens and closes (cat, a file manager's preview) had its first half
// appended, and the writer's next write failed with EBADF.
func TestDraftOpenedWhileWritten(t *testing.T) {
	dir, c, _ := quirkMount(t, memserver.Quirks{}, simpleMsgs("INBOX", 1), imap.Config{}, Options{})
	p := filepath.Join(dir, "INBOX", "new.eml")
	w, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	first, second := "Subject: whole\r\n\r\nfirst half\r\n", "second half\r\n"
	if _, err := w.WriteString(first); err != nil {
		t.Fatal(err)
	}
	r, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != first {
		t.Errorf("reading the file being written: %q, %v", b, err)
	}
	r.Close()
	if _, err := w.WriteString(second); err != nil {
		t.Fatalf("writing after a reader closed: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := c.List(context.Background(), "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Messages) != 2 {
		t.Fatalf("%d messages in INBOX, want the one there was and the new one", len(l.Messages))
	}
	m := l.Messages[1]
	b, err := c.Body(context.Background(), remote.Ref{Folder: "INBOX", UIDValidity: l.UIDValidity, UID: m.UID, Key: m.Key})
	if err != nil || string(b) != first+second {
		t.Errorf("appended %q, %v; want the whole file", b, err)
	}
}
