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
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '%', '/', 0:
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	out := b.String()
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
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(name) {
			return "", false
		}
		v, err := strconv.ParseUint(name[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(v))
		i += 2
	}
	s := b.String()
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
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch c {
		case '%', '/', 0:
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteString(".eml")
	return b.String()
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
	var b strings.Builder
	for i := 0; i < len(stem); i++ {
		c := stem[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(stem) {
			return "", false
		}
		v, err := strconv.ParseUint(stem[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(v))
		i += 2
	}
	key := b.String()
	if messageFileName(key) != name {
		return "", false
	}
	return key, true
}
