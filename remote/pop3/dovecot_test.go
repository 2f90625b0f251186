package pop3_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"

	"mailfs/internal/dovecottest"
	"mailfs/internal/header"
	"mailfs/internal/mailgen"
	"mailfs/internal/testenv"
	"mailfs/remote"
	"mailfs/remote/pop3"
	"mailfs/remote/remotetest"
)

// What Dovecot's POP3 (2.3, as configured by dovecottest) serves, checked
// by these tests:
//   - RETR gives the bytes IMAP's BODY[] gives (bare LF already CRLF),
//     except that a message whose last line has no line ending gets CRLF
//     before the terminating "." (pop3Form), and that a NUL byte is sent
//     as NUL where BODY[] sends 0x80;
//   - LIST (and "+OK n octets") gives the IMAP size: for a message without
//     a final line ending that is 2 less than the bytes RETR delivers.

func startDovecot(t *testing.T) *dovecottest.Server {
	t.Helper()
	return dovecottest.Start(t, dovecottest.Options{POP3: true})
}

func dovecotConfig(dc *dovecottest.Server) pop3.Config {
	return pop3.Config{Addr: dc.POP3Addr, TLS: pop3.TLSNone, Username: dc.User, Password: dc.Password}
}

// keyUID is the IMAP UID in a UIDL made by pop3_uidl_format = %08Xu%08Xv.
func keyUID(t *testing.T, key string) uint32 {
	t.Helper()
	if len(key) != 16 {
		t.Fatalf("UIDL %q is not %%08Xu%%08Xv", key)
	}
	uid, err := strconv.ParseUint(key[:8], 16, 32)
	if err != nil {
		t.Fatalf("UIDL %q: %v", key, err)
	}
	return uint32(uid)
}

func endsLine(b []byte) bool { return len(b) == 0 || b[len(b)-1] == '\n' }

// fetchSorted returns FetchAll's messages in UID order, and the UIDs.
func fetchSorted(t *testing.T, dc *dovecottest.Server) ([]uint32, map[uint32][]byte) {
	t.Helper()
	served, err := dc.FetchAll(context.Background(), "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	uids := make([]uint32, 0, len(served))
	for uid := range served {
		uids = append(uids, uid)
	}
	slices.Sort(uids)
	return uids, served
}

func TestConformanceDovecot(t *testing.T) {
	dc := startDovecot(t)
	ctx := ctxFor(t)

	// Messages whose last line ends: RETR gives exactly BODY[] and LIST
	// its length, as remotetest requires. The others follow below.
	var ending, open [][]byte
	for _, m := range mailgen.Fixtures() {
		if endsLine(m.Raw) {
			ending = append(ending, m.Raw)
		} else {
			open = append(open, m.Raw)
		}
	}
	for _, raw := range hostile {
		if endsLine(raw) {
			ending = append(ending, raw)
		} else {
			open = append(open, raw)
		}
	}
	if len(open) < 3 {
		t.Fatalf("only %d messages without a final line ending", len(open))
	}
	if _, err := dc.Append(ctx, "INBOX", ending); err != nil {
		t.Fatal(err)
	}
	uids, served := fetchSorted(t, dc)
	want := remotetest.Want{Folder: "INBOX"}
	for _, uid := range uids {
		want.Messages = append(want.Messages, served[uid])
	}
	a := dial(t, dovecotConfig(dc))
	remotetest.Run(t, dated{a}, []remotetest.Want{want})

	t.Run("NoFinalLineEnding", func(t *testing.T) {
		if _, err := dc.Append(ctx, "INBOX", open); err != nil {
			t.Fatal(err)
		}
		_, served := fetchSorted(t, dc)
		l, err := a.List(ctx, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		checked := 0
		for _, m := range l.Messages {
			imapBytes := served[keyUID(t, m.Key)]
			if endsLine(imapBytes) {
				continue
			}
			checked++
			body, err := a.Body(ctx, inbox(m.Key))
			if err != nil {
				t.Fatal(err)
			}
			// RETR: BODY[] and the CRLF Dovecot adds before ".".
			if want := append(slices.Clone(imapBytes), '\r', '\n'); !bytes.Equal(body, want) {
				t.Errorf("%s: RETR gave %q, want BODY[] + CRLF %q", m.Key, tail(body), tail(want))
			}
			// LIST: the size without that CRLF.
			if m.Size != int64(len(imapBytes)) || m.Size != int64(len(body))-2 {
				t.Errorf("%s: LIST size %d; BODY[] has %d bytes, RETR %d", m.Key, m.Size, len(imapBytes), len(body))
			}
		}
		if checked != len(open) {
			t.Errorf("checked %d messages without a final line ending, appended %d", checked, len(open))
		}
	})

	t.Run("NUL", func(t *testing.T) {
		raw := []byte("Subject: nul\r\nMessage-ID: <nul@test>\r\n\r\na NUL \x00 byte\r\n")
		if _, err := dc.Append(ctx, "INBOX", [][]byte{raw}); err != nil {
			t.Fatal(err)
		}
		uids, served := fetchSorted(t, dc)
		uid := uids[len(uids)-1]
		if !bytes.Equal(served[uid], bytes.ReplaceAll(raw, []byte{0}, []byte{0x80})) {
			t.Fatalf("BODY[] = %q, want the NUL as 0x80", served[uid])
		}
		l, err := a.List(ctx, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		m := l.Messages[len(l.Messages)-1]
		if keyUID(t, m.Key) != uid {
			t.Fatalf("last listed %s, want UID %d", m.Key, uid)
		}
		body, err := a.Body(ctx, inbox(m.Key))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(body, raw) || m.Size != int64(len(raw)) {
			t.Errorf("RETR = %q (LIST %d), want the NUL as stored %q", body, m.Size, raw)
		}
	})
}

func tail(b []byte) []byte {
	return b[max(0, len(b)-20):]
}

// TestCorpusDovecot sends every message of the shared corpus through
// Dovecot's POP3 and checks each byte for byte against BODY[] and the
// rule above, with its LIST size and header fields.
func TestCorpusDovecot(t *testing.T) {
	corpus := testenv.Corpus(t)
	dc := startDovecot(t)
	ctx := ctxFor(t)
	raws := make([][]byte, len(corpus))
	for i, f := range corpus {
		raws[i] = f.Data
	}
	appended, err := dc.Append(ctx, "INBOX", raws)
	if err != nil {
		t.Fatal(err)
	}
	name := map[uint32]string{}
	for i, uid := range appended {
		name[uid] = corpus[i].Name
	}
	_, served := fetchSorted(t, dc)
	a := dial(t, dovecotConfig(dc))
	l, err := a.List(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Messages) != len(corpus) {
		t.Fatalf("%d messages listed, %d appended", len(l.Messages), len(corpus))
	}
	var open int
	for _, m := range l.Messages {
		uid := keyUID(t, m.Key)
		imapBytes, ok := served[uid]
		if !ok {
			t.Fatalf("%s: UID %d not in FETCH", m.Key, uid)
		}
		want := pop3Form(imapBytes)
		body, err := a.Body(ctx, inbox(m.Key))
		if err != nil {
			t.Fatalf("%s: %v", name[uid], err)
		}
		if !bytes.Equal(body, want) {
			i := 0
			for i < len(body) && i < len(want) && body[i] == want[i] {
				i++
			}
			t.Errorf("%s: RETR differs from BODY[] (+CRLF) at byte %d of %d/%d", name[uid], i, len(body), len(want))
		}
		wantSize := int64(len(want))
		if !endsLine(imapBytes) {
			open++
			wantSize -= 2
		}
		if m.Size != wantSize {
			t.Errorf("%s: LIST size %d, want %d", name[uid], m.Size, wantSize)
		}
		h, err := a.Header(ctx, inbox(m.Key))
		if err != nil {
			t.Fatalf("%s: header: %v", name[uid], err)
		}
		got, exp := header.Fields(h), header.Fields(imapBytes)
		for _, f := range []string{"subject", "from", "to", "cc", "date", "message-id"} {
			if got[f] != exp[f] {
				t.Errorf("%s %s: %q, want %q", name[uid], f, got[f], exp[f])
			}
		}
	}
	t.Logf("%d messages byte-exact, %d of them without a final line ending", len(l.Messages), open)
}

func TestDeleteDovecot(t *testing.T) {
	dc := startDovecot(t)
	ctx := ctxFor(t)
	var raws [][]byte
	for i := 1; i <= 6; i++ {
		raws = append(raws, fmt.Appendf(nil, "Subject: %d\r\nMessage-ID: <%d@test>\r\n\r\nmessage %d\r\n", i, i, i))
	}
	if _, err := dc.Append(ctx, "INBOX", raws); err != nil {
		t.Fatal(err)
	}
	a := dial(t, dovecotConfig(dc))
	l, err := a.List(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	key := func(i int) string { return l.Messages[i-1].Key }

	// Another client deletes message 1 while a's session is parked
	// (Dovecot does not lock the maildrop).
	b := dial(t, dovecotConfig(dc))
	if err := b.Delete(ctx, []remote.Ref{inbox(key(1))}); err != nil {
		t.Fatal(err)
	}
	// a's parked session still numbers from its start; its message 3 is
	// still message 3 there.
	if got, err := a.Body(ctx, inbox(key(3))); err != nil || !bytes.Equal(got, raws[2]) {
		t.Errorf("Body(3) in the parked session = %q, %v", got, err)
	}
	// The parked session cannot serve the deleted message any more; a
	// fresh one does not have it.
	if got, err := a.Body(ctx, inbox(key(1))); !errors.Is(err, remote.ErrNotFound) {
		t.Errorf("Body(1) after another client deleted it = %q, %v; want ErrNotFound", got, err)
	}
	// A fresh session numbers message 3 as 2.
	l2, err := a.List(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if len(l2.Messages) != 5 || l2.Messages[1].Key != key(3) {
		t.Fatalf("listing after the deletion: %+v", l2.Messages)
	}
	if got, err := a.Body(ctx, inbox(key(3))); err != nil || !bytes.Equal(got, raws[2]) {
		t.Errorf("Body(3) in a fresh session = %q, %v", got, err)
	}

	// key(1) is gone already: said so, the others deleted.
	if err := a.Delete(ctx, []remote.Ref{inbox(key(3)), inbox(key(5)), inbox(key(1))}); !errors.Is(err, remote.ErrNotFound) {
		t.Fatalf("delete with a gone ref: got %v, want ErrNotFound", err)
	}
	uids, served := fetchSorted(t, dc)
	var left [][]byte
	for _, uid := range uids {
		left = append(left, served[uid])
	}
	wantLeft := [][]byte{raws[1], raws[3], raws[5]}
	if len(left) != len(wantLeft) {
		t.Fatalf("%d messages left, want 3", len(left))
	}
	for i := range left {
		if !bytes.Equal(left[i], wantLeft[i]) {
			t.Errorf("left #%d = %q, want %q", i, left[i], wantLeft[i])
		}
	}
}
