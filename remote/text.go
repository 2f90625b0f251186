package remote

import "strings"

// ServerText makes text a server sent fit for an error message or a log
// line: secret (the password, which a server may echo back) blanked first,
// then control characters (terminal escape sequences) dropped, invalid
// UTF-8 replaced, and the length bounded.
func ServerText(text, secret string) string {
	if len(secret) >= 3 {
		text = strings.ReplaceAll(text, secret, "***")
	}
	text = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(text, "?"))
	if len(text) > 300 {
		text = strings.ToValidUTF8(text[:300], "") + "..."
	}
	return text
}
