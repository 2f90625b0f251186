package config

import (
	"strconv"
	"strings"
)

// lineIndex finds the line on which a key is defined. The TOML decoder does
// not expose key positions, so this is a small, forgiving scanner that
// understands table headers, dotted and quoted keys, and skips multi-line
// strings. It is only used to improve error messages: when it cannot find
// a key, the message simply carries no line number.
type lineIndex struct {
	entries []lineEntry
}

type lineEntry struct {
	key  []string
	line int
}

func newLineIndex(data []byte) *lineIndex {
	idx := &lineIndex{}
	var table []string
	inMulti := ""
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		if inMulti != "" {
			if strings.Count(line, inMulti)%2 == 1 {
				inMulti = ""
			}
			continue
		}
		t := strings.TrimLeft(line, " \t")
		if t == "" || t[0] == '#' {
			continue
		}
		if t[0] == '[' {
			open := 1
			if strings.HasPrefix(t, "[[") {
				open = 2
			}
			parts, rest, ok := parseKey(t[open:])
			if ok && strings.HasPrefix(strings.TrimLeft(rest, " \t"), "]") {
				table = parts
				idx.entries = append(idx.entries, lineEntry{key: parts, line: n})
			}
			continue
		}
		parts, rest, ok := parseKey(t)
		rest = strings.TrimLeft(rest, " \t")
		if !ok || !strings.HasPrefix(rest, "=") {
			continue
		}
		full := make([]string, 0, len(table)+len(parts))
		full = append(append(full, table...), parts...)
		idx.entries = append(idx.entries, lineEntry{key: full, line: n})
		value := rest[1:]
		for _, delim := range []string{`"""`, `'''`} {
			if strings.Count(value, delim)%2 == 1 {
				inMulti = delim
				break
			}
		}
	}
	return idx
}

// find returns the line defining key exactly, else the first line defining
// something below key, else 0.
func (idx *lineIndex) find(key []string) int {
	prefix := 0
	for _, e := range idx.entries {
		if len(e.key) < len(key) || !equalKeys(e.key[:len(key)], key) {
			continue
		}
		if len(e.key) == len(key) {
			return e.line
		}
		if prefix == 0 {
			prefix = e.line
		}
	}
	return prefix
}

func equalKeys(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// parseKey parses a possibly dotted and quoted TOML key at the start of s
// and returns its parts and the text after it.
func parseKey(s string) (parts []string, rest string, ok bool) {
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return nil, "", false
		}
		var part string
		switch s[0] {
		case '"':
			end := 1
			for end < len(s) && s[end] != '"' {
				if s[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(s) {
				return nil, "", false
			}
			raw := s[:end+1]
			if u, err := strconv.Unquote(raw); err == nil {
				part = u
			} else {
				part = raw[1 : len(raw)-1]
			}
			s = s[end+1:]
		case '\'':
			end := strings.IndexByte(s[1:], '\'')
			if end < 0 {
				return nil, "", false
			}
			part = s[1 : end+1]
			s = s[end+2:]
		default:
			end := 0
			for end < len(s) && isBareKeyChar(s[end]) {
				end++
			}
			if end == 0 {
				return nil, "", false
			}
			part = s[:end]
			s = s[end:]
		}
		parts = append(parts, part)
		s = strings.TrimLeft(s, " \t")
		if !strings.HasPrefix(s, ".") {
			return parts, s, true
		}
		s = s[1:]
	}
}

func isBareKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}
