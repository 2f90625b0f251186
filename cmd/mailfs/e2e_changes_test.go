package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"mailfs/internal/dovecottest"
	"mailfs/internal/testenv"
)

// Safety of the changes made through a mount: a user who runs rm on one
// file loses exactly that message, whatever else happened on the server
// since the listing. Every test takes the server's full contents (every
// folder, every message's UID, flags and bytes) before and after, through
// its own IMAP connection, and asserts that the difference is exactly the
// intended change. The programs (rm, mv, cp, grep, setfattr) run on a mount
// served by the mailfs binary in a subprocess.

// msgState is one message as the server holds it.
type msgState struct {
	UID      uint32
	Validity uint32   // the folder's UIDVALIDITY: a recreated folder shows
	Flags    []string // sorted; \Recent left out (it belongs to a session)
	Body     []byte   // BODY.PEEK[]
}

// snapshot returns every selectable folder (LIST "" "*") with every
// message, by UID, read with EXAMINE and BODY.PEEK so nothing changes.
func snapshot(t *testing.T, dc *dovecottest.Server) map[string][]msgState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := dc.Connect(ctx)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	boxes, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatalf("snapshot: LIST: %v", err)
	}
	out := map[string][]msgState{}
	for _, box := range boxes {
		if slices.ContainsFunc(box.Attrs, func(a imap.MailboxAttr) bool {
			return strings.EqualFold(string(a), string(imap.MailboxAttrNoSelect)) ||
				strings.EqualFold(string(a), string(imap.MailboxAttrNonExistent))
		}) {
			continue
		}
		sel, err := c.Select(box.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			t.Fatalf("snapshot: EXAMINE %s: %v", box.Mailbox, err)
		}
		msgs := []msgState{}
		if sel.NumMessages > 0 {
			section := &imap.FetchItemBodySection{Peek: true}
			bufs, err := c.Fetch(imap.UIDSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{
				UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{section},
			}).Collect()
			if err != nil {
				t.Fatalf("snapshot: UID FETCH %s: %v", box.Mailbox, err)
			}
			for _, m := range bufs {
				body := m.FindBodySection(section)
				if m.UID == 0 || body == nil {
					t.Fatalf("snapshot: %s: incomplete FETCH response for message %d", box.Mailbox, m.SeqNum)
				}
				var flags []string
				for _, f := range m.Flags {
					if !strings.EqualFold(string(f), `\Recent`) {
						flags = append(flags, string(f))
					}
				}
				sort.Strings(flags)
				msgs = append(msgs, msgState{UID: uint32(m.UID), Validity: sel.UIDValidity, Flags: flags, Body: body})
			}
			if len(msgs) != int(sel.NumMessages) {
				t.Fatalf("snapshot: %s: EXAMINE says %d messages, FETCH gave %d", box.Mailbox, sel.NumMessages, len(msgs))
			}
		}
		slices.SortFunc(msgs, func(a, b msgState) int { return int(a.UID) - int(b.UID) })
		out[box.Mailbox] = msgs
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatalf("snapshot: LOGOUT: %v", err)
	}
	return out
}

func flagString(flags []string) string { return "[" + strings.Join(flags, " ") + "]" }

// diffSnapshots says precisely what changed from before to after, one line
// per change, sorted: a folder created or gone, its UIDVALIDITY changed, a
// message expunged or added, its flags or bytes changed.
func diffSnapshots(before, after map[string][]msgState) []string {
	var out []string
	folders := map[string]bool{}
	for f := range before {
		folders[f] = true
	}
	for f := range after {
		folders[f] = true
	}
	for f := range folders {
		b, inB := before[f]
		a, inA := after[f]
		switch {
		case !inB:
			out = append(out, fmt.Sprintf("folder %s: created", f))
		case !inA:
			out = append(out, fmt.Sprintf("folder %s: gone", f))
		}
		if len(b) > 0 && len(a) > 0 && b[0].Validity != a[0].Validity {
			out = append(out, fmt.Sprintf("folder %s: uidvalidity %d → %d", f, b[0].Validity, a[0].Validity))
		}
		bm := map[uint32]msgState{}
		for _, m := range b {
			bm[m.UID] = m
		}
		am := map[uint32]msgState{}
		for _, m := range a {
			am[m.UID] = m
		}
		for uid, m := range bm {
			n, ok := am[uid]
			if !ok {
				out = append(out, fmt.Sprintf("%s uid %d: expunged", f, uid))
				continue
			}
			if !slices.Equal(m.Flags, n.Flags) {
				out = append(out, fmt.Sprintf("%s uid %d: flags %s → %s", f, uid, flagString(m.Flags), flagString(n.Flags)))
			}
			if !bytes.Equal(m.Body, n.Body) {
				out = append(out, fmt.Sprintf("%s uid %d: bytes changed (%d → %d bytes)", f, uid, len(m.Body), len(n.Body)))
			}
		}
		for uid := range am {
			if _, ok := bm[uid]; !ok {
				out = append(out, fmt.Sprintf("%s uid %d: added", f, uid))
			}
		}
	}
	sortChanges(out)
	return out
}

// sortChanges orders change lines by folder, then UID numerically.
func sortChanges(lines []string) {
	key := func(s string) (string, int) {
		if i := strings.Index(s, " uid "); i >= 0 {
			rest := s[i+5:]
			j := strings.IndexByte(rest, ':')
			if j > 0 {
				if n, err := strconv.Atoi(rest[:j]); err == nil {
					return s[:i], n
				}
			}
		}
		return s, -1
	}
	slices.SortFunc(lines, func(a, b string) int {
		fa, na := key(a)
		fb, nb := key(b)
		if c := strings.Compare(fa, fb); c != 0 {
			return c
		}
		if na != nb {
			return na - nb
		}
		return strings.Compare(a, b)
	})
}

// wantChanges asserts that from before to after exactly the changes want
// happened, nothing else.
func wantChanges(t *testing.T, what string, before, after map[string][]msgState, want ...string) {
	t.Helper()
	got := diffSnapshots(before, after)
	want = slices.Clone(want)
	sortChanges(want)
	if slices.Equal(got, want) {
		return
	}
	var extra, missing []string
	for _, g := range got {
		if !slices.Contains(want, g) {
			extra = append(extra, g)
		}
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			missing = append(missing, w)
		}
	}
	t.Errorf("%s: the server changed otherwise than intended\nunintended changes (%d):\n\t%s\nintended changes that did not happen (%d):\n\t%s",
		what, len(extra), strings.Join(limit(extra, 40), "\n\t"), len(missing), strings.Join(limit(missing, 40), "\n\t"))
}

func limit(lines []string, n int) []string {
	if len(lines) <= n {
		return lines
	}
	return append(slices.Clone(lines[:n]), fmt.Sprintf("... and %d more", len(lines)-n))
}

func expungedLines(folder string, uids ...uint32) []string {
	var out []string
	for _, u := range uids {
		out = append(out, fmt.Sprintf("%s uid %d: expunged", folder, u))
	}
	return out
}

func addedLines(folder string, uids ...uint32) []string {
	var out []string
	for _, u := range uids {
		out = append(out, fmt.Sprintf("%s uid %d: added", folder, u))
	}
	return out
}

// find returns the message with uid in msgs.
func find(msgs []msgState, uid uint32) (msgState, bool) {
	for _, m := range msgs {
		if m.UID == uid {
			return m, true
		}
	}
	return msgState{}, false
}

// contentKey identifies a message by what a move must keep: bytes and flags.
func contentKey(m msgState) string { return flagString(m.Flags) + "\x00" + string(m.Body) }

func multiset(msgs []msgState) map[string]int {
	out := map[string]int{}
	for _, m := range msgs {
		out[contentKey(m)]++
	}
	return out
}

// sameMultiset reports how got differs from want as a multiset.
func sameMultiset(got, want map[string]int) (missing, extra int) {
	for k, n := range want {
		if d := n - got[k]; d > 0 {
			missing += d
		}
	}
	for k, n := range got {
		if d := n - want[k]; d > 0 {
			extra += d
		}
	}
	return missing, extra
}

// message makes a distinct test message with CRLF line ends (stored and
// served unchanged) and lines marker lines of "needle".
func message(tag string, i, lines, pad int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: sender%d@example.org\r\nTo: me@example.org\r\nSubject: %s %d\r\nMessage-ID: <%s-%d@example.org>\r\nDate: Mon, 2 Mar 2026 10:%02d:00 +0000\r\n\r\n",
		i, tag, i, tag, i, i%60)
	for l := range lines {
		fmt.Fprintf(&b, "needle %d of message %s-%d\r\n", l, tag, i)
	}
	for range pad {
		fmt.Fprintf(&b, "filler text for %s-%d, to give the message some weight\r\n", tag, i)
	}
	return []byte(b.String())
}

func appendMessages(t *testing.T, dc *dovecottest.Server, folder string, msgs [][]byte) []uint32 {
	t.Helper()
	ctx := context.Background()
	if folder != "INBOX" {
		if err := dc.CreateFolder(ctx, folder); err != nil {
			t.Fatal(err)
		}
	}
	uids, err := dc.Append(ctx, folder, msgs)
	if err != nil {
		t.Fatal(err)
	}
	return uids
}

// other is another IMAP client of the same account, as a phone or webmail
// would be.
type other struct {
	t *testing.T
	c *imapclient.Client
}

func otherClient(t *testing.T, dc *dovecottest.Server) other {
	return other{t: t, c: dc.Dial(t)}
}

func (o other) sel(folder string) {
	o.t.Helper()
	if _, err := o.c.Select(folder, nil).Wait(); err != nil {
		o.t.Fatalf("other client: SELECT %s: %v", folder, err)
	}
}

// addFlags: UID STORE +FLAGS.SILENT.
func (o other) addFlags(folder string, flag imap.Flag, uids ...uint32) {
	o.t.Helper()
	o.sel(folder)
	set := imap.UIDSet{}
	for _, u := range uids {
		set.AddNum(imap.UID(u))
	}
	if err := o.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{flag}}, nil).Close(); err != nil {
		o.t.Fatalf("other client: UID STORE %v +FLAGS (%s): %v", uids, flag, err)
	}
}

// expunge: UID STORE +FLAGS.SILENT (\Deleted), then UID EXPUNGE of them.
func (o other) expunge(folder string, uids ...uint32) {
	o.t.Helper()
	o.addFlags(folder, imap.FlagDeleted, uids...)
	set := imap.UIDSet{}
	for _, u := range uids {
		set.AddNum(imap.UID(u))
	}
	if err := o.c.UIDExpunge(set).Close(); err != nil {
		o.t.Fatalf("other client: UID EXPUNGE %v: %v", uids, err)
	}
}

// toolResult is how an external program ended.
type toolResult struct {
	stdout, stderr string
	code           int
	elapsed        time.Duration
}

func (r toolResult) String() string {
	return fmt.Sprintf("exit %d after %v, stderr %q", r.code, r.elapsed.Round(time.Millisecond), limitString(r.stderr, 2000))
}

func limitString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// command prepares an external program run in dir, stdin not a terminal.
func command(ctx context.Context, dir, name string, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	return cmd, &stdout, &stderr
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee) && ee.Exited():
		return ee.ExitCode()
	}
	t.Fatalf("program did not exit normally: %v", err)
	return -1
}

// runTool runs a program in dir to completion.
func runTool(t *testing.T, dir, name string, args ...string) toolResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd, stdout, stderr := command(ctx, dir, name, args...)
	began := time.Now()
	err := cmd.Run()
	return toolResult{stdout: stdout.String(), stderr: stderr.String(), code: exitCode(t, err), elapsed: time.Since(began)}
}

// mustRun runs a program that must succeed.
func mustRun(t *testing.T, dir, name string, args ...string) toolResult {
	t.Helper()
	r := runTool(t, dir, name, args...)
	if r.code != 0 {
		t.Fatalf("%s %s: %v", name, strings.Join(limit(args, 6), " "), r)
	}
	return r
}

// mustFail runs a program that must fail with the message of errno.
func mustFail(t *testing.T, dir string, errno string, name string, args ...string) {
	t.Helper()
	r := runTool(t, dir, name, args...)
	if r.code == 0 || !strings.Contains(r.stderr, errno) {
		t.Errorf("%s %s: %v; want a failure %q", name, strings.Join(args, " "), r, errno)
	}
}

// lsNames runs ls -l on dir and returns the names of the files listed.
func lsNames(t *testing.T, dir string) []string {
	t.Helper()
	r := mustRun(t, dir, "ls", "-l")
	var names []string
	for _, line := range strings.Split(r.stdout, "\n") {
		f := strings.Fields(line)
		if len(f) >= 9 && strings.HasPrefix(f[0], "-") {
			names = append(names, f[len(f)-1])
		}
	}
	sort.Strings(names)
	return names
}

func emlNames(uids ...uint32) []string {
	var out []string
	for _, u := range uids {
		out = append(out, fmt.Sprintf("%d.eml", u))
	}
	sort.Strings(out)
	return out
}

func uidsOf(msgs []msgState) []uint32 {
	var out []uint32
	for _, m := range msgs {
		out = append(out, m.UID)
	}
	return out
}

// mountAccount mounts a and, if the test fails, shows what mailfs logged.
func mountAccount(t *testing.T, a account, mnt string, flags ...string) *daemon {
	t.Helper()
	d := a.mount(t, mnt, flags...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("mailfs log (%s):\n%s", mnt, limitString(d.stderr.String(), 20000))
		}
	})
	return d
}

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.SkipOrFail(t, "%s not installed", tool)
		}
	}
}

// TestSafetyRmAfterOtherClient: the mount has listed INBOX; another client
// then expunges some messages, flags one \Deleted without expunging it and
// appends new ones, which shifts every sequence number; rm of one file
// loses exactly that message under each expunge policy.
func TestSafetyRmAfterOtherClient(t *testing.T) {
	needFUSE(t)
	needTools(t, "rm")
	for _, policy := range []string{"immediate", "never", "on-unmount"} {
		t.Run(policy, func(t *testing.T) {
			began := time.Now()
			dc := dovecottest.Start(t, dovecottest.Options{})
			var msgs [][]byte
			for i := range 20 {
				msgs = append(msgs, message("rm", i+1, 3, 20))
			}
			uids := appendMessages(t, dc, "INBOX", msgs)
			if uids[0] != 1 || uids[19] != 20 {
				t.Fatalf("UIDs %v, want 1..20", uids)
			}
			o := otherClient(t, dc)
			// The message to delete carries a flag, which a \Deleted set
			// with FLAGS instead of +FLAGS would lose.
			o.addFlags("INBOX", imap.FlagFlagged, 10)
			o.addFlags("INBOX", imap.FlagSeen, 11)

			a := newAccount(t, dc, "imap", fmt.Sprintf("expunge = %q", policy))
			mnt := filepath.Join(t.TempDir(), "mnt")
			d := mountAccount(t, a, mnt)
			inbox := filepath.Join(mnt, "INBOX")
			if got := lsNames(t, inbox); !slices.Equal(got, emlNames(uids...)) {
				t.Fatalf("ls -l INBOX: %v, want 1..20", got)
			}

			before := snapshot(t, dc)
			// Meanwhile, elsewhere: 3, 7 and 15 expunged, 12 flagged
			// \Deleted but kept (a plain EXPUNGE would take it), 3 new.
			o.expunge("INBOX", 3, 7, 15)
			o.addFlags("INBOX", imap.FlagDeleted, 12)
			added := appendMessages(t, dc, "INBOX", [][]byte{message("new", 1, 1, 1), message("new", 2, 1, 1), message("new", 3, 1, 1)})
			mid := snapshot(t, dc)
			wantChanges(t, "the other client's changes", before, mid, append(append(expungedLines("INBOX", 3, 7, 15),
				`INBOX uid 12: flags [] → [\Deleted]`), addedLines("INBOX", added...)...)...)

			// UID 10 is now message number 8.
			r := mustRun(t, inbox, "rm", "10.eml")
			t.Logf("rm 10.eml: %v", r)
			after := snapshot(t, dc)
			switch policy {
			case "immediate":
				wantChanges(t, "rm 10.eml", mid, after, "INBOX uid 10: expunged")
			default:
				wantChanges(t, "rm 10.eml", mid, after, `INBOX uid 10: flags [\Flagged] → [\Deleted \Flagged]`)
			}
			names := lsNames(t, inbox)
			if slices.Contains(names, "10.eml") || !slices.Contains(names, "11.eml") {
				t.Errorf("ls -l INBOX after rm 10.eml: %v", names)
			}
			if _, err := os.Stat(filepath.Join(inbox, "10.eml")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("stat 10.eml after rm: %v, want ENOENT", err)
			}
			d.stop(t)

			final := snapshot(t, dc)
			if policy == "on-unmount" {
				wantChanges(t, "rm 10.eml, then unmount", mid, final, "INBOX uid 10: expunged")
			} else {
				wantChanges(t, "unmount", after, final)
			}
			// A new mount lists exactly the messages not flagged \Deleted.
			var visible []uint32
			for _, m := range final["INBOX"] {
				if !slices.Contains(m.Flags, `\Deleted`) {
					visible = append(visible, m.UID)
				}
			}
			d = mountAccount(t, a, mnt)
			if got := lsNames(t, inbox); !slices.Equal(got, emlNames(visible...)) {
				t.Errorf("ls -l INBOX on a new mount: %v, want %v", got, emlNames(visible...))
			}
			d.stop(t)
			wantChanges(t, "a second mount and ls", final, snapshot(t, dc))
			t.Logf("expunge = %q: %v", policy, time.Since(began).Round(time.Millisecond))
		})
	}
}

// pop3Session runs commands in a POP3 session of its own (USER/PASS, then
// cmds, then QUIT), each answered +OK, and returns the lines of the
// multi-line answers (those to UIDL and LIST without argument).
func pop3Session(t *testing.T, dc *dovecottest.Server, cmds ...string) []string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", dc.POP3Addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(conn)
	readLine := func() string {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("pop3: %v", err)
		}
		return strings.TrimRight(line, "\r\n")
	}
	expectOK := func(what string) {
		if line := readLine(); !strings.HasPrefix(line, "+OK") {
			t.Fatalf("pop3 %s: %q", what, line)
		}
	}
	expectOK("greeting")
	all := append([]string{"USER " + dc.User, "PASS " + dc.Password}, cmds...)
	all = append(all, "QUIT")
	var lines []string
	for _, c := range all {
		if _, err := fmt.Fprintf(conn, "%s\r\n", c); err != nil {
			t.Fatal(err)
		}
		what := c
		if strings.HasPrefix(c, "PASS ") {
			what = "PASS"
		}
		expectOK(what)
		if c == "UIDL" || c == "LIST" {
			for {
				line := readLine()
				if line == "." {
					break
				}
				lines = append(lines, line)
			}
		}
	}
	return lines
}

// pop3UIDLs returns the maildrop's UIDLs in message-number order.
func pop3UIDLs(t *testing.T, dc *dovecottest.Server) []string {
	t.Helper()
	var out []string
	for i, line := range pop3Session(t, dc, "UIDL") {
		n, uidl, ok := strings.Cut(line, " ")
		if !ok || n != strconv.Itoa(i+1) {
			t.Fatalf("pop3 UIDL: line %q", line)
		}
		out = append(out, uidl)
	}
	return out
}

// TestSafetyRmPOP3AfterOtherSession: the POP3 mount has listed INBOX;
// another POP3 session deletes messages 1 and 2, so every message number
// shifts by two; rm of one file deletes exactly that message.
func TestSafetyRmPOP3AfterOtherSession(t *testing.T) {
	needFUSE(t)
	needTools(t, "rm")
	began := time.Now()
	dc := dovecottest.Start(t, dovecottest.Options{POP3: true})
	var msgs [][]byte
	for i := range 10 {
		msgs = append(msgs, message("pop", i+1, 2, 10))
	}
	uids := appendMessages(t, dc, "INBOX", msgs)
	before := snapshot(t, dc)
	// Message n is the n-th UID: the maildrop in UID order.
	uidls := pop3UIDLs(t, dc)
	if len(uidls) != len(uids) {
		t.Fatalf("pop3 UIDL: %d messages, want %d", len(uidls), len(uids))
	}
	byUID := map[uint32]string{}
	for i, u := range uids {
		byUID[u] = uidls[i]
	}
	uidl := func(uid uint32) string { return byUID[uid] + ".eml" }
	var want []string
	for _, u := range uids {
		want = append(want, uidl(u))
	}
	sort.Strings(want)

	a := newAccount(t, dc, "pop3", "")
	mnt := filepath.Join(t.TempDir(), "mnt")
	d := mountAccount(t, a, mnt)
	inbox := filepath.Join(mnt, "INBOX")
	if got := lsNames(t, inbox); !slices.Equal(got, want) {
		t.Fatalf("ls -l INBOX: %v, want %v", got, want)
	}

	pop3Session(t, dc, "DELE 1", "DELE 2")
	mid := snapshot(t, dc)
	wantChanges(t, "another POP3 session's DELE 1, DELE 2", before, mid, expungedLines("INBOX", uids[0], uids[1])...)

	// uids[4] was message 5 when the mount listed; it is message 3 now.
	target := uidl(uids[4])
	r := mustRun(t, inbox, "rm", target)
	t.Logf("rm %s: %v", target, r)
	after := snapshot(t, dc)
	wantChanges(t, "rm "+target, mid, after, expungedLines("INBOX", uids[4])...)
	if names := lsNames(t, inbox); slices.Contains(names, target) || !slices.Contains(names, uidl(uids[5])) {
		t.Errorf("ls -l INBOX after rm: %v", names)
	}
	d.stop(t)
	wantChanges(t, "unmount", after, snapshot(t, dc))
	t.Logf("%v", time.Since(began).Round(time.Millisecond))
}

// TestSafetyRmAlreadyExpunged: rm of a file whose message another client
// has expunged since the listing fails with ENOENT and touches nothing
// else, not even a message that client flagged \Deleted; the mount goes
// on working.
func TestSafetyRmAlreadyExpunged(t *testing.T) {
	needFUSE(t)
	needTools(t, "rm")
	began := time.Now()
	dc := dovecottest.Start(t, dovecottest.Options{})
	var msgs [][]byte
	for i := range 10 {
		msgs = append(msgs, message("gone", i+1, 2, 10))
	}
	uids := appendMessages(t, dc, "INBOX", msgs)
	a := newAccount(t, dc, "imap", `expunge = "immediate"`)
	mnt := filepath.Join(t.TempDir(), "mnt")
	d := mountAccount(t, a, mnt)
	inbox := filepath.Join(mnt, "INBOX")
	if got := lsNames(t, inbox); !slices.Equal(got, emlNames(uids...)) {
		t.Fatalf("ls -l INBOX: %v", got)
	}
	before := snapshot(t, dc)
	o := otherClient(t, dc)
	o.expunge("INBOX", 4)
	o.addFlags("INBOX", imap.FlagDeleted, 6)
	mid := snapshot(t, dc)
	wantChanges(t, "the other client's changes", before, mid, "INBOX uid 4: expunged", `INBOX uid 6: flags [] → [\Deleted]`)

	mustFail(t, inbox, "No such file or directory", "rm", "4.eml")
	wantChanges(t, "rm of an expunged message", mid, snapshot(t, dc))
	if names := lsNames(t, inbox); slices.Contains(names, "4.eml") {
		t.Errorf("ls -l INBOX still lists 4.eml after rm said ENOENT: %v", names)
	}
	// The mount still deletes what it is asked to, exactly.
	mustRun(t, inbox, "rm", "5.eml")
	after := snapshot(t, dc)
	wantChanges(t, "rm 5.eml after the failed rm", mid, after, "INBOX uid 5: expunged")
	d.stop(t)
	wantChanges(t, "unmount", after, snapshot(t, dc))
	t.Logf("%v", time.Since(began).Round(time.Millisecond))
}

// needleCount is how many "needle" lines message i of TestSafetyParallelRm
// holds.
func needleCount(i int) int { return i%5 + 1 }

// TestSafetyParallelRm: four rm processes at once over interleaved
// quarters of 100 of 200 messages remove exactly those; then rm while a
// grep -r reads the same folder: grep reads every file that stays, right,
// and fails on none but the removed ones; exactly the removed are gone.
func TestSafetyParallelRm(t *testing.T) {
	needFUSE(t)
	needTools(t, "rm", "grep")
	began := time.Now()
	dc := dovecottest.Start(t, dovecottest.Options{})
	var msgs [][]byte
	for i := range 200 {
		msgs = append(msgs, message("par", i+1, needleCount(i+1), 500))
	}
	uids := appendMessages(t, dc, "INBOX", msgs)
	if uids[0] != 1 || uids[199] != 200 {
		t.Fatalf("UIDs %v..%v, want 1..200", uids[0], uids[199])
	}
	a := newAccount(t, dc, "imap", `expunge = "immediate"`)
	mnt := filepath.Join(t.TempDir(), "mnt")
	d := mountAccount(t, a, mnt)
	inbox := filepath.Join(mnt, "INBOX")
	if got := lsNames(t, inbox); len(got) != 200 {
		t.Fatalf("ls -l INBOX: %d files, want 200", len(got))
	}
	before := snapshot(t, dc)

	// Four processes, each the even UIDs u with u/2 % 4 == k.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var victims []uint32
	groups := make([][]string, 4)
	for u := uint32(2); u <= 200; u += 2 {
		victims = append(victims, u)
		groups[(u/2)%4] = append(groups[(u/2)%4], fmt.Sprintf("%d.eml", u))
	}
	type proc struct {
		cmd            *exec.Cmd
		stdout, stderr *syncBuffer
	}
	startAll := func(name string, argss [][]string) []proc {
		var ps []proc
		for _, args := range argss {
			cmd, _, _ := command(ctx, inbox, name, args...)
			p := proc{cmd, newSyncBuffer(), newSyncBuffer()}
			cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
			ps = append(ps, p)
		}
		for _, p := range ps {
			if err := p.cmd.Start(); err != nil {
				t.Fatal(err)
			}
		}
		return ps
	}
	t0 := time.Now()
	rms := startAll("rm", groups)
	for k, p := range rms {
		if code := exitCode(t, p.cmd.Wait()); code != 0 {
			t.Errorf("rm process %d: exit %d: %s", k, code, p.stderr.String())
		}
	}
	t.Logf("4 parallel rm of 25 files each: %v", time.Since(t0).Round(time.Millisecond))
	after := snapshot(t, dc)
	wantChanges(t, "4 parallel rm", before, after, expungedLines("INBOX", victims...)...)
	var odd []uint32
	for u := uint32(1); u <= 200; u += 2 {
		odd = append(odd, u)
	}
	if got := lsNames(t, inbox); !slices.Equal(got, emlNames(odd...)) {
		t.Errorf("ls -l INBOX after the parallel rm: %d files, want the %d odd UIDs", len(got), len(odd))
	}

	// rm of the UIDs u%4 == 1 (two processes) while grep -r reads INBOX.
	// The mount is fresh, so grep fetches the bodies while they go.
	d.stop(t)
	d = mountAccount(t, a, mnt)
	lsNames(t, inbox)
	// One rm process goes up the victims, one down: some go before grep
	// reaches them, some after it read them, some while it reads them.
	var victims2 []uint32
	var up, down []string
	for _, u := range odd {
		if u%4 == 1 {
			victims2 = append(victims2, u)
			up = append(up, fmt.Sprintf("%d.eml", u))
			down = slices.Insert(down, 0, fmt.Sprintf("%d.eml", u))
		}
	}
	t0 = time.Now()
	greps := startAll("grep", [][]string{{"--line-buffered", "-r", "-c", "-H", "needle", "."}})
	for g := greps[0]; g.stdout.String() == "" && time.Since(t0) < 20*time.Second; {
		time.Sleep(time.Millisecond) // grep has read its first file
	}
	rms = startAll("rm", [][]string{up[:len(up)/2], down[:len(down)/2]})
	for k, p := range rms {
		if code := exitCode(t, p.cmd.Wait()); code != 0 {
			t.Errorf("rm process %d during grep: exit %d: %s", k, code, p.stderr.String())
		}
	}
	rmDone := time.Since(t0)
	g := greps[0]
	code := exitCode(t, g.cmd.Wait())
	t.Logf("grep -r: exit %d after %v; the rm processes ended after %v", code, time.Since(t0).Round(time.Millisecond), rmDone.Round(time.Millisecond))
	isVictim2 := map[string]bool{}
	for _, u := range victims2 {
		isVictim2[fmt.Sprintf("%d.eml", u)] = true
	}
	// grep says 0 (matches) or, when it found a file gone between readdir
	// and open, 2 with only that complaint; never another error (EIO).
	enoent := 0
	for _, line := range strings.Split(strings.TrimSpace(g.stderr.String()), "\n") {
		if line == "" {
			continue
		}
		name, ok := strings.CutSuffix(strings.TrimPrefix(line, "grep: ./"), ": No such file or directory")
		if !ok || !isVictim2[name] {
			t.Errorf("grep -r: %q", line)
			continue
		}
		enoent++
	}
	if code != 0 && !(code == 2 && enoent > 0) {
		t.Errorf("grep -r exit %d; stderr %q", code, g.stderr.String())
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(g.stdout.String()), "\n") {
		name, count, _ := strings.Cut(strings.TrimPrefix(line, "./"), ":")
		uid, err := strconv.Atoi(strings.TrimSuffix(name, ".eml"))
		if err != nil || uid%2 == 0 || seen[name] {
			t.Errorf("grep -r: unexpected line %q", line)
			continue
		}
		seen[name] = true
		if n, _ := strconv.Atoi(count); n != needleCount(uid) {
			t.Errorf("grep -r: %s: %s needles, want %d", name, count, needleCount(uid))
		}
	}
	for _, u := range odd {
		name := fmt.Sprintf("%d.eml", u)
		if !seen[name] && !isVictim2[name] {
			t.Errorf("grep -r did not read %s, which was never removed", name)
		}
	}
	read := 0
	for name := range seen {
		if isVictim2[name] {
			read++
		}
	}
	t.Logf("grep read %d files; of the %d removed under it, it read %d before they went and found %d gone (ENOENT)", len(seen), len(victims2), read, enoent)
	final := snapshot(t, dc)
	wantChanges(t, "rm during grep -r", after, final, expungedLines("INBOX", victims2...)...)
	// What is left reads back byte-exact through the mount.
	files := readAll(t, inbox)
	var visible []msgState
	for _, m := range final["INBOX"] {
		if !slices.Contains(m.Flags, `\Deleted`) {
			visible = append(visible, m)
		}
	}
	if len(files) != len(visible) {
		t.Errorf("INBOX through the mount: %d files, the server has %d not flagged \\Deleted", len(files), len(visible))
	}
	for _, m := range visible {
		if b, ok := files[fmt.Sprintf("%d.eml", m.UID)]; !ok || !bytes.Equal(b, m.Body) {
			t.Errorf("uid %d through the mount: %d bytes (listed %v), the server has %d", m.UID, len(b), ok, len(m.Body))
		}
	}
	d.stop(t)
	t.Logf("%v", time.Since(began).Round(time.Millisecond))
}

// TestSafetyMoveAndBack: mv of 100 messages from A to B in one mv (five of
// them onto names B already has), then all back: at each step every
// message is in the right folder exactly once, bytes and flags unchanged,
// and nothing else moved.
func TestSafetyMoveAndBack(t *testing.T) {
	needFUSE(t)
	needTools(t, "mv")
	began := time.Now()
	dc := dovecottest.Start(t, dovecottest.Options{})
	var amsgs, bmsgs [][]byte
	for i := range 100 {
		amsgs = append(amsgs, message("moveA", i+1, 2, 30))
	}
	for i := range 5 {
		bmsgs = append(bmsgs, message("stayB", i+1, 2, 30))
	}
	auids := appendMessages(t, dc, "A", amsgs)
	buids := appendMessages(t, dc, "B", bmsgs)
	o := otherClient(t, dc)
	o.addFlags("A", imap.FlagFlagged, auids[6])
	o.addFlags("A", imap.FlagSeen, auids[7], auids[8])
	o.addFlags("B", imap.FlagSeen, buids[0])

	a := newAccount(t, dc, "imap", `expunge = "immediate"`)
	mnt := filepath.Join(t.TempDir(), "mnt")
	d := mountAccount(t, a, mnt)
	if got := lsNames(t, filepath.Join(mnt, "A")); !slices.Equal(got, emlNames(auids...)) {
		t.Fatalf("ls -l A: %v", got)
	}
	if got := lsNames(t, filepath.Join(mnt, "B")); !slices.Equal(got, emlNames(buids...)) {
		t.Fatalf("ls -l B: %v", got)
	}
	before := snapshot(t, dc)

	// checkMove: from old to now, exactly the messages moved left from
	// and arrived in to (new UIDs), the same multiset; nothing else.
	checkMove := func(what string, old, now map[string][]msgState, from, to string, moved []uint32) []uint32 {
		t.Helper()
		var arrived []uint32
		for _, m := range now[to] {
			if _, ok := find(old[to], m.UID); !ok {
				arrived = append(arrived, m.UID)
			}
		}
		wantChanges(t, what, old, now, append(expungedLines(from, moved...), addedLines(to, arrived...)...)...)
		var gone, came []msgState
		for _, u := range moved {
			m, _ := find(old[from], u)
			gone = append(gone, m)
		}
		for _, u := range arrived {
			m, _ := find(now[to], u)
			came = append(came, m)
		}
		if missing, extra := sameMultiset(multiset(came), multiset(gone)); missing+extra > 0 || len(came) != len(moved) {
			t.Errorf("%s: %d messages arrived in %s for %d moved: %d of the moved (bytes and flags) missing, %d unexpected",
				what, len(came), to, len(moved), missing, extra)
		}
		return arrived
	}
	// checkMount: the mount lists and reads what the server holds.
	checkMount := func(what string, snap map[string][]msgState) {
		t.Helper()
		for _, folder := range []string{"A", "B"} {
			files := readAll(t, filepath.Join(mnt, folder))
			if got, want := slices.Sorted(maps.Keys(files)), emlNames(uidsOf(snap[folder])...); !slices.Equal(got, want) {
				t.Errorf("%s: %s through the mount lists %d files %v, the server has %d", what, folder, len(got), limit(got, 10), len(want))
				continue
			}
			for _, m := range snap[folder] {
				if !bytes.Equal(files[fmt.Sprintf("%d.eml", m.UID)], m.Body) {
					t.Errorf("%s: %s/%d.eml through the mount differs from the server's", what, folder, m.UID)
				}
			}
		}
	}

	var args []string
	for _, u := range auids {
		args = append(args, fmt.Sprintf("A/%d.eml", u))
	}
	r := runTool(t, mnt, "mv", append(args, "B/")...)
	if r.code != 0 {
		t.Errorf("mv A/*.eml B/: %v", r)
	} else {
		t.Logf("mv of 100 messages A → B: %v", r.elapsed.Round(time.Millisecond))
	}
	mid := snapshot(t, dc)
	arrived := checkMove("mv A/*.eml B/", before, mid, "A", "B", auids)
	if len(mid["A"]) != 0 || len(mid["B"]) != 105 {
		t.Errorf("after mv A → B: A holds %d, B %d; want 0 and 105", len(mid["A"]), len(mid["B"]))
	}
	checkMount("after mv A → B", mid)

	args = args[:0]
	for _, u := range arrived {
		args = append(args, fmt.Sprintf("B/%d.eml", u))
	}
	r = runTool(t, mnt, "mv", append(args, "A/")...)
	if r.code != 0 {
		t.Errorf("mv back B → A: %v", r)
	} else {
		t.Logf("mv of 100 messages B → A: %v", r.elapsed.Round(time.Millisecond))
	}
	final := snapshot(t, dc)
	checkMove("mv back B → A", mid, final, "B", "A", arrived)
	// B is as it was, to the UID; A holds the same messages, new UIDs.
	wantChanges(t, "B after the round trip", map[string][]msgState{"B": before["B"]}, map[string][]msgState{"B": final["B"]})
	if missing, extra := sameMultiset(multiset(final["A"]), multiset(before["A"])); missing+extra > 0 {
		t.Errorf("A after the round trip: %d messages missing, %d unexpected", missing, extra)
	}
	checkMount("after mv back", final)
	d.stop(t)
	t.Logf("%v", time.Since(began).Round(time.Millisecond))
}

// serverForm is what Dovecot stores and serves (BODY[]) for a message
// APPENDed as raw: every bare LF becomes CRLF, and nothing else changes: a
// message without a final line break (50 corpus files) gets none, no byte
// is dropped or added. The corpus holds no NUL byte and no bare CR, so
// this rule says nothing of them (Dovecot serves a stored NUL as 0x80).
func serverForm(raw []byte) []byte {
	out := make([]byte, 0, len(raw)+len(raw)/32)
	for i, c := range raw {
		if c == '\n' && (i == 0 || raw[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}

// TestSafetyCopyCorpus: mkdir of a new folder through the mount, cp of the
// whole shared corpus into it (four cp processes at once); the server then
// holds the new folder with one message per corpus file, each in the
// server's form of that file (serverForm), no flags, and nothing else
// changed; the mount reads back exactly what FETCH BODY[] gives.
func TestSafetyCopyCorpus(t *testing.T) {
	needFUSE(t)
	needTools(t, "cp", "mkdir")
	corpus := testenv.Corpus(t)
	began := time.Now()
	dc := dovecottest.Start(t, dovecottest.Options{})
	appendMessages(t, dc, "INBOX", [][]byte{message("inbox", 1, 1, 1)})
	a := newAccount(t, dc, "imap", "")
	mnt := filepath.Join(t.TempDir(), "mnt")
	d := mountAccount(t, a, mnt)
	before := snapshot(t, dc)

	mustRun(t, mnt, "mkdir", "Corpus")
	mid := snapshot(t, dc)
	wantChanges(t, "mkdir Corpus", before, mid, "folder Corpus: created")

	// Four cp processes at once, each over every fourth file: the
	// APPENDs of one folder interleave. (One cp of the 540 files takes
	// about 23 s with the race detector: every APPEND makes the next
	// lookup fetch the whole listing again.)
	dir := testenv.CorpusDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var cps []*exec.Cmd
	var errs []*bytes.Buffer
	for k := range 4 {
		var args []string
		for i := k; i < len(corpus); i += 4 {
			args = append(args, filepath.Join(dir, corpus[i].Name))
		}
		cmd, _, stderr := command(ctx, mnt, "cp", append(args, "Corpus/")...)
		cps = append(cps, cmd)
		errs = append(errs, stderr)
	}
	t0 := time.Now()
	for _, cmd := range cps {
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
	}
	for k, cmd := range cps {
		if code := exitCode(t, cmd.Wait()); code != 0 {
			t.Errorf("cp process %d: exit %d: %s", k, code, limitString(errs[k].String(), 2000))
		}
	}
	t.Logf("4 parallel cp of %d corpus files: %v", len(corpus), time.Since(t0).Round(time.Millisecond))
	after := snapshot(t, dc)
	served := after["Corpus"]
	wantChanges(t, "cp corpus", mid, after, addedLines("Corpus", uidsOf(served)...)...)
	if len(served) != len(corpus) {
		t.Errorf("Corpus holds %d messages, the corpus has %d files", len(served), len(corpus))
	}
	// Every message is the server's form of one file, each file once: the
	// multiset of serverForm(file) is the multiset of FETCH BODY[].
	want := map[string]int{}
	changed := 0
	for _, c := range corpus {
		want[string(serverForm(c.Data))]++
		if !bytes.Equal(serverForm(c.Data), c.Data) {
			changed++
		}
	}
	for _, m := range served {
		if len(m.Flags) != 0 {
			t.Errorf("Corpus uid %d: flags %v, want none", m.UID, m.Flags)
		}
		if want[string(m.Body)] == 0 {
			t.Errorf("Corpus uid %d (%d bytes) is the server form of no corpus file (or of one stored twice)", m.UID, len(m.Body))
			continue
		}
		want[string(m.Body)]--
	}
	for body, n := range want {
		if n > 0 {
			t.Errorf("%d× a corpus file (%d bytes in server form) is not on the server", n, len(body))
		}
	}
	t.Logf("%d of %d files are stored in another form than the file's (bare LF → CRLF)", changed, len(corpus))

	// Read back through the mount: the server's bytes, by UID.
	t0 = time.Now()
	files := readAll(t, filepath.Join(mnt, "Corpus"))
	t.Logf("read back %d files through the mount: %v", len(files), time.Since(t0).Round(time.Millisecond))
	if len(files) != len(served) {
		t.Errorf("Corpus through the mount: %d files, the server has %d", len(files), len(served))
	}
	for _, m := range served {
		name := fmt.Sprintf("%d.eml", m.UID)
		if b, ok := files[name]; !ok || !bytes.Equal(b, m.Body) {
			t.Errorf("%s through the mount: %d bytes (listed %v), FETCH BODY[] gives %d: %s", name, len(b), ok, len(m.Body), firstDifference(b, m.Body))
		}
	}
	d.stop(t)
	wantChanges(t, "unmount", after, snapshot(t, dc))
	t.Logf("%v", time.Since(began).Round(time.Millisecond))
}

func firstDifference(a, b []byte) string {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return fmt.Sprintf("first difference at byte %d: %q vs %q", i, a[max(0, i-10):min(len(a), i+10)], b[max(0, i-10):min(len(b), i+10)])
		}
	}
	if len(a) == len(b) {
		return "equal"
	}
	return fmt.Sprintf("one is a prefix of the other; tails %q vs %q", a[n:min(len(a), n+20)], b[n:min(len(b), n+20)])
}

// TestSafetyRefusals: what mailfs must refuse changes nothing on the
// server: writing into a message (EPERM), rmdir of a folder that holds
// messages (ENOTEMPTY), and on a --read-only mount rm, mv, cp, mkdir,
// rmdir and setfattr (EROFS). setfattr of user.mail.flags on a writable
// mount sets exactly that message's flags to exactly those.
func TestSafetyRefusals(t *testing.T) {
	needFUSE(t)
	needTools(t, "rm", "mv", "cp", "mkdir", "rmdir", "setfattr", "getfattr", "sh")
	began := time.Now()
	dc := dovecottest.Start(t, dovecottest.Options{})
	var msgs [][]byte
	for i := range 5 {
		msgs = append(msgs, message("ref", i+1, 1, 5))
	}
	uids := appendMessages(t, dc, "INBOX", msgs)
	appendMessages(t, dc, "Full", [][]byte{message("full", 1, 1, 1), message("full", 2, 1, 1), message("full", 3, 1, 1)})
	if err := dc.CreateFolder(context.Background(), "Empty"); err != nil {
		t.Fatal(err)
	}
	o := otherClient(t, dc)
	o.addFlags("INBOX", imap.FlagAnswered, uids[2])

	a := newAccount(t, dc, "imap", `expunge = "immediate"`)
	mnt := filepath.Join(t.TempDir(), "mnt")
	d := mountAccount(t, a, mnt)
	inbox := filepath.Join(mnt, "INBOX")
	lsNames(t, inbox)
	lsNames(t, filepath.Join(mnt, "Full"))
	before := snapshot(t, dc)

	mustFail(t, mnt, "Operation not permitted", "sh", "-c", "echo x >> INBOX/1.eml")
	mustFail(t, mnt, "Operation not permitted", "sh", "-c", "echo x > INBOX/2.eml")
	mustFail(t, mnt, "Directory not empty", "rmdir", "Full")
	wantChanges(t, "writing into messages, rmdir of a full folder", before, snapshot(t, dc))
	for i, u := range uids[:2] {
		if b, err := os.ReadFile(filepath.Join(inbox, fmt.Sprintf("%d.eml", u))); err != nil || !bytes.Equal(b, before["INBOX"][i].Body) {
			t.Errorf("%d.eml after the refused write: %d bytes, %v", u, len(b), err)
		}
	}

	r := mustRun(t, inbox, "setfattr", "-n", "user.mail.flags", "-v", `\Seen \Flagged`, "3.eml")
	t.Logf("setfattr: %v", r)
	after := snapshot(t, dc)
	wantChanges(t, "setfattr user.mail.flags", before, after, `INBOX uid 3: flags [\Answered] → [\Flagged \Seen]`)
	if r := mustRun(t, inbox, "getfattr", "--only-values", "-n", "user.mail.flags", "3.eml"); strings.TrimSpace(r.stdout) != `\Seen \Flagged` {
		t.Errorf("getfattr user.mail.flags after setfattr: %q, want %q", r.stdout, `\Seen \Flagged`)
	}
	d.stop(t)

	d = mountAccount(t, a, mnt, "--read-only")
	lsNames(t, inbox)
	base := snapshot(t, dc)
	wantChanges(t, "a read-only mount", after, base)
	src := filepath.Join(t.TempDir(), "new.eml")
	if err := os.WriteFile(src, message("copy", 1, 1, 1), 0o644); err != nil {
		t.Fatal(err)
	}
	const erofs = "Read-only file system"
	mustFail(t, mnt, erofs, "rm", "INBOX/1.eml")
	mustFail(t, mnt, erofs, "mv", "INBOX/2.eml", "Full/")
	mustFail(t, mnt, erofs, "cp", src, "INBOX/")
	mustFail(t, mnt, erofs, "mkdir", "New")
	mustFail(t, mnt, erofs, "rmdir", "Empty")
	mustFail(t, mnt, erofs, "setfattr", "-n", "user.mail.flags", "-v", `\Seen`, "INBOX/4.eml")
	mustFail(t, mnt, erofs, "sh", "-c", "echo x >> INBOX/5.eml")
	wantChanges(t, "refused changes on a read-only mount", base, snapshot(t, dc))
	if names := lsNames(t, inbox); !slices.Equal(names, emlNames(uids...)) {
		t.Errorf("ls -l INBOX on the read-only mount after the refusals: %v", names)
	}
	d.stop(t)
	t.Logf("%v", time.Since(began).Round(time.Millisecond))
}

// TestSafetyCopyDuringListing: a message written into a folder and
// closed (APPEND) while the mount is fetching that folder's listing for
// another program is listed by the next ls. The listing in flight was
// asked for before the APPEND: it must not count as newer than it.
func TestSafetyCopyDuringListing(t *testing.T) {
	needFUSE(t)
	needTools(t, "cp", "stat", "ls", "sh")
	began := time.Now()
	dc := dovecottest.Start(t, dovecottest.Options{})
	// A big folder, so that fetching its listing takes a while.
	var msgs [][]byte
	for i := range 5000 {
		msgs = append(msgs, []byte(fmt.Sprintf("Subject: big %d\r\n\r\nbody %d\r\n", i, i)))
	}
	if err := dc.WriteMaildir("Big", msgs); err != nil {
		t.Fatal(err)
	}
	a := newAccount(t, dc, "imap", "")
	mnt := filepath.Join(t.TempDir(), "mnt")
	d := mountAccount(t, a, mnt)
	big := filepath.Join(mnt, "Big")
	lsNames(t, big)
	src := filepath.Join(t.TempDir(), "first.eml")
	if err := os.WriteFile(src, message("first", 1, 1, 1), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	lost := 0
	const rounds = 3
	for i := range rounds {
		// cat writes a message into the folder and keeps the file open
		// until its input ends (a shell's own writes would flush early:
		// every close of a dup'ed descriptor is a FLUSH).
		writer, _, stderr := command(ctx, mnt, "sh", "-c", fmt.Sprintf("exec cat > Big/second-%d.eml", i))
		stdin, err := writer.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := writer.Start(); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(stdin, "Subject: second %d\r\n\r\nbody\r\n", i)
		time.Sleep(100 * time.Millisecond)
		// A copy makes the listing stale; a stat then has it fetched
		// again, and cat closes its file (APPEND) meanwhile.
		mustRun(t, mnt, "cp", src, "Big/")
		stat, _, _ := command(ctx, mnt, "stat", fmt.Sprintf("Big/%d.eml", 1000000+i))
		ts := time.Now()
		if err := stat.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Millisecond)
		stdin.Close()
		if err := writer.Wait(); err != nil {
			t.Fatalf("cat: %v: %s", err, stderr)
		}
		closed := time.Since(ts)
		stat.Wait()
		server := snapshotFolderCount(t, dc, "Big")
		listed := len(lsNames(t, big))
		t.Logf("round %d: the file was closed %v after the stat began, which took %v; ls lists %d, the server holds %d",
			i, closed.Round(time.Millisecond), time.Since(ts).Round(time.Millisecond), listed, server)
		if listed != server {
			lost++
			t.Errorf("round %d: ls -l Big lists %d files after cat closed its file, the server holds %d", i, listed, server)
		}
		// UIDs are 1..n here: the newest is n.
		if r := runTool(t, mnt, "stat", fmt.Sprintf("Big/%d.eml", server)); r.code != 0 {
			t.Errorf("round %d: stat of the newest message, Big/%d.eml: %v", i, server, r)
		}
	}
	d.stop(t)
	t.Logf("%d of %d rounds lost the written message from the listing; %v", lost, rounds, time.Since(began).Round(time.Millisecond))
}

// snapshotFolderCount is how many messages folder holds on the server.
func snapshotFolderCount(t *testing.T, dc *dovecottest.Server, folder string) int {
	t.Helper()
	c := dc.Dial(t)
	defer c.Close()
	sel, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	return int(sel.NumMessages)
}

// TestSafetyShellRedirection: a message written in several steps through
// one shell descriptor (each builtin's duplicate is closed, a flush each
// time) ends up on the server once, whole; the partial versions appended
// at earlier flushes are gone (expunge = "immediate").
func TestSafetyShellRedirection(t *testing.T) {
	needFUSE(t)
	needTools(t, "sh")
	dc := dovecottest.Start(t, dovecottest.Options{})
	appendMessages(t, dc, "INBOX", [][]byte{message("keep", 1, 2, 10)})
	a := newAccount(t, dc, "imap", `expunge = "immediate"`)
	mnt := filepath.Join(t.TempDir(), "mnt")
	d := mountAccount(t, a, mnt)
	before := snapshot(t, dc)
	script := `exec 3>INBOX/new.eml; printf 'Subject: in steps\r\n' >&3; printf '\r\n' >&3; printf 'line one\r\n' >&3; printf 'line two\r\n' >&3; exec 3>&-`
	mustRun(t, mnt, "sh", "-c", script)
	d.stop(t) // the last close's release has surely run
	after := snapshot(t, dc)
	want := "Subject: in steps\r\n\r\nline one\r\nline two\r\n"
	var added []uint32
	for _, m := range after["INBOX"] {
		if _, ok := find(before["INBOX"], m.UID); !ok {
			added = append(added, m.UID)
			if string(m.Body) != want {
				t.Errorf("uid %d: got %q, want %q", m.UID, m.Body, want)
			}
		}
	}
	wantChanges(t, "shell redirection", before, after, addedLines("INBOX", added...)...)
	if len(added) != 1 {
		t.Errorf("%d messages added, want exactly 1", len(added))
	}
}

// TestSafetyFolders: mkdir (nested too), rename of a directory with a
// message in it, rmdir of an emptied folder: each is exactly CREATE,
// RENAME, DELETE on the server, and the tree follows.
func TestSafetyFolders(t *testing.T) {
	needFUSE(t)
	needTools(t, "mkdir", "mv", "rmdir", "rm", "cp", "ls")
	dc := dovecottest.Start(t, dovecottest.Options{})
	appendMessages(t, dc, "INBOX", [][]byte{message("stay", 1, 1, 1)})
	a := newAccount(t, dc, "imap", `expunge = "immediate"`)
	mnt := filepath.Join(t.TempDir(), "mnt")
	d := mountAccount(t, a, mnt)
	before := snapshot(t, dc)

	mustRun(t, mnt, "mkdir", "Projects")
	mustRun(t, mnt, "mkdir", "Projects/Alpha")
	src := filepath.Join(t.TempDir(), "m.eml")
	body := message("alpha", 1, 2, 3)
	if err := os.WriteFile(src, body, 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, mnt, "cp", src, "Projects/Alpha/")
	mid := snapshot(t, dc)
	alpha := mid["Projects.Alpha"]
	if len(alpha) != 1 || !bytes.Equal(alpha[0].Body, body) {
		t.Fatalf("after mkdir + cp: Projects.Alpha holds %d messages; snapshot folders %v", len(alpha), slices.Sorted(maps.Keys(mid)))
	}
	if _, ok := mid["Projects"]; !ok {
		t.Errorf("mkdir Projects: no folder Projects on the server")
	}

	mustRun(t, mnt, "mv", "Projects/Alpha", "Projects/Beta")
	renamed := snapshot(t, dc)
	if _, ok := renamed["Projects.Alpha"]; ok {
		t.Errorf("after mv Projects/Alpha Projects/Beta: Projects.Alpha still on the server")
	}
	if beta := renamed["Projects.Beta"]; len(beta) != 1 || !bytes.Equal(beta[0].Body, body) {
		t.Errorf("after the rename: Projects.Beta holds %d messages, want the one message", len(beta))
	}
	if got := lsNames(t, filepath.Join(mnt, "Projects", "Beta")); len(got) != 1 {
		t.Errorf("ls Projects/Beta through the mount: %v, want one message", got)
	}
	mustFail(t, mnt, "Directory not empty", "rmdir", "Projects/Beta")
	mustRun(t, mnt, "sh", "-c", "rm Projects/Beta/*.eml")
	mustRun(t, mnt, "rmdir", "Projects/Beta")
	mustRun(t, mnt, "rmdir", "Projects")
	after := snapshot(t, dc)
	wantChanges(t, "mkdir, cp, rename, rm, rmdir", before, after)
	d.stop(t)
}
