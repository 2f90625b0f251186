// Package header decodes the few header fields mailfs shows as extended
// attributes: unfolded, RFC 2047 encoded words decoded to UTF-8 in any
// charset go-message knows, raw 8-bit bytes kept when they are UTF-8 and read
// as Latin-1 otherwise. It never fails: a field it cannot decode is shown as
// it stands.
package header

import (
	"bytes"
	"mime"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
)

var decoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// Fields parses a message header (or a whole message: parsing stops at the
// first empty line) and returns the decoded value of every field, keyed by
// the lower-case field name. Repeated To and Cc fields are joined with ", ";
// of other repeated fields the first wins.
func Fields(raw []byte) map[string]string {
	out := make(map[string]string)
	var name string
	var value []byte
	flush := func() {
		if name == "" {
			return
		}
		v := Decode(value)
		key := strings.ToLower(name)
		if old, ok := out[key]; ok {
			if key == "to" || key == "cc" {
				out[key] = old + ", " + v
			}
		} else {
			out[key] = v
		}
		name, value = "", nil
	}
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break // end of header
		}
		if line[0] == ' ' || line[0] == '\t' {
			if name != "" {
				value = append(value, ' ')
				value = append(value, bytes.TrimLeft(line, " \t")...)
			}
			continue
		}
		flush()
		i := bytes.IndexByte(line, ':')
		if i <= 0 || bytes.ContainsAny(line[:i], " \t") {
			continue // not a field (mbox "From " line, garbage)
		}
		name = string(line[:i])
		value = append([]byte(nil), bytes.TrimLeft(line[i+1:], " \t")...)
	}
	flush()
	return out
}

// Decode decodes one unfolded field value.
func Decode(v []byte) string {
	s := strings.TrimSpace(string(v))
	if !utf8.ValidString(s) {
		s = latin1(s)
	}
	if strings.Contains(s, "=?") {
		if d, err := decoder.DecodeHeader(s); err == nil {
			s = d
		}
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s
}

func latin1(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteRune(rune(s[i]))
	}
	return b.String()
}
