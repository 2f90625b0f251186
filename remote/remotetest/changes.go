package remotetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"mailfs/remote"
)

// ChangeMessages returns the three messages RunChanges appends, in order:
// CRLF line endings, so that every server serves them byte for byte; the
// third is larger than 4 KiB (a synchronizing literal where the server has
// LITERAL- only).
func ChangeMessages() [][]byte {
	msg := func(n int, body string) []byte {
		return []byte(fmt.Sprintf("From: Ann Example <ann@example.org>\r\n"+
			"To: Bob Example <bob@example.org>\r\n"+
			"Subject: mailfs change test %d\r\n"+
			"Date: Tue, 05 Mar 2024 14:07:0%d +0100\r\n"+
			"Message-ID: <change-%d@mailfs.example.org>\r\n"+
			"MIME-Version: 1.0\r\n"+
			"Content-Type: text/plain; charset=us-ascii\r\n"+
			"\r\n%s", n, n, n, body))
	}
	big := strings.Repeat("A line of the third message, long enough to need a synchronizing literal.\r\n", 80)
	return [][]byte{
		msg(1, "First message.\r\n"),
		msg(2, "Second message: the one deleted.\r\n"),
		msg(3, big),
	}
}

// changeDates and changeFlags are what RunChanges appends ChangeMessages
// with.
var (
	changeDates = []time.Time{
		time.Date(2024, 3, 5, 14, 7, 9, 0, time.FixedZone("", 3600)),
		time.Date(2023, 12, 31, 23, 59, 59, 0, time.FixedZone("", -5*3600)),
		time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC),
	}
	changeFlags = [][]string{{`\Seen`}, {}, {`\Flagged`, "$Work"}}
)

// RunChanges checks the abilities for changing mail (remote.FolderEditor,
// Appender, FlagSetter, Deleter, Mover) that acct has, skipping those it
// lacks, on folders it creates: newFolder, which must not exist yet, and
// folders below it (named with the delimiter Folders reports).
//
// It leaves newFolder holding ChangeMessages()[0] (flags \Seen),
// ChangeMessages()[2] (moved away and back: flags \Flagged $Work) and
// ChangeMessages()[1], deleted: flagged \Deleted or expunged, as acct's
// expunge policy has it. Callers check that policy from there, before and
// after acct.Close.
func RunChanges(t *testing.T, acct remote.Account, newFolder string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	fe, ok := acct.(remote.FolderEditor)
	if !ok {
		t.Skip("not a FolderEditor: no fresh folder to change mail in")
	}
	ap, canAppend := acct.(remote.Appender)
	fset, canFlag := acct.(remote.FlagSetter)
	del, canDelete := acct.(remote.Deleter)
	mv, canMove := acct.(remote.Mover)

	folders, err := acct.Folders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	delim := ""
	for _, f := range folders {
		if f.Name == newFolder {
			t.Fatalf("folder %q exists already: RunChanges needs a fresh one", newFolder)
		}
		if delim == "" {
			delim = f.Delim
		}
	}
	sub := func(name string) string {
		if delim == "" {
			return newFolder + "-" + name
		}
		return newFolder + delim + name
	}
	child, renamed, missingFolder := sub("moved"), sub("renamed"), sub("missing")
	msgs := ChangeMessages()

	list := func(t *testing.T, folder string) *remote.Listing {
		t.Helper()
		l, err := acct.List(ctx, folder)
		if err != nil {
			t.Fatalf("list %s: %v", folder, err)
		}
		return l
	}
	refOf := func(folder string, l *remote.Listing, m remote.MessageInfo) remote.Ref {
		return remote.Ref{Folder: folder, UIDValidity: l.UIDValidity, UID: m.UID, Key: m.Key}
	}
	body := func(t *testing.T, r remote.Ref) []byte {
		t.Helper()
		b, err := acct.Body(ctx, r)
		if err != nil {
			t.Fatalf("body %s/%s: %v", r.Folder, r.Key, err)
		}
		return b
	}
	// byKey finds a listed message by key.
	byKey := func(l *remote.Listing, key string) (remote.MessageInfo, bool) {
		i := slices.IndexFunc(l.Messages, func(m remote.MessageInfo) bool { return m.Key == key })
		if i < 0 {
			return remote.MessageInfo{}, false
		}
		return l.Messages[i], true
	}
	folderNames := func(t *testing.T) []string {
		t.Helper()
		fs, err := acct.Folders(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, f := range fs {
			if !f.NoSelect {
				names = append(names, f.Name)
			}
		}
		return names
	}

	// keys[i] names msgs[i] in newFolder once appended.
	var keys [3]string
	var validity uint32
	created, appended, moved, renamedOK := false, false, false, false

	t.Run("CreateFolder", func(t *testing.T) {
		if err := fe.CreateFolder(ctx, newFolder); err != nil {
			t.Fatal(err)
		}
		if err := fe.CreateFolder(ctx, newFolder); !errors.Is(err, remote.ErrExists) {
			t.Errorf("second create of %q: got %v, want ErrExists", newFolder, err)
		}
		if err := fe.CreateFolder(ctx, child); err != nil {
			t.Fatal(err)
		}
		names := folderNames(t)
		for _, n := range []string{newFolder, child} {
			if !slices.Contains(names, n) {
				t.Errorf("created folder %q not listed in %q", n, names)
			}
		}
		if l := list(t, newFolder); len(l.Messages) != 0 {
			t.Errorf("fresh folder lists %d messages", len(l.Messages))
		}
		created = true
	})
	if !created {
		return
	}

	t.Run("Append", func(t *testing.T) {
		if !canAppend {
			t.Skip("not an Appender")
		}
		var uids [3]uint32
		for i, raw := range msgs {
			uid, v, err := ap.Append(ctx, newFolder, bytes.NewReader(raw), int64(len(raw)), changeDates[i], changeFlags[i])
			if err != nil {
				t.Fatalf("append #%d: %v", i, err)
			}
			uids[i] = uid
			if v != 0 {
				validity = v
			}
		}
		if _, _, err := ap.Append(ctx, missingFolder, bytes.NewReader(msgs[0]), int64(len(msgs[0])), time.Time{}, nil); !errors.Is(err, remote.ErrNotFound) {
			t.Errorf("append to a missing folder: got %v, want ErrNotFound", err)
		}
		l := list(t, newFolder)
		if len(l.Messages) != len(msgs) {
			t.Fatalf("after 3 appends: %d messages listed", len(l.Messages))
		}
		if validity != 0 && l.UIDValidity != validity {
			t.Errorf("append said UIDVALIDITY %d, listing says %d", validity, l.UIDValidity)
		}
		validity = l.UIDValidity
		for i, m := range l.Messages {
			if uids[i] != 0 && m.UID != uids[i] {
				t.Errorf("#%d: listed UID %d, append said %d", i, m.UID, uids[i])
			}
			if m.Size != int64(len(msgs[i])) {
				t.Errorf("#%d: size %d, want %d", i, m.Size, len(msgs[i]))
			}
			if !m.Date.Equal(changeDates[i]) {
				t.Errorf("#%d: date %v, want %v", i, m.Date, changeDates[i])
			}
			if got, want := cleanFlags(m.Flags), cleanFlags(changeFlags[i]); !slices.Equal(got, want) {
				t.Errorf("#%d: flags %q, want %q", i, got, want)
			}
			if b := body(t, refOf(newFolder, l, m)); !bytes.Equal(b, msgs[i]) {
				t.Errorf("#%d: body differs (%d bytes, want %d)", i, len(b), len(msgs[i]))
			}
			keys[i] = m.Key
		}
		appended = true
	})

	// snapshot is a folder's content: key → flags and bytes.
	type entry struct {
		flags []string
		body  []byte
	}
	snapshot := func(t *testing.T, folder string) (*remote.Listing, map[string]entry) {
		t.Helper()
		l := list(t, folder)
		out := map[string]entry{}
		for _, m := range l.Messages {
			out[m.Key] = entry{cleanFlags(m.Flags), body(t, refOf(folder, l, m))}
		}
		return l, out
	}
	same := func(t *testing.T, what string, a, b map[string]entry) {
		t.Helper()
		if len(a) != len(b) {
			t.Errorf("%s: %d messages, then %d", what, len(a), len(b))
		}
		for k, ea := range a {
			eb, ok := b[k]
			switch {
			case !ok:
				t.Errorf("%s: message %s gone", what, k)
			case !slices.Equal(ea.flags, eb.flags):
				t.Errorf("%s: message %s flags %q, then %q", what, k, ea.flags, eb.flags)
			case !bytes.Equal(ea.body, eb.body):
				t.Errorf("%s: message %s body changed", what, k)
			}
		}
	}
	refKey := func(l *remote.Listing, i int) remote.Ref {
		m, ok := byKey(l, keys[i])
		if !ok {
			return remote.Ref{Folder: newFolder, UIDValidity: l.UIDValidity, Key: keys[i]}
		}
		return refOf(newFolder, l, m)
	}
	bogus := func(l *remote.Listing) remote.Ref {
		return remote.Ref{Folder: newFolder, UIDValidity: l.UIDValidity, UID: 4000000000, Key: "4000000000"}
	}

	t.Run("SetFlags", func(t *testing.T) {
		if !canFlag || !appended {
			t.Skip("not a FlagSetter, or nothing appended")
		}
		l, before := snapshot(t, newFolder)
		r0 := refKey(l, 0)
		if err := fset.SetFlags(ctx, r0, []string{`\Flagged`, `\Seen`, "$Label1", `\Recent`}); err != nil {
			t.Fatal(err)
		}
		l2, after := snapshot(t, newFolder)
		if got, want := after[keys[0]].flags, cleanFlags([]string{`\Seen`, `\Flagged`, "$Label1"}); !slices.Equal(got, want) {
			t.Errorf("after SetFlags: flags %q, want %q", got, want)
		}
		// Replaced, not added to.
		if err := fset.SetFlags(ctx, r0, []string{`\Seen`}); err != nil {
			t.Fatal(err)
		}
		_, after = snapshot(t, newFolder)
		if got := after[keys[0]].flags; !slices.Equal(got, []string{`\seen`}) {
			t.Errorf("after SetFlags \\Seen: flags %q, want only \\Seen", got)
		}
		delete(before, keys[0])
		delete(after, keys[0])
		same(t, "other messages after SetFlags", before, after)

		if err := fset.SetFlags(ctx, bogus(l2), []string{`\Seen`}); !errors.Is(err, remote.ErrNotFound) {
			t.Errorf("SetFlags of a missing UID: got %v, want ErrNotFound", err)
		}
		if validity != 0 {
			stale := r0
			stale.UIDValidity++
			if err := fset.SetFlags(ctx, stale, nil); !errors.Is(err, remote.ErrUIDValidity) {
				t.Errorf("SetFlags with a stale UIDVALIDITY: got %v, want ErrUIDValidity", err)
			}
			_, again := snapshot(t, newFolder)
			if got := again[keys[0]].flags; !slices.Equal(got, []string{`\seen`}) {
				t.Errorf("a refused SetFlags changed flags to %q", got)
			}
		}
	})

	t.Run("Delete", func(t *testing.T) {
		if !canDelete || !appended {
			t.Skip("not a Deleter, or nothing appended")
		}
		l, before := snapshot(t, newFolder)
		r1 := refKey(l, 1)
		if validity != 0 {
			stale := r1
			stale.UIDValidity++
			if err := del.Delete(ctx, []remote.Ref{stale}); !errors.Is(err, remote.ErrUIDValidity) {
				t.Errorf("Delete with a stale UIDVALIDITY: got %v, want ErrUIDValidity", err)
			}
			_, after := snapshot(t, newFolder)
			same(t, "after a refused Delete", before, after)
		}
		if err := del.Delete(ctx, []remote.Ref{r1}); err != nil {
			t.Fatal(err)
		}
		l2, after := snapshot(t, newFolder)
		gone := true
		if e, ok := after[keys[1]]; ok {
			gone = false
			if !slices.Contains(e.flags, `\deleted`) {
				t.Errorf("deleted message still listed with flags %q, without \\Deleted", e.flags)
			}
			if !bytes.Equal(e.body, msgs[1]) {
				t.Errorf("deleted message's body changed")
			}
		}
		delete(before, keys[1])
		delete(after, keys[1])
		same(t, "other messages after Delete", before, after)

		err := del.Delete(ctx, []remote.Ref{r1})
		if gone && !errors.Is(err, remote.ErrNotFound) {
			t.Errorf("Delete of an expunged message: got %v, want ErrNotFound", err)
		}
		if !gone && err != nil && !errors.Is(err, remote.ErrNotFound) {
			t.Errorf("Delete of a message deleted already: got %v, want nil or ErrNotFound", err)
		}
		if err := del.Delete(ctx, []remote.Ref{bogus(l2)}); !errors.Is(err, remote.ErrNotFound) {
			t.Errorf("Delete of a missing UID: got %v, want ErrNotFound", err)
		}
		if err := del.Delete(ctx, []remote.Ref{bogus(l2), r1}); !errors.Is(err, remote.ErrNotFound) {
			t.Errorf("Delete of a missing UID with another: got %v, want ErrNotFound", err)
		}
		_, again := snapshot(t, newFolder)
		delete(again, keys[1])
		same(t, "other messages after Deletes of missing UIDs", after, again)
	})

	t.Run("Move", func(t *testing.T) {
		if !canMove || !appended {
			t.Skip("not a Mover, or nothing appended")
		}
		l, before := snapshot(t, newFolder)
		r0, r2 := refKey(l, 0), refKey(l, 2)
		if err := mv.Move(ctx, []remote.Ref{r2}, child); errors.Is(err, remote.ErrUnsupported) {
			// The server cannot move: nothing may have changed.
			_, after := snapshot(t, newFolder)
			same(t, "after an unsupported Move", before, after)
			if l := list(t, child); len(l.Messages) != 0 {
				t.Errorf("an unsupported Move put %d messages in %q", len(l.Messages), child)
			}
			t.Skipf("the server cannot move: %v", err)
		} else if err != nil {
			t.Fatal(err)
		}
		l2, after := snapshot(t, newFolder)
		if _, ok := after[keys[2]]; ok {
			t.Errorf("moved message still in %q", newFolder)
		}
		delete(before, keys[2])
		same(t, "messages left after Move", before, after)
		_, there := snapshot(t, child)
		n := 0
		for _, e := range there {
			if bytes.Equal(e.body, msgs[2]) {
				n++
				if want := cleanFlags(changeFlags[2]); !slices.Equal(e.flags, want) {
					t.Errorf("moved message has flags %q, want %q", e.flags, want)
				}
			}
		}
		if n != 1 || len(there) != 1 {
			t.Errorf("%q holds %d messages, %d of them the moved one; want exactly it, once", child, len(there), n)
		}

		if err := mv.Move(ctx, []remote.Ref{r2}, child); !errors.Is(err, remote.ErrNotFound) {
			t.Errorf("Move of a message moved already: got %v, want ErrNotFound", err)
		}
		if err := mv.Move(ctx, []remote.Ref{refKey(l2, 0)}, missingFolder); !errors.Is(err, remote.ErrNotFound) {
			t.Errorf("Move to a missing folder: got %v, want ErrNotFound", err)
		}
		if validity != 0 {
			stale := r0
			stale.UIDValidity++
			if err := mv.Move(ctx, []remote.Ref{stale}, child); !errors.Is(err, remote.ErrUIDValidity) {
				t.Errorf("Move with a stale UIDVALIDITY: got %v, want ErrUIDValidity", err)
			}
		}
		_, again := snapshot(t, newFolder)
		same(t, "after refused Moves", after, again)
		_, thereAgain := snapshot(t, child)
		same(t, "destination after refused Moves", there, thereAgain)
		moved = true
	})

	t.Run("DeleteFolderNotEmpty", func(t *testing.T) {
		if appended {
			if err := fe.DeleteFolder(ctx, newFolder); !errors.Is(err, remote.ErrNotEmpty) {
				t.Errorf("DeleteFolder of a folder with messages and folders: got %v, want ErrNotEmpty", err)
			}
		}
		if moved {
			if err := fe.DeleteFolder(ctx, child); !errors.Is(err, remote.ErrNotEmpty) {
				t.Errorf("DeleteFolder of a folder with a message: got %v, want ErrNotEmpty", err)
			}
			if l := list(t, child); len(l.Messages) != 1 {
				t.Errorf("after a refused DeleteFolder: %d messages in %q, want 1", len(l.Messages), child)
			}
		}
		if delim == "" {
			return
		}
		parent := sub("parent")
		kid := parent + delim + "kid"
		for _, f := range []string{parent, kid} {
			if err := fe.CreateFolder(ctx, f); err != nil {
				t.Fatal(err)
			}
		}
		if err := fe.DeleteFolder(ctx, parent); !errors.Is(err, remote.ErrNotEmpty) {
			t.Errorf("DeleteFolder of a folder with a child folder: got %v, want ErrNotEmpty", err)
		}
		if !slices.Contains(folderNames(t), kid) {
			t.Errorf("child folder %q gone after a refused DeleteFolder of its parent", kid)
		}
		for _, f := range []string{kid, parent} {
			if err := fe.DeleteFolder(ctx, f); err != nil {
				t.Errorf("DeleteFolder %q: %v", f, err)
			}
		}
	})

	t.Run("RenameFolder", func(t *testing.T) {
		if err := fe.RenameFolder(ctx, child, renamed); err != nil {
			t.Fatal(err)
		}
		names := folderNames(t)
		if !slices.Contains(names, renamed) || slices.Contains(names, child) {
			t.Errorf("after rename of %q to %q: folders %q", child, renamed, names)
		}
		if moved {
			l := list(t, renamed)
			if len(l.Messages) != 1 {
				t.Fatalf("renamed folder lists %d messages, want 1", len(l.Messages))
			}
			if b := body(t, refOf(renamed, l, l.Messages[0])); !bytes.Equal(b, msgs[2]) {
				t.Errorf("message in the renamed folder differs")
			}
		}
		if _, err := acct.List(ctx, child); !errors.Is(err, remote.ErrNotFound) {
			t.Errorf("List of the old name: got %v, want ErrNotFound", err)
		}
		if err := fe.RenameFolder(ctx, renamed, newFolder); !errors.Is(err, remote.ErrExists) {
			t.Errorf("rename onto an existing folder: got %v, want ErrExists", err)
		}
		if err := fe.RenameFolder(ctx, child, missingFolder); !errors.Is(err, remote.ErrNotFound) {
			t.Errorf("rename of a missing folder: got %v, want ErrNotFound", err)
		}
		renamedOK = true
	})

	t.Run("DeleteFolder", func(t *testing.T) {
		if !renamedOK {
			t.Skip("no renamed folder")
		}
		if moved {
			l := list(t, renamed)
			var refs []remote.Ref
			for _, m := range l.Messages {
				refs = append(refs, refOf(renamed, l, m))
			}
			if err := mv.Move(ctx, refs, newFolder); err != nil {
				t.Fatal(err)
			}
			if l := list(t, renamed); len(l.Messages) != 0 {
				t.Fatalf("%d messages left after moving all away", len(l.Messages))
			}
			_, back := snapshot(t, newFolder)
			n := 0
			for _, e := range back {
				if bytes.Equal(e.body, msgs[2]) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("moved back: %d copies in %q, want 1", n, newFolder)
			}
		}
		if err := fe.DeleteFolder(ctx, renamed); err != nil {
			t.Fatal(err)
		}
		if slices.Contains(folderNames(t), renamed) {
			t.Errorf("deleted folder %q still listed", renamed)
		}
		if _, err := acct.List(ctx, renamed); !errors.Is(err, remote.ErrNotFound) {
			t.Errorf("List of a deleted folder: got %v, want ErrNotFound", err)
		}
		if err := fe.DeleteFolder(ctx, renamed); !errors.Is(err, remote.ErrNotFound) {
			t.Errorf("DeleteFolder of a missing folder: got %v, want ErrNotFound", err)
		}
	})

	t.Run("AppendNUL", func(t *testing.T) {
		if !canAppend {
			t.Skip("not an Appender")
		}
		// A NUL byte must come back as it went, or be refused: never
		// stored as something else.
		nulFolder := sub("nul")
		if err := fe.CreateFolder(ctx, nulFolder); err != nil {
			t.Fatal(err)
		}
		raw := []byte("Subject: NUL\r\n\r\nbefore\x00after\r\n")
		_, _, err := ap.Append(ctx, nulFolder, bytes.NewReader(raw), int64(len(raw)), time.Time{}, nil)
		l := list(t, nulFolder)
		if err != nil {
			t.Logf("a message with a NUL byte: %v", err)
			if len(l.Messages) != 0 {
				t.Errorf("a refused append left %d messages", len(l.Messages))
			}
			if err := fe.DeleteFolder(ctx, nulFolder); err != nil {
				t.Error(err)
			}
			return
		}
		if len(l.Messages) != 1 {
			t.Fatalf("after one append: %d messages", len(l.Messages))
		}
		if b := body(t, refOf(nulFolder, l, l.Messages[0])); !bytes.Equal(b, raw) {
			t.Errorf("a message with a NUL byte came back altered: %q", b)
		}
	})
}

// cleanFlags is flags as compared: \Recent (the server's, never stored)
// dropped, lower case, in SortFlags order.
func cleanFlags(flags []string) []string {
	out := []string{}
	for _, f := range flags {
		if !strings.EqualFold(f, `\Recent`) {
			out = append(out, strings.ToLower(f))
		}
	}
	remote.SortFlags(out)
	return out
}
