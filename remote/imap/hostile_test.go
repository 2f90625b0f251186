package imap_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"

	"mailfs/internal/mailutilstest"
	"mailfs/internal/memserver"
	"mailfs/remote"
	"mailfs/remote/imap"
)

// Tests against servers that do what they should not: each failed before
// the fix it names.

func numberedMsgs(n int) [][]byte {
	var out [][]byte
	for i := 1; i <= n; i++ {
		out = append(out, []byte(fmt.Sprintf("From: a@example.org\r\nSubject: m%d\r\n\r\nbody %d\r\n", i, i)))
	}
	return out
}

var fetchRow = regexp.MustCompile(`(?m)^\* \d+ FETCH \((.*)\)\r?$`)
var uidItem = regexp.MustCompile(`UID (\d+)`)
var flagsItem = regexp.MustCompile(`FLAGS \(([^)]*)\)`)

// mailutilsFlags returns every message's flags, by UID, as a fresh imap4d
// session sees them.
func mailutilsFlags(t *testing.T, s *mailutilstest.Server) map[uint32]string {
	t.Helper()
	out := s.Run(t, "EXAMINE INBOX", "UID FETCH 1:* (UID FLAGS)")
	flags := map[uint32]string{}
	for _, m := range fetchRow.FindAllStringSubmatch(out, -1) {
		u := uidItem.FindStringSubmatch(m[1])
		f := flagsItem.FindStringSubmatch(m[1])
		if u == nil || f == nil {
			t.Fatalf("unexpected FETCH row %q", m[0])
		}
		n, _ := strconv.ParseUint(u[1], 10, 32)
		var kept []string
		for _, fl := range strings.Fields(f[1]) {
			if fl != `\Recent` {
				kept = append(kept, fl)
			}
		}
		slices.Sort(kept)
		flags[uint32(n)] = strings.Join(kept, " ")
	}
	return flags
}

// TestMailutilsNeverTheWrongMessage: GNU Mailutils applies a UID STORE of a
// UID above its highest to its last message. rm of a message another client
// had expunged flagged the wrong one \Deleted; an absent UID below the
// highest gave EIO (BAD) instead of ENOENT.
func TestMailutilsNeverTheWrongMessage(t *testing.T) {
	s := mailutilstest.Start(t, numberedMsgs(5))
	ctx := context.Background()
	// imap4d writes flags to its mbox when a session ends: each step runs
	// on a fresh account, closed (LOGOUT) before the server is asked.
	var validity uint32
	step := func(fn func(a *imap.Account)) {
		t.Helper()
		a, err := imap.Dial(ctx, imap.Config{Addr: s.Addr, TLS: imap.TLSNone, Username: "mailfs", Password: "secret", Connections: 2, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		l, err := a.List(ctx, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		if validity == 0 {
			validity = l.UIDValidity
		}
		fn(a)
	}
	ref := func(uid uint32) remote.Ref {
		return remote.Ref{Folder: "INBOX", UIDValidity: validity, UID: uid, Key: strconv.FormatUint(uint64(uid), 10)}
	}
	step(func(*imap.Account) {})
	// Another client expunges the highest (5) and one below it (2).
	s.Run(t, "SELECT INBOX", `UID STORE 5 +FLAGS.SILENT (\Deleted)`, `UID STORE 2 +FLAGS.SILENT (\Deleted)`, "EXPUNGE")
	clean := map[uint32]string{1: "", 3: "", 4: ""}
	check := func(what string, want map[uint32]string) {
		t.Helper()
		if got := mailutilsFlags(t, s); !mapsEqual(got, want) {
			t.Fatalf("%s: server flags %v, want %v", what, got, want)
		}
	}
	check("before", clean)

	for _, uid := range []uint32{5, 2} {
		step(func(a *imap.Account) {
			if err := a.Delete(ctx, []remote.Ref{ref(uid)}); !errors.Is(err, remote.ErrNotFound) {
				t.Errorf("rm of expunged UID %d: got %v, want ErrNotFound", uid, err)
			}
		})
		check(fmt.Sprintf("after rm of expunged UID %d", uid), clean)
		step(func(a *imap.Account) {
			if err := a.SetFlags(ctx, ref(uid), []string{`\Flagged`}); !errors.Is(err, remote.ErrNotFound) {
				t.Errorf("flags of expunged UID %d: got %v, want ErrNotFound", uid, err)
			}
		})
		check(fmt.Sprintf("after setting flags of expunged UID %d", uid), clean)
	}
	// A delete naming present and absent UIDs changes exactly the present.
	step(func(a *imap.Account) {
		if err := a.Delete(ctx, []remote.Ref{ref(5), ref(3), ref(2)}); !errors.Is(err, remote.ErrNotFound) {
			t.Errorf("rm of 5, 3, 2: got %v, want ErrNotFound for 5 and 2", err)
		}
	})
	check("after rm of 5, 3 and 2", map[uint32]string{1: "", 3: `\Deleted`, 4: ""})
	step(func(a *imap.Account) {
		if err := a.SetFlags(ctx, ref(4), []string{`\Seen`, `\Flagged`}); err != nil {
			t.Fatal(err)
		}
	})
	check("after setting flags of 4", map[uint32]string{1: "", 3: `\Deleted`, 4: `\Flagged \Seen`})
	step(func(a *imap.Account) {
		if err := a.SetFlags(ctx, ref(4), []string{`\Answered`}); err != nil {
			t.Fatal(err)
		}
	})
	check("after replacing flags of 4", map[uint32]string{1: "", 3: `\Deleted`, 4: `\Answered`})
}

func mapsEqual(a, b map[uint32]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// quirkAccount serves msgs (all in INBOX, plus an empty Archive) from the
// in-process server with quirks, and dials it.
func quirkAccount(t *testing.T, q memserver.Quirks, n int, cfg imap.Config) (*memserver.Server, *imap.Account) {
	t.Helper()
	var msgs []memserver.Message
	for _, raw := range numberedMsgs(n) {
		msgs = append(msgs, memserver.Message{Folder: "INBOX", Raw: raw})
	}
	srv, err := memserver.StartWith(msgs, q)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	if err := srv.User().Create("Archive", nil); err != nil {
		t.Fatal(err)
	}
	cfg.Addr, cfg.TLS, cfg.Username, cfg.Password = srv.Addr, imap.TLSNone, srv.Username, srv.Password
	return srv, dial(t, cfg)
}

// listFlags returns every message of folder with its flags (sorted, \Recent
// left out), by UID.
func listFlags(t *testing.T, a *imap.Account, folder string) (map[uint32]string, uint32) {
	t.Helper()
	l, err := a.List(context.Background(), folder)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint32]string{}
	for _, m := range l.Messages {
		var kept []string
		for _, f := range m.Flags {
			if f != `\Recent` {
				kept = append(kept, f)
			}
		}
		slices.Sort(kept)
		out[m.UID] = strings.Join(kept, " ")
	}
	return out, l.UIDValidity
}

// TestStrayChangesUndone: a server that applies every STORE, COPY and MOVE
// to its last message too (as Mailutils does for an absent UID). What it
// did to the last message is undone, and the call fails.
func TestStrayChangesUndone(t *testing.T) {
	ctx := context.Background()
	t.Run("store", func(t *testing.T) {
		logs := &syncBuffer{}
		_, a := quirkAccount(t, memserver.Quirks{StoreAlsoLast: true}, 4, imap.Config{Logger: slog.New(slog.NewTextHandler(logs, nil))})
		_, validity := listFlags(t, a, "INBOX")
		ref := func(uid uint32) remote.Ref {
			return remote.Ref{Folder: "INBOX", UIDValidity: validity, UID: uid, Key: strconv.Itoa(int(uid))}
		}
		err := a.Delete(ctx, []remote.Ref{ref(1)})
		if err == nil || errors.Is(err, remote.ErrNotFound) {
			t.Fatalf("rm on a server that also flagged the last message: got %v, want an error", err)
		}
		got, _ := listFlags(t, a, "INBOX")
		if want := map[uint32]string{1: `\Deleted`, 2: "", 3: "", 4: ""}; !mapsEqual(got, want) {
			t.Errorf("after rm of 1: flags %v, want %v", got, want)
		}
		if err := a.SetFlags(ctx, ref(2), []string{`\Flagged`, `$label1`}); err == nil {
			t.Fatal("setting flags on a server that also changed the last message: no error")
		}
		got, _ = listFlags(t, a, "INBOX")
		if want := map[uint32]string{1: `\Deleted`, 2: `$label1 \Flagged`, 3: "", 4: ""}; !mapsEqual(got, want) {
			t.Errorf("after setting flags of 2: flags %v, want %v", got, want)
		}
		if !strings.Contains(logs.String(), "DID NOT ASK FOR") {
			t.Errorf("the stray change was not logged as an error:\n%s", logs)
		}
	})
	for _, q := range []memserver.Quirks{{CopyAlsoLast: true}, {CopyAlsoLast: true, NoMove: true}} {
		t.Run(fmt.Sprintf("move/nomove=%v", q.NoMove), func(t *testing.T) {
			_, a := quirkAccount(t, q, 4, imap.Config{})
			_, validity := listFlags(t, a, "INBOX")
			err := a.Move(ctx, []remote.Ref{{Folder: "INBOX", UIDValidity: validity, UID: 1, Key: "1"}}, "Archive")
			if err == nil || errors.Is(err, remote.ErrNotFound) {
				t.Fatalf("mv on a server that also took the last message: got %v, want an error", err)
			}
			bodies := func(folder string) []string {
				l, err := a.List(ctx, folder)
				if err != nil {
					t.Fatal(err)
				}
				var out []string
				for _, m := range l.Messages {
					if slices.Contains(m.Flags, `\Deleted`) {
						continue
					}
					b, err := a.Body(ctx, remote.Ref{Folder: folder, UIDValidity: l.UIDValidity, UID: m.UID, Key: m.Key})
					if err != nil {
						t.Fatal(err)
					}
					out = append(out, strings.TrimSpace(string(b[strings.LastIndex(string(b), "\n\r\n")+3:])))
				}
				slices.Sort(out)
				return out
			}
			if got, want := bodies("INBOX"), []string{"body 2", "body 3", "body 4"}; !slices.Equal(got, want) {
				t.Errorf("INBOX after mv of 1: %v, want %v", got, want)
			}
			if got, want := bodies("Archive"), []string{"body 1"}; !slices.Equal(got, want) {
				t.Errorf("Archive after mv of 1: %v, want %v", got, want)
			}
		})
	}
}

// TestAppendIntoExaminedFolder: Courier-IMAP refuses APPEND into the folder
// the session has EXAMINEd ("NO Current box is selected READ-ONLY").
func TestAppendIntoExaminedFolder(t *testing.T) {
	_, a := quirkAccount(t, memserver.Quirks{AppendRefusedWhenExamined: true}, 2, imap.Config{Connections: 1})
	ctx := context.Background()
	if _, err := a.Body(ctx, remote.Ref{Folder: "INBOX", UID: 1, Key: "1"}); err != nil {
		t.Fatal(err) // the only connection now has INBOX EXAMINEd
	}
	raw := "Subject: new\r\n\r\nnew\r\n"
	if _, _, err := a.Append(ctx, "INBOX", strings.NewReader(raw), int64(len(raw)), time.Time{}, nil); err != nil {
		t.Fatalf("append into the EXAMINEd folder: %v", err)
	}
	if got, _ := listFlags(t, a, "INBOX"); len(got) != 3 {
		t.Errorf("after append: %d messages, want 3", len(got))
	}
}

// TestExamineRefused: a folder the server will not open is an error, not
// an empty folder; only NONEXISTENT means it is gone.
func TestExamineRefused(t *testing.T) {
	ctx := context.Background()
	for _, code := range []goimap.ResponseCode{"", goimap.ResponseCodeNoPerm, goimap.ResponseCodeNonExistent} {
		_, a := quirkAccount(t, memserver.Quirks{RefuseSelect: "Archive", RefuseCode: code}, 1, imap.Config{})
		_, err := a.List(ctx, "Archive")
		if err == nil {
			t.Fatalf("code %q: listing a folder the server refused to open: no error", code)
		}
		if notFound := errors.Is(err, remote.ErrNotFound); notFound != (code == goimap.ResponseCodeNonExistent) {
			t.Errorf("code %q: got %v (not found: %v)", code, err, notFound)
		}
	}
}
