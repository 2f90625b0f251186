package dovecottest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"mailfs/internal/testenv"
)

var testMsgs = [][]byte{
	[]byte("From: a@example.org\r\nTo: b@example.org\r\nSubject: crlf\r\n\r\nHello, CRLF.\r\n"),
	[]byte("From: a@example.org\nSubject: bare lf\n\nline one\nline two\n"),
	[]byte("From: a@example.org\r\nSubject: no final newline\r\n\r\nno newline at the end"),
	[]byte("From: a@example.org\r\nSubject: mixed\n\r\nbody\r\nmore\n"),
}

// served is what Dovecot is expected to send for msg: bare LF becomes CRLF.
func served(msg []byte) []byte {
	var b bytes.Buffer
	for i, c := range msg {
		if c == '\n' && (i == 0 || msg[i-1] != '\r') {
			b.WriteByte('\r')
		}
		b.WriteByte(c)
	}
	return b.Bytes()
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// rawList sends LIST over a plain connection and returns the mailbox names
// exactly as Dovecot sends them (modified UTF-7, unquoted).
func rawList(t *testing.T, s *Server) []string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", s.IMAPAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "a LOGIN %q %q\r\nb LIST \"\" \"*\"\r\nc LOGOUT\r\n", s.User, s.Password)
	var names []string
	sc := bufio.NewScanner(conn)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "* LIST ") {
			// * LIST (\HasNoChildren) "." Entw&APw-rfe
			_, name, ok := strings.Cut(line, `) "." `)
			if !ok {
				t.Fatalf("unexpected LIST line %q", line)
			}
			if strings.HasPrefix(name, `"`) {
				if name, err = strconv.Unquote(name); err != nil {
					t.Fatalf("LIST line %q: %v", line, err)
				}
			}
			names = append(names, name)
		}
		if strings.HasPrefix(line, "c ") {
			break
		}
	}
	sort.Strings(names)
	return names
}

func TestServer(t *testing.T) {
	s := Start(t, Options{POP3: true})
	ctx := ctxFor(t)

	for _, f := range []string{"Lists.golang", "Entwürfe", "Sent Items"} {
		if err := s.CreateFolder(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateFolder(ctx, "Lists.golang"); err != nil {
		t.Errorf("creating an existing folder: %v", err)
	}

	// Dovecot stores and lists the name in modified UTF-7.
	if got, want := strings.Join(rawList(t, s), "|"), "Entw&APw-rfe|INBOX|Lists|Lists.golang|Sent Items"; got != want {
		t.Errorf("raw LIST = %q, want %q", got, want)
	}
	if fi, err := os.Stat(filepath.Join(s.MaildirRoot(), ".Entw&APw-rfe")); err != nil || !fi.IsDir() {
		t.Errorf("Maildir++ directory for Entwürfe: %v", err)
	}

	// go-imap decodes the names back to UTF-8.
	c := s.Dial(t)
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]rune{}
	for _, l := range list {
		names[l.Mailbox] = l.Delim
	}
	for _, want := range []string{"INBOX", "Lists.golang", "Entwürfe", "Sent Items"} {
		if d, ok := names[want]; !ok || d != '.' {
			t.Errorf("LIST: %q missing or delimiter %q (got %v)", want, d, names)
		}
	}

	for _, folder := range []string{"", "Lists.golang", "Entwürfe"} {
		uids, err := s.Append(ctx, folder, testMsgs)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.FetchAll(ctx, folder)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(testMsgs) {
			t.Fatalf("%q: fetched %d messages, want %d", folder, len(got), len(testMsgs))
		}
		for i, uid := range uids {
			if i > 0 && uid <= uids[i-1] {
				t.Errorf("%q: UIDs not increasing in input order: %v", folder, uids)
			}
			if want := served(testMsgs[i]); !bytes.Equal(got[uid], want) {
				t.Errorf("%q: message %d (UID %d) = %q, want %q", folder, i, uid, got[uid], want)
			}
		}
	}

	// RFC822.SIZE counts the CRLF bytes.
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	fetched, err := c.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{RFC822Size: true}).Collect()
	if err != nil || len(fetched) != 1 {
		t.Fatalf("fetch size: %v %v", fetched, err)
	}
	if got, want := fetched[0].RFC822Size, int64(len(served(testMsgs[1]))); got != want {
		t.Errorf("RFC822.SIZE of bare-LF message = %d, want %d", got, want)
	}

	// POP3 greets and lets the user in.
	conn, err := net.DialTimeout("tcp", s.POP3Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "USER %s\r\nPASS %s\r\nSTAT\r\nQUIT\r\n", s.User, s.Password)
	r := bufio.NewReader(conn)
	var pop []string
	for range 5 {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("POP3: %v after %q", err, pop)
		}
		pop = append(pop, strings.TrimSpace(line))
	}
	if want := fmt.Sprintf("+OK %d ", len(testMsgs)); !strings.HasPrefix(pop[3], want) {
		t.Errorf("POP3 STAT = %q, want prefix %q (session %q)", pop[3], want, pop)
	}
}

func TestAppendMany(t *testing.T) {
	s := Start(t, Options{})
	ctx := ctxFor(t)
	msgs := make([][]byte, 600)
	for i := range msgs {
		body := strings.Repeat(fmt.Sprintf("line %d of message %d\n", i%7, i), 1+i%300) // some above 4096 bytes
		msgs[i] = []byte(fmt.Sprintf("Subject: message %d\nMessage-ID: <%d@test>\n\n%s", i, i, body))
	}
	start := time.Now()
	uids, err := s.Append(ctx, "", msgs)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("appended %d messages in %v", len(msgs), time.Since(start))
	for i := range uids {
		if uids[i] != uint32(i+1) {
			t.Fatalf("UID of message %d = %d, want %d", i, uids[i], i+1)
		}
	}
	got, err := s.FetchAll(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for i, uid := range uids {
		if !bytes.Equal(got[uid], served(msgs[i])) {
			t.Fatalf("message %d differs", i)
		}
	}
}

func TestAppendErrors(t *testing.T) {
	s := Start(t, Options{})
	ctx := ctxFor(t)
	if _, err := s.Append(ctx, "No.Such.Folder", testMsgs); err == nil || !strings.HasPrefix(err.Error(), "dovecottest: ") {
		t.Errorf("append to missing folder: err = %v", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Append(canceled, "", testMsgs); err == nil {
		t.Error("append with canceled context succeeded")
	}
	if _, err := s.FetchAll(ctx, "No.Such.Folder"); err == nil {
		t.Error("fetch of missing folder succeeded")
	}
	got, err := s.FetchAll(ctx, "")
	if err != nil || len(got) != 0 {
		t.Errorf("fetch of empty INBOX = %d messages, %v", len(got), err)
	}
}

func TestWriteMaildir(t *testing.T) {
	s := Start(t, Options{})
	ctx := ctxFor(t)

	// Before any IMAP access of the folder, in a new folder, and again
	// after Dovecot has indexed it.
	for _, folder := range []string{"", "Lists.golang", "Entwürfe"} {
		if err := s.WriteMaildir(folder, testMsgs); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.WriteMaildir("Lists.golang", testMsgs[:2]); err != nil {
		t.Fatal(err)
	}
	names := strings.Join(rawList(t, s), "|")
	for _, want := range []string{"Lists.golang", "Entw&APw-rfe"} {
		if !strings.Contains(names, want) {
			t.Errorf("LIST %q lacks %q", names, want)
		}
	}
	if _, err := s.FetchAll(ctx, "Lists.golang"); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteMaildir("Lists.golang", testMsgs[2:]); err != nil {
		t.Fatal(err)
	}
	want := map[string][][]byte{
		"":             testMsgs,
		"Entwürfe":     testMsgs,
		"Lists.golang": append(append(append([][]byte{}, testMsgs...), testMsgs[:2]...), testMsgs[2:]...),
	}

	c := s.Dial(t)
	for folder, msgs := range want {
		got, err := s.FetchAll(ctx, folder)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(msgs) {
			t.Fatalf("%q: %d messages, want %d", folder, len(got), len(msgs))
		}
		for i, msg := range msgs {
			// UIDs follow the order of writing.
			if !bytes.Equal(got[uint32(i+1)], served(msg)) {
				t.Errorf("%q UID %d = %q, want %q", folder, i+1, got[uint32(i+1)], served(msg))
			}
		}
		if _, err := c.Select(mailboxName(folder), &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			t.Fatal(err)
		}
		fetched, err := c.Fetch(imap.SeqSetNum(1, 2, 3, 4), &imap.FetchOptions{UID: true, RFC822Size: true, Flags: true}).Collect()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range fetched {
			if m.RFC822Size != int64(len(got[uint32(m.UID)])) {
				t.Errorf("%q UID %d: RFC822.SIZE %d, served %d bytes", folder, m.UID, m.RFC822Size, len(got[uint32(m.UID)]))
			}
			// The first session also sees \Recent.
			if !slices.Contains(m.Flags, imap.FlagSeen) {
				t.Errorf("%q UID %d: flags %v, want \\Seen", folder, m.UID, m.Flags)
			}
		}
	}
	if log := s.LogTail(200); strings.Contains(log, "Error") || strings.Contains(log, "Panic") {
		t.Errorf("Dovecot logged errors:\n%s", log)
	}
}

func TestTwoInstancesAndStop(t *testing.T) {
	a := StartProcessForTest(t)
	b := StartProcessForTest(t)
	if a.IMAPAddr == b.IMAPAddr || a.BaseDir == b.BaseDir {
		t.Fatalf("instances share %s / %s", a.IMAPAddr, a.BaseDir)
	}
	ctx := ctxFor(t)
	if _, err := a.Append(ctx, "", testMsgs[:1]); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Append(ctx, "", testMsgs); err != nil {
		t.Fatal(err)
	}
	ga, err := a.FetchAll(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	gb, err := b.FetchAll(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ga) != 1 || len(gb) != len(testMsgs) {
		t.Errorf("instances not separate: %d and %d messages", len(ga), len(gb))
	}

	// Keep a connection open so a mail process is running at Stop.
	_ = a.Dial(t)
	master := a.MasterPID()
	procs := map[int]uint64{}
	_, _, start, ok := procStat(master)
	if !ok {
		t.Fatalf("master %d not found", master)
	}
	procs[master] = start
	for _, p := range childProcs(master) {
		procs[p.pid] = p.start
	}
	if len(procs) < 4 {
		t.Errorf("expected a master with several children, got %v", procs)
	}
	stopStart := time.Now()
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Stop took %v", time.Since(stopStart))
	if err := a.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	for pid, start := range procs {
		if alive(pid, start) {
			t.Errorf("process %d still running after Stop", pid)
		}
	}
	if left := instanceProcs(a.instance); len(left) > 0 {
		t.Errorf("processes of %s left after Stop: %v", a.instance, left)
	}
	if conn, err := net.DialTimeout("tcp", a.IMAPAddr, time.Second); err == nil {
		conn.Close()
		t.Errorf("%s still accepts connections", a.IMAPAddr)
	}
	if _, err := os.Stat(a.BaseDir); !os.IsNotExist(err) {
		t.Errorf("base_dir %s not removed: %v", a.BaseDir, err)
	}

	// The other instance is unaffected.
	if got, err := b.FetchAll(ctx, ""); err != nil || len(got) != len(testMsgs) {
		t.Errorf("second instance after first stopped: %d messages, %v", len(got), err)
	}
}

// StartProcessForTest exercises StartProcess with a caller-owned directory
// whose path is too long for base_dir.
func StartProcessForTest(t *testing.T) *Server {
	t.Helper()
	if _, err := Binary(); err != nil || os.Geteuid() != 0 {
		Start(t, Options{}) // skips or fails with the reason
	}
	long := filepath.Join(searchableTempDir(t), strings.Repeat("long-directory-name-", 4))
	s, err := StartProcess(long, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	if strings.HasPrefix(s.BaseDir, long) || len(s.BaseDir) > maxBaseDir {
		t.Errorf("base_dir %q not moved to a short path", s.BaseDir)
	}
	return s
}

func TestStartProcessBadDir(t *testing.T) {
	if _, err := Binary(); err != nil || os.Geteuid() != 0 {
		t.Skip("needs dovecot and root")
	}
	dir, err := os.MkdirTemp("", "dovecottest-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o700)
	_, err = StartProcess(filepath.Join(dir, "sub"), Options{})
	if err == nil || !strings.Contains(err.Error(), "not searchable") {
		t.Errorf("StartProcess under a 0700 dir: err = %v", err)
	}
}

func TestEncodeUTF7(t *testing.T) {
	for in, want := range map[string]string{
		"INBOX":         "INBOX",
		"Entwürfe":      "Entw&APw-rfe",
		"Tom & Jerry":   "Tom &- Jerry",
		"日本語":           "&ZeVnLIqe-",
		"Lists.golang":  "Lists.golang",
		"~peter/mail/台": "~peter/mail/&U,A-",
	} {
		if got := encodeUTF7(in); got != want {
			t.Errorf("encodeUTF7(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCRLFSize(t *testing.T) {
	for _, m := range testMsgs {
		if got, want := crlfSize(m), len(served(m)); got != want {
			t.Errorf("crlfSize(%q) = %d, want %d", m, got, want)
		}
	}
}

// fakeTB records how Start ended the test.
type fakeTB struct {
	testing.TB
	fatal, skip string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Fatal(args ...any) { f.fatal = fmt.Sprint(args...); runtime.Goexit() }
func (f *fakeTB) Skip(args ...any)  { f.skip = fmt.Sprint(args...); runtime.Goexit() }
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skip = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Cleanup(func()) { panic("Start got past the missing binary") }

func TestMissingDovecot(t *testing.T) {
	t.Setenv("MAILFS_DOVECOT", filepath.Join(t.TempDir(), "no-dovecot"))
	for _, ci := range []string{"true", "false"} {
		t.Setenv("CI", ci)
		t.Setenv("MAILFS_TEST_DISALLOW_SKIP", "")
		f := &fakeTB{}
		done := make(chan struct{})
		go func() {
			defer close(done)
			Start(f, Options{})
		}()
		<-done
		if ci == "true" {
			if !strings.Contains(f.fatal, "not an executable file") || !strings.Contains(f.fatal, "skips are not allowed under CI") {
				t.Errorf("CI=true: fatal=%q skip=%q, want a failure", f.fatal, f.skip)
			}
		} else if !strings.Contains(f.skip, "not an executable file") || f.fatal != "" {
			t.Errorf("CI=false: fatal=%q skip=%q, want a skip", f.fatal, f.skip)
		}
	}
}

// TestQuirks pins down Dovecot behaviours that differ from byte-exact
// storage, so tests comparing against the server know what to expect.
func TestQuirks(t *testing.T) {
	s := Start(t, Options{})
	ctx := ctxFor(t)
	msgs := [][]byte{
		[]byte("Subject: nul\r\n\r\na\x00b\r\n"),
		[]byte("Subject: bare cr\r\n\r\na\rb\r\n"),
		[]byte("Subject: trailing cr\r\n\r\nab\r"),
	}
	uids, err := s.Append(ctx, "", msgs)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteMaildir("Direct", msgs); err != nil {
		t.Fatal(err)
	}
	appended, err := s.FetchAll(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	direct, err := s.FetchAll(ctx, "Direct")
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct{ appended, direct string }{
		// NUL is served as 0x80 outside BINARY fetches.
		{"Subject: nul\r\n\r\na\x80b\r\n", "Subject: nul\r\n\r\na\x80b\r\n"},
		// A bare CR inside a line is kept.
		{"Subject: bare cr\r\n\r\na\rb\r\n", "Subject: bare cr\r\n\r\na\rb\r\n"},
		// APPEND drops a final lone CR; a file written directly keeps it.
		{"Subject: trailing cr\r\n\r\nab", "Subject: trailing cr\r\n\r\nab\r"},
	} {
		if got := string(appended[uids[i]]); got != want.appended {
			t.Errorf("appended message %d served as %q, want %q", i, got, want.appended)
		}
		if got := string(direct[uint32(i+1)]); got != want.direct {
			t.Errorf("Maildir message %d served as %q, want %q", i, got, want.direct)
		}
	}
}

// TestCorpus loads the shared corpus both ways and checks that Dovecot
// serves every message with bare LF turned into CRLF and nothing else
// changed, and that RFC822.SIZE matches.
func TestCorpus(t *testing.T) {
	files := testenv.Corpus(t)
	s := Start(t, Options{})
	ctx := ctxFor(t)
	msgs := make([][]byte, len(files))
	for i, f := range files {
		msgs[i] = f.Data
	}
	if err := s.CreateFolder(ctx, "Appended"); err != nil {
		t.Fatal(err)
	}
	uids, err := s.Append(ctx, "Appended", msgs)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteMaildir("Direct", msgs); err != nil {
		t.Fatal(err)
	}
	direct := make([]uint32, len(msgs))
	for i := range direct {
		direct[i] = uint32(i + 1)
	}
	c := s.Dial(t)
	for folder, uids := range map[string][]uint32{"Appended": uids, "Direct": direct} {
		got, err := s.FetchAll(ctx, folder)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(files) {
			t.Fatalf("%s: %d messages, want %d", folder, len(got), len(files))
		}
		for i, f := range files {
			if !bytes.Equal(got[uids[i]], served(f.Data)) {
				t.Errorf("%s: %s served differently", folder, f.Name)
			}
		}
		if _, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			t.Fatal(err)
		}
		sizes, err := c.Fetch(imap.UIDSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, RFC822Size: true}).Collect()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range sizes {
			if m.RFC822Size != int64(len(got[uint32(m.UID)])) {
				t.Errorf("%s UID %d: RFC822.SIZE %d, served %d bytes", folder, m.UID, m.RFC822Size, len(got[uint32(m.UID)]))
			}
		}
	}
}

func TestStartFailure(t *testing.T) {
	if _, err := Binary(); err != nil || os.Geteuid() != 0 {
		Start(t, Options{}) // skips or fails with the reason
	}
	dir := filepath.Join(searchableTempDir(t), "x")
	_, err := StartProcess(dir, Options{ExtraConfig: "no_such_setting = 1"})
	if err == nil {
		t.Fatal("StartProcess with a bad setting succeeded")
	}
	if !strings.HasPrefix(err.Error(), "dovecottest: ") || !strings.Contains(err.Error(), "no_such_setting") {
		t.Errorf("error does not show Dovecot's complaint: %v", err)
	}
	t.Log(err)
	if _, err := os.Stat(filepath.Join(dir, "run")); !os.IsNotExist(err) {
		t.Errorf("base_dir left after failed start: %v", err)
	}
}

func TestExtraConfig(t *testing.T) {
	s := Start(t, Options{ExtraConfig: "protocol imap {\n  imap_capability = +XMAILFSTEST\n}"})
	c := s.Dial(t)
	caps, err := c.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	if !caps.Has("XMAILFSTEST") {
		t.Errorf("ExtraConfig not applied: capabilities %v", caps)
	}
}

// searchableTempDir returns a temporary directory the mail user can
// traverse (t.TempDir's are mode 0700).
func searchableTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "dovecottest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
