package imap

import (
	"context"
	"testing"
	"time"

	"mailfs/internal/dovecottest"
	"mailfs/remote"
)

// TestUnannouncedMessage: Dovecot answers nothing to a UID FETCH of a
// message appended after the session last learnt the folder's size. A
// listed message read on such a pooled connection was ENOENT.
func TestUnannouncedMessage(t *testing.T) {
	dc := dovecottest.Start(t, dovecottest.Options{})
	ctx := context.Background()
	if _, err := dc.Append(ctx, "INBOX", [][]byte{[]byte("Subject: one\r\n\r\none\r\n")}); err != nil {
		t.Fatal(err)
	}
	a, err := Dial(ctx, Config{Addr: dc.IMAPAddr, TLS: TLSNone, Username: dc.User, Password: dc.Password, Connections: 2, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.List(ctx, "INBOX"); err != nil {
		t.Fatal(err)
	}
	// Hold the connection that has INBOX open while another client
	// appends and the listing is fetched on a second connection.
	old, err := a.get(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if old.selected != "INBOX" {
		t.Fatalf("the pooled connection has %q open", old.selected)
	}
	body := []byte("Subject: two\r\n\r\ntwo\r\n")
	if _, err := dc.Append(ctx, "INBOX", [][]byte{body}); err != nil {
		t.Fatal(err)
	}
	l, err := a.List(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Messages) != 2 {
		t.Fatalf("listed %d messages, want 2", len(l.Messages))
	}
	a.put(old) // the last in: the next read of INBOX takes it
	m := l.Messages[1]
	ref := remote.Ref{Folder: "INBOX", UIDValidity: l.UIDValidity, UID: m.UID, Key: m.Key}
	got, err := a.Body(ctx, ref)
	if err != nil {
		t.Fatalf("read of a listed message on a connection that had not heard of it: %v", err)
	}
	if string(got) != string(body) {
		t.Errorf("got %q, want %q", got, body)
	}
	// The same for a bulk fetch.
	if _, err := dc.Append(ctx, "INBOX", [][]byte{body, body}); err != nil {
		t.Fatal(err)
	}
	old, err = a.get(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	l, err = a.List(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	a.put(old)
	var refs []remote.Ref
	for _, m := range l.Messages[2:] {
		refs = append(refs, remote.Ref{Folder: "INBOX", UIDValidity: l.UIDValidity, UID: m.UID, Key: m.Key})
	}
	n := 0
	if err := a.Bodies(ctx, refs, func(remote.Ref, []byte) { n++ }); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("bulk fetch of 2 new messages delivered %d", n)
	}
}
