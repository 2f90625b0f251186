package fs

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"mailfs/internal/mailgen"
)

// bigMessage is a message of n bytes with a recognisable pattern.
func bigMessage(n int) []byte {
	var b bytes.Buffer
	b.WriteString("Subject: big\r\nFrom: a@example.org\r\n\r\n")
	for i := 0; b.Len() < n; i++ {
		b.WriteString("line " + strconv.Itoa(i) + " of a large attachment-ish body\r\n")
	}
	return b.Bytes()[:n]
}

// TestWrongAnnouncedSize: a server whose RFC822.SIZE is wrong, smaller or
// larger, for small messages (fetched whole) and large ones (read in
// ranges). stat must end up equal to the bytes read, and the bytes must be
// the message's.
func TestWrongAnnouncedSize(t *testing.T) {
	small := []byte("Subject: small\r\n\r\nhello\r\n")
	large := bigMessage(300 << 10)
	msgs := []mailgen.Message{
		{Folder: "INBOX", Date: time.Unix(1700000000, 0), Raw: small},
		{Folder: "INBOX", Date: time.Unix(1700000000, 0), Raw: small},
		{Folder: "INBOX", Date: time.Unix(1700000000, 0), Raw: large},
		{Folder: "INBOX", Date: time.Unix(1700000000, 0), Raw: large},
	}
	_, acct := startMem(t, msgs)
	acct.lie("INBOX", "1", int64(len(small))-7)  // announced too small
	acct.lie("INBOX", "2", int64(len(small))+50) // announced too large
	acct.lie("INBOX", "3", int64(len(large))-1000)
	acct.lie("INBOX", "4", int64(len(large))+1000)
	// Messages above 64 KiB are read in 16 KiB ranges.
	dir, _ := mount(t, acct, Options{LargeBody: 64 << 10, ChunkSize: 16 << 10})

	for i, want := range [][]byte{small, small, large, large} {
		p := filepath.Join(dir, "INBOX", strconv.Itoa(i+1)+".eml")
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: announced %d, real %d", p, st.Size(), len(want))
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: read %d bytes, want the %d of the message", p, len(got), len(want))
		}
		st, err = os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() != int64(len(got)) {
			t.Errorf("%s: stat size %d after reading %d bytes", p, st.Size(), len(got))
		}
	}
}

// TestHeadOfLargeMessage: reading the first 100 bytes of a large message
// fetches ranges, not the whole message.
func TestHeadOfLargeMessage(t *testing.T) {
	large := bigMessage(8 << 20)
	_, acct := startMem(t, []mailgen.Message{{Folder: "INBOX", Date: time.Unix(1700000000, 0), Raw: large}})
	dir, _ := mount(t, acct, Options{})
	f, err := os.Open(filepath.Join(dir, "INBOX", "1.eml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 100)
	if _, err := io.ReadFull(f, buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, large[:100]) {
		t.Fatalf("first 100 bytes differ")
	}
	if acct.bodies.Load() != 0 || acct.bulks.Load() != 0 {
		t.Errorf("head -c 100 fetched the whole message (%d bodies, %d bulk)", acct.bodies.Load(), acct.bulks.Load())
	}
	if got := acct.rangeBytes.Load(); got > 3<<20 {
		t.Errorf("head -c 100 of an 8 MiB message downloaded %d bytes", got)
	}
	// Then the whole message, in order, byte-exact.
	f.Seek(0, io.SeekStart)
	all, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(all, large) {
		t.Fatalf("whole message: got %d bytes, %v; want %d", len(all), err, len(large))
	}
}
