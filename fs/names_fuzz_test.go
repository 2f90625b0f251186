package fs

import (
	"strings"
	"testing"
)

// FuzzNames checks the file names of folders and messages (names.go) with
// one string s, taken in turn as a folder-name segment, as a message key
// and as a name the kernel looks up. The properties hold for any
// reversible escaping, whichever bytes it escapes:
//
//   - round trip: unescapeSegment(escapeSegment(s)) gives s back, and
//     messageKey(messageFileName(s)) too; a reverse that fails is allowed
//     only for long inputs (a shortened form), a wrong one never;
//   - validity: what the escaping produces is a file name component
//     (not empty, ".", "..", no '/' or NUL), of at most 255 bytes when s
//     is short enough that no escaping needs more;
//   - canonical: a name that unescapes escapes back to itself (one folder,
//     one name; one message, one name);
//   - disjoint: a folder's name never reads as a message file name, and a
//     message's never as a folder's.
func FuzzNames(f *testing.F) {
	for _, s := range []string{
		"", "INBOX", "Entwürfe", "Sent Items", "a/b", "100%", "%2F", "%2f",
		".", "..", "...", ".hidden", "5.eml", ".eml", "x.eml.eml", "5%2Eeml",
		"4711", "000001a3.4f5e", "nul\x00byte", "\x00", "%00", "%", "%%",
		"tab\there", "del\x7f", "\xff\xfe", "&Jjo-", strings.Repeat("é", 128),
		strings.Repeat("%", 90), strings.Repeat("a", 256),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkSegment(t, s)
		checkMessageKey(t, s)
		if validComponent(s) {
			checkLookup(t, s)
		}
	})
}

// shortInput is the length up to which no %XX escaping (at most three
// bytes for one, plus "%2E" for the dot of ".eml") can exceed 255 bytes, so
// no name needs shortening.
const shortInput = 80

// validComponent reports whether name can be one component of a Linux path:
// what a FUSE lookup can be asked for.
func validComponent(name string) bool {
	return name != "" && name != "." && name != ".." && len(name) <= 255 &&
		!strings.ContainsAny(name, "/\x00")
}

func checkSegment(t *testing.T, s string) {
	name := escapeSegment(s)
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		t.Fatalf("escapeSegment(%q) = %q: not a file name", s, name)
	}
	if len(s) <= shortInput && len(name) > 255 {
		t.Fatalf("escapeSegment(%q) = %q: %d bytes, more than 255", s, name, len(name))
	}
	back, ok := unescapeSegment(name)
	switch {
	case s == "\x00":
		// Known: escapeSegment gives "%00" for both "" and "\x00", and
		// unescapeSegment takes it as "". IMAP names cannot hold a NUL,
		// while an empty segment ("a//b") is real, so "" wins.
	case ok && back != s:
		t.Fatalf("unescapeSegment(escapeSegment(%q) = %q) = %q, want %q", s, name, back, s)
	case !ok && len(s) <= shortInput:
		t.Fatalf("unescapeSegment(escapeSegment(%q) = %q) rejected, want %q", s, name, s)
	}
	if key, ok := messageKey(name); ok {
		t.Fatalf("folder %q, named %q, reads as the message file of key %q", s, name, key)
	}
}

func checkMessageKey(t *testing.T, key string) {
	if key == "" {
		// Known: messageFileName("") = ".eml", which messageKey
		// rejects. IMAP UIDs and POP3 UIDLs (1 to 70 characters) are
		// never empty.
		return
	}
	name := messageFileName(key)
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		t.Fatalf("messageFileName(%q) = %q: not a file name", key, name)
	}
	if len(key) <= shortInput && len(name) > 255 {
		t.Fatalf("messageFileName(%q) = %q: %d bytes, more than 255", key, name, len(name))
	}
	back, ok := messageKey(name)
	switch {
	case ok && back != key:
		t.Fatalf("messageKey(messageFileName(%q) = %q) = %q, want %q", key, name, back, key)
	case !ok && len(key) <= shortInput:
		t.Fatalf("messageKey(messageFileName(%q) = %q) rejected, want %q", key, name, key)
	}
	if seg, ok := unescapeSegment(name); ok {
		t.Fatalf("message %q, named %q, reads as the folder %q", key, name, seg)
	}
}

// checkLookup takes name as what the kernel asks a directory for.
func checkLookup(t *testing.T, name string) {
	seg, segOK := unescapeSegment(name)
	if segOK {
		if again := escapeSegment(seg); again != name {
			t.Fatalf("unescapeSegment(%q) = %q, which escapes to %q: two names for one folder", name, seg, again)
		}
	}
	key, keyOK := messageKey(name)
	if keyOK {
		if again := messageFileName(key); again != name {
			t.Fatalf("messageKey(%q) = %q, whose file name is %q: two names for one message", name, key, again)
		}
	}
	if segOK && keyOK {
		t.Fatalf("%q is both the folder %q and the message %q", name, seg, key)
	}
}
