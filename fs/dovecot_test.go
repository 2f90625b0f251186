package fs

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mailfs/internal/dovecottest"
	"mailfs/internal/header"
	"mailfs/internal/testenv"
	"mailfs/remote/imap"
)

// TestDovecotCorpus appends every message of the shared corpus to a
// private Dovecot, spread over INBOX, a nested folder and folders named with
// non-ASCII letters and spaces, and checks through a real mount that every
// file's bytes equal what Dovecot returns for BODY.PEEK[], that stat sizes
// equal them, and that the attributes match the headers.
func TestDovecotCorpus(t *testing.T) {
	corpus := testenv.Corpus(t)
	dc := dovecottest.Start(t, dovecottest.Options{})
	ctx := context.Background()

	// server folder name → directory under the mount
	folders := []struct{ server, dir string }{
		{"INBOX", "INBOX"},
		{"Lists.golang", "Lists/golang"},
		{"Entwürfe", "Entwürfe"},
		{"Sent Items", "Sent Items"},
		{"Ärger mit Ümlauten", "Ärger mit Ümlauten"},
		{"100% sure", "100%25 sure"},
	}
	for _, f := range folders[1:] {
		if err := dc.CreateFolder(ctx, f.server); err != nil {
			t.Fatal(err)
		}
	}
	parts := make([][][]byte, len(folders))
	for i, c := range corpus {
		k := i % len(folders)
		parts[k] = append(parts[k], c.Data)
	}
	for k, f := range folders {
		if _, err := dc.Append(ctx, f.server, parts[k]); err != nil {
			t.Fatalf("append to %s: %v", f.server, err)
		}
	}

	acct, err := imap.Dial(ctx, imap.Config{Addr: dc.IMAPAddr, TLS: imap.TLSNone, Username: dc.User, Password: dc.Password})
	if err != nil {
		t.Fatal(err)
	}
	c := &counting{inner: acct}
	dir, _ := mount(t, c, Options{})

	if st, err := os.Stat(filepath.Join(dir, "Lists")); err != nil || !st.IsDir() {
		t.Fatalf("Lists (a \\Noselect parent): got %v, %v", st, err)
	}
	total := 0
	for k, f := range folders {
		served, err := dc.FetchAll(ctx, f.server)
		if err != nil {
			t.Fatal(err)
		}
		if len(served) != len(parts[k]) {
			t.Fatalf("%s: Dovecot holds %d messages, %d appended", f.server, len(served), len(parts[k]))
		}
		// readdir order as the kernel hands it out (os.ReadDir would sort
		// by name).
		names := readdirnames(t, filepath.Join(dir, f.dir))
		var uids []int
		for _, name := range names {
			if f.server == "INBOX" && name == "Lists" {
				continue
			}
			uid, err := strconv.Atoi(strings.TrimSuffix(name, ".eml"))
			if err != nil {
				t.Fatalf("%s: unexpected entry %q", f.dir, name)
			}
			uids = append(uids, uid)
		}
		if !slices.IsSorted(uids) {
			t.Errorf("%s: entries not in UID order", f.dir)
		}
		if len(uids) != len(served) {
			t.Fatalf("%s: %d files, Dovecot holds %d", f.dir, len(uids), len(served))
		}
		for _, uid := range uids {
			want, ok := served[uint32(uid)]
			if !ok {
				t.Fatalf("%s/%d.eml: no such UID on the server", f.dir, uid)
			}
			p := filepath.Join(dir, f.dir, strconv.Itoa(uid)+".eml")
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s: %d bytes read, differ from Dovecot's %d", p, len(got), len(want))
			}
			if st.Size() != int64(len(got)) {
				t.Errorf("%s: stat size %d, read %d", p, st.Size(), len(got))
			}
			wantF := header.Fields(want)
			for _, name := range []string{"subject", "from", "message-id"} {
				buf := make([]byte, 64<<10)
				n, err := unix.Getxattr(p, "user.mail."+name, buf)
				_, has := wantF[name]
				switch {
				case has && err != nil:
					t.Errorf("%s user.mail.%s: %v", p, name, err)
				case has && string(buf[:n]) != wantF[name]:
					t.Errorf("%s user.mail.%s: got %q, want %q", p, name, buf[:n], wantF[name])
				case !has && err != unix.ENODATA:
					t.Errorf("%s user.mail.%s: got %q, %v, want ENODATA", p, name, buf[:n], err)
				}
			}
			total++
		}
	}
	if total != len(corpus) {
		t.Errorf("checked %d messages, corpus has %d", total, len(corpus))
	}
	// Sequential reading must not cost one request per message.
	requests := c.bodies.Load() + c.bulks.Load() + c.ranges.Load()
	t.Logf("%d messages read with %d body requests (%d bulk)", total, requests, c.bulks.Load())
	if requests > int64(total/4) {
		t.Errorf("reading %d messages in order took %d body requests, want at most %d", total, requests, total/4)
	}
}

// TestDovecotServerVanishes stops the server under a mount: listings already
// fetched keep being served, an uncached read fails with EIO within the
// timeout, never hangs.
func TestDovecotServerVanishes(t *testing.T) {
	dc := dovecottest.Start(t, dovecottest.Options{})
	ctx := context.Background()
	var raws [][]byte
	for i := 0; i < 20; i++ {
		raws = append(raws, []byte("Subject: m"+strconv.Itoa(i)+"\r\n\r\nbody "+strings.Repeat("x", i*100)+"\r\n"))
	}
	if _, err := dc.Append(ctx, "INBOX", raws); err != nil {
		t.Fatal(err)
	}
	acct, err := imap.Dial(ctx, imap.Config{Addr: dc.IMAPAddr, TLS: imap.TLSNone, Username: dc.User, Password: dc.Password, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := mount(t, acct, Options{PollInterval: 100 * time.Millisecond})
	first, err := os.ReadFile(filepath.Join(dir, "INBOX", "1.eml"))
	if err != nil || !bytes.Equal(first, raws[0]) {
		t.Fatalf("before: got %q, %v", first, err)
	}
	if err := dc.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the listing is now stale

	start := time.Now()
	n := countFiles(t, filepath.Join(dir, "INBOX"))
	if n != len(raws) {
		t.Errorf("listing after the server went away: got %d files, want %d (the last one known)", n, len(raws))
	}
	_, err = os.ReadFile(filepath.Join(dir, "INBOX", "17.eml"))
	if err == nil || !isErrno(err, unix.EIO) {
		t.Errorf("uncached read with the server gone: got %v, want EIO", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v with a 2 s timeout", d)
	}
	// What was read before is still served.
	again, err := os.ReadFile(filepath.Join(dir, "INBOX", "1.eml"))
	if err != nil || !bytes.Equal(again, raws[0]) {
		t.Errorf("cached message after the server went away: got %d bytes, %v", len(again), err)
	}
}
