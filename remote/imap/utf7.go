package imap

import (
	"encoding/base64"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Modified UTF-7 (RFC 3501 section 5.1.3), the encoding of folder names.
// go-imap has it, but internal to its module: the wire guard needs the same
// encoder to know what go-imap sends, and a decoder that says exactly which
// names go-imap would refuse.

var b64 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

// encodeUTF7 encodes s as go-imap's encoder does.
func encodeUTF7(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		if c := s[i]; c >= 0x20 && c <= 0x7e {
			b.WriteByte(c)
			if c == '&' {
				b.WriteByte('-')
			}
			i++
			continue
		}
		start := i
		for i++; i < len(s) && (s[i] < 0x20 || s[i] > 0x7e); i++ {
		}
		var u []byte
		for rest := s[start:i]; rest != ""; {
			r, size := utf8.DecodeRuneInString(rest)
			rest = rest[size:]
			if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
				u = append(u, byte(r1>>8), byte(r1))
				r = r2
			}
			u = append(u, byte(r>>8), byte(r))
		}
		b.WriteByte('&')
		b.WriteString(b64.EncodeToString(u))
		b.WriteByte('-')
	}
	return b.String()
}

// decodeUTF7 decodes a modified UTF-7 name; ok is false where go-imap's
// decoder fails (and with it the whole response): invalid UTF-8, a control
// character, a shift that does not decode to UTF-16 text.
func decodeUTF7(s string) (string, bool) {
	if !utf8.ValidString(s) {
		return "", false
	}
	var b strings.Builder
	shifted := false // the previous segment was base64 (no "&..-&..-")
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f {
			return "", false
		}
		if c != '&' {
			b.WriteByte(c)
			shifted = false
			continue
		}
		j := strings.IndexByte(s[i+1:], '-')
		if j < 0 {
			return "", false
		}
		seg := s[i+1 : i+1+j]
		i += j + 1
		if seg == "" {
			b.WriteByte('&')
			shifted = false
			continue
		}
		if shifted {
			return "", false
		}
		text, ok := decodeShift(seg)
		if !ok {
			return "", false
		}
		b.WriteString(text)
		shifted = true
	}
	return b.String(), true
}

// decodeShift decodes the base64 of one shift: UTF-16BE, no ASCII that
// could stand for itself, no lone surrogate.
func decodeShift(seg string) (string, bool) {
	raw, err := b64.DecodeString(seg)
	if err != nil || len(raw) < 2 || len(raw)%2 != 0 {
		return "", false
	}
	u := make([]uint16, len(raw)/2)
	for k := range u {
		u[k] = uint16(raw[2*k])<<8 | uint16(raw[2*k+1])
	}
	var b strings.Builder
	for k := 0; k < len(u); k++ {
		r := rune(u[k])
		switch {
		case utf16.IsSurrogate(r):
			if k+1 >= len(u) {
				return "", false
			}
			r = utf16.DecodeRune(r, rune(u[k+1]))
			if r == utf8.RuneError {
				return "", false
			}
			k++
		case r >= 0x20 && r <= 0x7e:
			return "", false // printable ASCII must stand for itself
		}
		b.WriteRune(r)
	}
	return b.String(), true
}

// lenientUTF7 decodes what it can of a name decodeUTF7 refuses: valid
// shifts are decoded, anything else is kept as it came (an invalid UTF-8
// byte as U+FFFD). The result names the folder for the user; the server
// gets the name as it sent it (see guard).
func lenientUTF7(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c == '&' {
			if j := strings.IndexByte(s[i+1:], '-'); j >= 0 {
				seg := s[i+1 : i+1+j]
				if seg == "" {
					b.WriteByte('&')
					i += 2
					continue
				}
				if text, ok := decodeShift(seg); ok {
					b.WriteString(text)
					i += j + 2
					continue
				}
			}
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		b.WriteRune(r)
		i += size
	}
	return b.String()
}
