package fs

import (
	"fmt"
	"strconv"
	"strings"
)

// escapeSegment turns one folder-name segment into a file name: '%', '/' and
// NUL become %XX, a lone "." or ".." is escaped, and so is the dot of a name
// ending in ".eml", so that no folder can collide with a message file. The
// mapping is reversible by unescapeSegment.
func escapeSegment(s string) string {
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
	if !strings.Contains(name, "%") {
		if name == "." || name == ".." || strings.HasSuffix(name, ".eml") {
			return "", false
		}
		return name, true
	}
	s, ok := percentUnescape(name)
	if !ok {
		return "", false
	}
	if s == "\x00" {
		s = ""
	}
	if escapeSegment(s) != name {
		return "", false // not canonical: one folder, one name
	}
	return s, true
}

// messageFileName is the file name of a message: its key (the IMAP UID or
// POP3 UIDL) with '/', '%' and NUL escaped, plus ".eml".
func messageFileName(key string) string {
	return percentEscape(key) + ".eml"
}

// messageKey undoes messageFileName; ok is false for other names.
func messageKey(name string) (string, bool) {
	stem, ok := strings.CutSuffix(name, ".eml")
	if !ok || stem == "" {
		return "", false
	}
	if !strings.Contains(stem, "%") {
		return stem, true
	}
	key, ok := percentUnescape(stem)
	if !ok || messageFileName(key) != name {
		return "", false // not canonical
	}
	return key, true
}

// percentEscape writes '%', '/' and NUL as %XX.
func percentEscape(s string) string {
	if !strings.ContainsAny(s, "%/\x00") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '%', '/', 0:
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
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
