package fs

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxName is the longest file name Linux takes (NAME_MAX).
const maxName = 255

// escapeSegment turns one folder-name segment into a file name: '%', '/',
// NUL, control characters and bytes that are not UTF-8 become %XX, a lone
// "." or ".." is escaped, and so is the dot of a name ending in ".eml", so
// that no folder can collide with a message file. The mapping is reversible
// by unescapeSegment, except for a name longer than NAME_MAX, which is
// shortened (see shorten) and found through the folder list.
func escapeSegment(s string) string {
	return shorten(escapeFull(s), s, "")
}

func escapeFull(s string) string {
	switch s {
	case "":
		return "%00" // never a valid name; keep it visible and reversible
	case ".":
		return "%2E"
	case "..":
		return "%2E%2E"
	}
	out := percentEscape(s)
	if strings.HasSuffix(out, ".eml") {
		out = out[:len(out)-4] + "%2Eeml"
	}
	return out
}

// unescapeSegment undoes escapeSegment; ok is false for a name that
// escapeSegment cannot have produced.
func unescapeSegment(name string) (string, bool) {
	s := name
	if strings.Contains(name, "%") {
		var ok bool
		if s, ok = percentUnescape(name); !ok {
			return "", false
		}
		if s == "\x00" {
			s = ""
		}
	}
	if escapeSegment(s) != name {
		return "", false // not canonical: one folder, one name
	}
	return s, true
}

// messageFileName is the file name of a message: its key (the IMAP UID or
// POP3 UIDL) escaped as folder names are, plus ".eml"; shortened if it
// would be longer than NAME_MAX.
func messageFileName(key string) string {
	return shorten(percentEscape(key), key, ".eml")
}

// shorten returns name+suffix if that fits in NAME_MAX; else the start of
// name (cut at a character, never inside a %XX), "%~", 16 hex digits of a
// hash of orig, and suffix. "%~" is no escape, so a shortened name never
// reads as another name's escape; it is mapped back through the listing
// that produced it (isShortened).
func shorten(name, orig, suffix string) string {
	if len(name)+len(suffix) <= maxName {
		return name + suffix
	}
	sum := sha256.Sum256([]byte(orig))
	tag := "%~" + hex.EncodeToString(sum[:8])
	keep := maxName - len(suffix) - len(tag)
	for keep > 0 && !utf8.RuneStart(name[keep]) {
		keep--
	}
	if i := strings.LastIndexByte(name[:keep], '%'); i >= 0 && i+3 > keep {
		keep = i
	}
	return name[:keep] + tag + suffix
}

// isShortened reports whether name has the form shorten gives a long name.
func isShortened(name string) bool {
	stem := strings.TrimSuffix(name, ".eml")
	i := strings.LastIndex(stem, "%~")
	if i < 0 || len(stem)-i != 18 || len(name) > maxName {
		return false
	}
	_, err := hex.DecodeString(stem[i+2:])
	return err == nil
}

// messageKey undoes messageFileName; ok is false for other names.
func messageKey(name string) (string, bool) {
	stem, ok := strings.CutSuffix(name, ".eml")
	if !ok || stem == "" {
		return "", false
	}
	key := stem
	if strings.Contains(stem, "%") {
		if key, ok = percentUnescape(stem); !ok {
			return "", false
		}
	}
	if messageFileName(key) != name {
		return "", false // not canonical
	}
	return key, true
}

// percentEscape writes '%', '/', NUL, the other control characters and
// bytes that are not UTF-8 as %XX: what a file name must not hold, and
// what would reach a terminal as something else.
func percentEscape(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == '%' || c == '/' || c < 0x20 || c == 0x7f, r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, "%%%02X", c)
			i++
		default:
			b.WriteString(s[i : i+size])
			i += size
		}
	}
	return b.String()
}

func needsEscape(s string) bool {
	if !utf8.ValidString(s) {
		return true
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '%' || c == '/' || c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}

// percentUnescape decodes every %XX; ok is false for a malformed one.
func percentUnescape(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), true
}
