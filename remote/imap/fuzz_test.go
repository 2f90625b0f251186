package imap_test

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"mailfs/internal/testenv"
	"mailfs/remote"
	"mailfs/remote/imap"
)

// FuzzResponses drives the client through a fake server that answers LIST
// with list, SELECT and EXAMINE with examine and every UID FETCH with
// fetch, each followed by the tagged OK of the command. Through the public
// API only (Dial, Folders, List, Body): nothing may panic, every call
// returns within a few seconds, what Folders and List return keeps their
// promises (sorted, UTF-8 names, ascending UIDs with their keys), and when
// fetch is one well-formed FETCH response for UID 1, a Body without error
// is exactly the literal it declared.
func FuzzResponses(f *testing.F) {
	const (
		list    = "* LIST (\\HasNoChildren) \"/\" INBOX\r\n* LIST (\\Noselect \\HasChildren) \"/\" Lists\r\n* LIST (\\HasNoChildren) \"/\" \"Lists/golang\"\r\n"
		examine = "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n* 2 EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY 1700000000] UIDs valid\r\n* OK [UIDNEXT 3] Predicted next UID\r\n"
		date    = "INTERNALDATE \"02-Nov-2026 10:00:00 +0100\""
		body    = "Subject: hi\r\n\r\nhello\r\n"
	)
	lit := func(s string) string { return "{" + strconv.Itoa(len(s)) + "}\r\n" + s }
	fetchOf := func(b string) string {
		return "* 1 FETCH (UID 1 FLAGS (\\Seen) RFC822.SIZE " + strconv.Itoa(len(b)) + " " + date + " BODY[] " + lit(b) + ")\r\n"
	}
	for _, seed := range [][3]string{
		{list, examine, fetchOf(body)},
		{"", "", ""},
		{list, "", fetchOf(body)},
		{list, examine, fetchOf("")},
		{list, examine, fetchOf("a\x00b\r\nT9 OK not the end\r\n)")},
		{list, examine, "* 1 FETCH (UID 1 BODY[] " + lit(body) + " FLAGS ())\r\n* 2 FETCH (UID 2 FLAGS () RFC822.SIZE 1 " + date + ")\r\n"},
		{list, examine, "* 1 FETCH (BODY[] " + lit(body) + " UID 1)\r\n"},
		{list, examine, "* 1 FETCH (UID 1 BODY[] NIL)\r\n"},
		{list, examine, "* 1 FETCH (UID 1 BODY[] {10}\r\nshort)\r\n"},
		{list, examine, "* 1 FETCH (UID 1 RFC822.SIZE 99999999999999 " + date + " BODY[] " + lit(body) + ")\r\n"},
		{list, examine, "* 1 FETCH (FLAGS (\\Seen))\r\n" + fetchOf(body) + "* 1 FETCH (UID 1 BODY[] " + lit("other") + ")\r\n"},
		{list, "* 4294967295 EXISTS\r\n* OK [UIDVALIDITY 4294967296] x\r\n", "* 4294967295 FETCH (UID 4294967295 RFC822.SIZE 0 " + date + ")\r\n"},
		{"* LIST () \"/\" \"&Jjo\"\r\n* LIST () \"/\" &Jjo-\r\n* LIST () \".\" \"Entw&APw-rfe\"\r\n* LIST () NIL \"&AAA-\"\r\n", examine, fetchOf(body)},
		{"* LIST () \"/\" {5}\r\nINBOX\r\n* LIST () \"/\" {3}\r\na/b\r\n", examine, fetchOf(body)},
		{"* LIST (" + strings.Repeat("\\X", 5000) + ") \"/\" INBOX\r\n", examine, fetchOf(strings.Repeat("long line ", 2000))},
		{list, "* BYE going away\r\n", fetchOf(body)},
		{"+ continue\r\n", "* 1 EXISTS\r\n", "* 1 FETCH (UID 1 BODY[] {5}\r\nhe"},
		{list, examine, "* 1 FETCH (UID 1 BODY[] ~{5}\r\nhello)\r\n"},
	} {
		f.Add([]byte(seed[0]), []byte(seed[1]), []byte(seed[2]))
	}
	f.Fuzz(func(t *testing.T, list, examine, fetch []byte) {
		srv := fuzzStartServer(t, map[string][]byte{"LIST": list, "SELECT": examine, "EXAMINE": examine, "UID FETCH": fetch})

		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		a, err := imap.Dial(ctx, imap.Config{Addr: srv.addr, TLS: imap.TLSNone, Username: "u", Password: "p",
			Timeout: 2 * time.Second, Connections: 1})
		cancel()
		if err != nil {
			t.Fatalf("Dial: %v", err) // the greeting and login are always good
		}
		defer fuzzTimed(t, "Close", func(context.Context) error { return a.Close() })

		var folders []remote.Folder
		fuzzTimed(t, "Folders", func(ctx context.Context) (err error) {
			folders, err = a.Folders(ctx)
			return err
		})
		fuzzCheckFolders(t, folders)

		var lst *remote.Listing
		fuzzTimed(t, "List", func(ctx context.Context) (err error) {
			lst, err = a.List(ctx, "INBOX")
			return err
		})
		var validity uint32
		if lst != nil {
			fuzzCheckListing(t, lst)
			validity = lst.UIDValidity
		}

		var got []byte
		err = fuzzTimed(t, "Body", func(ctx context.Context) (err error) {
			got, err = a.Body(ctx, remote.Ref{Folder: "INBOX", UIDValidity: validity, UID: 1, Key: "1"})
			return err
		})
		if want, ok := fuzzDeclaredBody(fetch); ok && err == nil && !bytes.Equal(got, want) {
			t.Fatalf("Body: got %d bytes %.200q, want the literal of %d bytes %.200q", len(got), got, len(want), want)
		}
	})
}

// fuzzTimed runs fn with a deadline of 3 s and fails the test if it has
// not returned after 6 s: a call must never hang on what a server sends
// (the client's Timeout is 2 s).
func fuzzTimed(t *testing.T, name string, fn func(ctx context.Context) error) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	select {
	case err := <-done:
		return err
	case <-time.After(6 * time.Second):
		t.Fatalf("%s has not returned after 6 s, want at most a few seconds", name)
		return nil
	}
}

func fuzzCheckFolders(t *testing.T, folders []remote.Folder) {
	t.Helper()
	for i, fo := range folders {
		if !utf8.ValidString(fo.Name) {
			t.Fatalf("folder %q: name not UTF-8", fo.Name)
		}
		if len(fo.Path) == 0 || fo.Delim != "" && strings.Join(fo.Path, fo.Delim) != fo.Name {
			t.Fatalf("folder %q: path %q with delimiter %q", fo.Name, fo.Path, fo.Delim)
		}
		if i > 0 && folders[i-1].Name > fo.Name {
			t.Fatalf("folders not sorted: %q before %q", folders[i-1].Name, fo.Name)
		}
	}
}

func fuzzCheckListing(t *testing.T, lst *remote.Listing) {
	t.Helper()
	for i, m := range lst.Messages {
		if m.UID == 0 || m.Key != strconv.FormatUint(uint64(m.UID), 10) {
			t.Fatalf("listing row %d: UID %d, key %q", i, m.UID, m.Key)
		}
		if i > 0 && lst.Messages[i-1].UID >= m.UID {
			t.Fatalf("listing: UID %d after %d, want ascending and unique", m.UID, lst.Messages[i-1].UID)
		}
		if m.Size < 0 {
			t.Fatalf("listing: UID %d has size %d", m.UID, m.Size)
		}
		if !fuzzFlagsInOrder(m.Flags) {
			t.Fatalf("listing: UID %d has flags %q in no stable order", m.UID, m.Flags)
		}
	}
}

// fuzzFlagsInOrder reports whether flags are as remote.SortFlags leaves them.
func fuzzFlagsInOrder(flags []string) bool {
	sorted := slices.Clone(flags)
	remote.SortFlags(sorted)
	return slices.Equal(sorted, flags)
}

// fuzzDeclaredBody returns the literal of fetch when fetch is exactly one
// well-formed FETCH response holding UID 1 and then BODY[] (with
// optionally FLAGS, RFC822.SIZE and INTERNALDATE): what Body must return
// for it.
func fuzzDeclaredBody(fetch []byte) ([]byte, bool) {
	rest, ok := bytes.CutPrefix(fetch, []byte("* "))
	n := fuzzDigits(rest, 9)
	if !ok || n == 0 || rest[0] == '0' {
		return nil, false
	}
	if rest, ok = bytes.CutPrefix(rest[n:], []byte(" FETCH (")); !ok {
		return nil, false
	}
	var body []byte
	haveUID, haveBody := false, false
	for first := true; ; first = false {
		if string(rest) == ")\r\n" {
			return body, haveUID && haveBody
		}
		if !first {
			if rest, ok = bytes.CutPrefix(rest, []byte(" ")); !ok {
				return nil, false
			}
		}
		switch {
		case bytes.HasPrefix(rest, []byte("UID 1 ")) || bytes.HasPrefix(rest, []byte("UID 1)")):
			if haveUID || haveBody {
				return nil, false
			}
			haveUID = true
			rest = rest[len("UID 1"):]
		case bytes.HasPrefix(rest, []byte("RFC822.SIZE ")):
			rest = rest[len("RFC822.SIZE "):]
			n := fuzzDigits(rest, 18)
			if n == 0 {
				return nil, false
			}
			rest = rest[n:]
		case bytes.HasPrefix(rest, []byte("FLAGS (")):
			i := bytes.IndexByte(rest, ')')
			if i < 0 || bytes.ContainsFunc(rest[len("FLAGS ("):i], func(r rune) bool {
				return !(r == ' ' || r == '\\' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
			}) {
				return nil, false
			}
			rest = rest[i+1:]
		case bytes.HasPrefix(rest, []byte(`INTERNALDATE "`)):
			rest = rest[len(`INTERNALDATE "`):]
			i := bytes.IndexByte(rest, '"')
			if i < 0 {
				return nil, false
			}
			if _, err := time.Parse("02-Jan-2006 15:04:05 -0700", string(rest[:i])); err != nil {
				return nil, false
			}
			rest = rest[i+1:]
		case bytes.HasPrefix(rest, []byte("BODY[] {")):
			if !haveUID || haveBody {
				return nil, false
			}
			rest = rest[len("BODY[] {"):]
			n := fuzzDigits(rest, 9)
			if n == 0 || !bytes.HasPrefix(rest[n:], []byte("}\r\n")) {
				return nil, false
			}
			size, _ := strconv.Atoi(string(rest[:n]))
			rest = rest[n+3:]
			if len(rest) < size {
				return nil, false
			}
			body, rest, haveBody = rest[:size], rest[size:], true
		default:
			return nil, false
		}
	}
}

// fuzzDigits returns how many ASCII fuzzDigits b starts with, 0 if more than max.
func fuzzDigits(b []byte, max int) int {
	n := 0
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		n++
	}
	if n > max {
		return 0
	}
	return n
}

// fuzzServer is an IMAP server on 127.0.0.1 that greets, accepts any
// login, and answers each command whose name is a key of replies with
// those bytes and then the command's tagged OK.
type fuzzServer struct {
	addr    string
	replies map[string][]byte
}

// fuzzStartServer starts a fuzzServer; it stops with the test.
func fuzzStartServer(t *testing.T, replies map[string][]byte) *fuzzServer {
	t.Helper()
	s := &fuzzServer{replies: replies}
	s.addr = testenv.Serve(t, s.serve)
	return s
}

const fuzzCaps = "IMAP4rev1 UIDPLUS MOVE"

// fuzzIdle is how long the server waits for the next command after
// answering with fuzzed bytes. The client sends its next command at once
// unless its parser waits for more (a "[" whose "]" never comes, a quoted
// string cut short): closing then ends the wait, where the client's own
// Timeout would cost seconds per input. The calls that may fail this way
// are only checked when they succeed.
const fuzzIdle = 50 * time.Millisecond

func (s *fuzzServer) serve(c net.Conn) {
	var lits fuzzLiteralTracker
	// send writes b; false means stop: the connection broke, or the
	// client now waits inside a literal that never ends, which only a
	// closed connection ends at once.
	send := func(b []byte) bool {
		_, err := c.Write(b)
		return err == nil && lits.feed(b)
	}
	if !send([]byte("* OK [CAPABILITY " + fuzzCaps + "] hi\r\n")) {
		return
	}
	br := bufio.NewReader(c)
	fuzzed := false // fuzzed bytes sent: the client's parser may be stuck
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		tag, cmd, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		cmd = strings.ToUpper(cmd)
		var reply []byte
		name := ""
		for _, n := range []string{"UID FETCH", "LIST", "SELECT", "EXAMINE", "CAPABILITY", "LOGOUT"} {
			if cmd == n || strings.HasPrefix(cmd, n+" ") {
				name = n
				break
			}
		}
		switch name {
		case "CAPABILITY":
			reply = []byte("* CAPABILITY " + fuzzCaps + "\r\n")
		case "LOGOUT":
			send([]byte("* BYE bye\r\n" + tag + " OK LOGOUT done\r\n"))
			return
		case "":
		default:
			reply = slices.Clone(s.replies[name])
			fuzzed = true
		}
		if !send(append(reply, tag+" OK done\r\n"...)) {
			return
		}
		if fuzzed {
			c.SetReadDeadline(time.Now().Add(fuzzIdle))
		}
	}
}

// fuzzLiteralTracker follows the literals ({N} at the end of a line, then N
// bytes) in what the server sent, as the client's parser does.
type fuzzLiteralTracker struct {
	need int64  // bytes of the current literal still to come
	tail []byte // the end of the current line
}

// feed takes the bytes sent next and reports whether the client can have
// read up to their end, not waiting inside a literal.
func (l *fuzzLiteralTracker) feed(b []byte) bool {
	for len(b) > 0 {
		if l.need > 0 {
			k := min(int64(len(b)), l.need)
			b = b[k:]
			l.need -= k
			continue
		}
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			l.keep(b)
			break
		}
		l.keep(b[:i])
		b = b[i+1:]
		l.need = fuzzLiteralSize(l.tail)
		l.tail = l.tail[:0]
	}
	return l.need == 0
}

// keep appends b to the line's tail, of which only the end matters.
func (l *fuzzLiteralTracker) keep(b []byte) {
	l.tail = append(l.tail, b...)
	if len(l.tail) > 64 {
		l.tail = append(l.tail[:0], l.tail[len(l.tail)-32:]...)
	}
}

// fuzzLiteralSize is N when line ends with "{N}" (then optionally " " and
// "\r", which the client's parser allows before the LF), else 0.
func fuzzLiteralSize(line []byte) int64 {
	line = bytes.TrimSuffix(line, []byte("\r"))
	line = bytes.TrimSuffix(line, []byte(" "))
	if !bytes.HasSuffix(line, []byte("}")) {
		return 0
	}
	i := bytes.LastIndexByte(line, '{')
	if i < 0 {
		return 0
	}
	num := line[i+1 : len(line)-1]
	if len(num) == 0 || fuzzDigits(num, 18) != len(num) {
		return 0 // not a literal to the client, or one it refuses
	}
	n, _ := strconv.ParseInt(string(num), 10, 64)
	return n
}
