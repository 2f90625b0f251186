package cache

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"mailfs/remote"
)

// TestKeysUnambiguous: no folder's prefix matches another folder's keys,
// whatever bytes the names hold, and every key splits back into its parts.
func TestKeysUnambiguous(t *testing.T) {
	folders := []string{"", "a", "a/b", "a\x00b", "a\x00", "a\x01", "a\x01\x02", "\x01", "Entwürfe", "INBOX", "INBOX2", "1"}
	s := &Store{account: "acct\x00x"}
	for _, f1 := range folders {
		for _, f2 := range folders {
			k := s.metaKey(fv{f2, 42}, "7")
			if got := bytes.HasPrefix(k, makePrefix(kindMeta, s.account, f1)); got != (f1 == f2) {
				t.Errorf("prefix of %q matches key of %q: got %v, want %v", f1, f2, got, f1 == f2)
			}
		}
		for _, k := range [][]byte{s.chunkKey(fv{f1, 0xdeadbeef}, f1, 3), s.metaKey(fv{f1, 1}, "x\x00y")} {
			parts, ok := splitKey(k)
			if !ok || len(parts) < 5 || parts[1] != s.account || parts[2] != f1 {
				t.Errorf("split %q: got %q, %v; want account %q, folder %q", k, parts, ok, s.account, f1)
			}
		}
	}
	parts, _ := splitKey(s.chunkKey(fv{"f", 0xdeadbeef}, "k\x01", 3))
	if want := []string{kindBody, s.account, "f", "deadbeef", "k\x01", "00000003"}; fmt.Sprintf("%q", parts) != fmt.Sprintf("%q", want) {
		t.Errorf("got parts %q, want %q", parts, want)
	}
	if _, ok := splitKey([]byte("2\x00M")); ok {
		t.Errorf("a key of schema 2 split as ours")
	}
}

func TestListingEncoding(t *testing.T) {
	for _, l := range []*remote.Listing{
		{},
		{UIDValidity: 1<<32 - 1, Messages: []remote.MessageInfo{
			{UID: 1, Key: "1", Size: 100, Date: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Flags: []string{`\Seen`, "$Label1"}},
			{UID: 4000000000, Key: "4000000000", Size: 0},
		}},
		{Messages: []remote.MessageInfo{{Key: "UIDL-ü\x00", Size: -1, Date: time.Unix(-5, 0).UTC()}}},
	} {
		b := encodeListing(l)
		got, err := decodeListing(b)
		if err != nil {
			t.Fatalf("decode %+v: %v", l, err)
		}
		if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", l) && !(len(l.Messages) == 0 && len(got.Messages) == 0) {
			t.Errorf("round trip: got %+v, want %+v", got, l)
		}
		for i := range len(b) {
			if _, err := decodeListing(b[:i]); err == nil {
				t.Errorf("truncated to %d of %d bytes: got no error", i, len(b))
			}
		}
	}
}

func TestMetaEncoding(t *testing.T) {
	m := &bodyMeta{size: 12345, chunk: 1000, date: -1, seq: 99, atime: 1 << 60}
	got, err := decodeMeta(encodeMeta(m))
	if err != nil || *got != *m {
		t.Errorf("round trip: got %+v, %v; want %+v", got, err, m)
	}
	if got.chunks() != 13 {
		t.Errorf("chunks: got %d, want 13", got.chunks())
	}
	if _, err := decodeMeta([]byte{1, 2, 3}); err == nil {
		t.Errorf("short record: got no error")
	}
}

func TestHeaderPart(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		found    bool
	}{
		{"A: 1\r\nB: 2\r\n\r\nbody\r\n", "A: 1\r\nB: 2\r\n", true},
		{"A: 1\nB: 2\n\nbody\n", "A: 1\nB: 2\n", true},
		{"\r\nbody", "", true},
		{"A: 1\r\n folded\r\n\r\n", "A: 1\r\n folded\r\n", true},
		{"A: 1\r\nno end", "A: 1\r\nno end", false},
		{"", "", false},
	} {
		got, found := headerPart([]byte(tc.in))
		if string(got) != tc.want || found != tc.found {
			t.Errorf("%q: got %q, %v; want %q, %v", tc.in, got, found, tc.want, tc.found)
		}
	}
}
