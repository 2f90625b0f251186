package header

import (
	"maps"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzFields feeds any bytes to Fields and Decode. Neither may panic;
// both are deterministic; every value is valid UTF-8 (it becomes an
// extended attribute shown as text), and so is every key, which is lower
// case and a field name (no colon, space or tab).
func FuzzFields(f *testing.F) {
	for _, s := range []string{
		"",
		"\r\n",
		"Subject: hi\r\n\r\nbody",
		"From: =?UTF-8?B?SsO8cmdlbiBNw7xsbGVy?= <jm@example.org>\r\nTo: a@example.org,\r\n b@example.org\r\n\r\n",
		"Subject: =?ISO-8859-1?Q?Gr=FC=DFe?= aus\r\n =?UTF-8?Q?K=C3=B6ln?=\r\n\r\n",
		"Subject: =?ISO-2022-JP?B?GyRCJUYlOSVIGyhC?=\r\n\r\n",
		"Subject: =?Shift_JIS?B?g2WDWINn?=\r\n\r\n",
		"Subject: =?koi8-r?Q?=F0=D2=C9=D7=C5=D4?=\r\n\r\n",
		"Subject: =?gb2312?B?xOO6ww==?=\r\n\r\n",
		"Subject: =?utf-7?Q?+AOQ-?=\r\n\r\n",
		"Subject: =?x-unknown?Q?abc?=\r\n\r\n",
		"Subject: =?UTF-8?B?####?=\r\n\r\n",
		"Subject: =?UTF-8?Q?=FF=FE?=\r\n\r\n",
		"Subject: =?UTF-8*en?Q?hi?=\r\n\r\n",
		"X-Latin1: caf\xe9\r\n\r\n",
		"X-Bad: \xff\xfe\xc3\r\n\r\n",
		"From someone Mon Nov  2 10:00:00 2026\nSubject: s\n\n",
		"Subject: a\x00b\r\nCc: c\r\nCC: d\r\n\r\n",
		"\xc3\x9cber: x\r\n\r\n",
		": no name\r\n\tcontinued\r\n\r\n",
		"Subject: " + strings.Repeat("=?UTF-8?Q?a?= ", 200) + "\r\n\r\n",
		"Subject: last",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		in := string(raw)
		got := Fields(raw)
		if string(raw) != in {
			t.Fatalf("Fields changed its input")
		}
		if again := Fields(raw); !maps.Equal(got, again) {
			t.Fatalf("Fields(%q): got %q, then %q", raw, got, again)
		}
		for k, v := range got {
			if !utf8.ValidString(v) {
				t.Fatalf("Fields(%q)[%q] = %q: not UTF-8", raw, k, v)
			}
			if k == "" || !utf8.ValidString(k) || strings.ToLower(k) != k || strings.ContainsAny(k, ": \t\n") {
				t.Fatalf("Fields(%q): bad key %q", raw, k)
			}
		}
		d := Decode(raw)
		if !utf8.ValidString(d) {
			t.Fatalf("Decode(%q) = %q: not UTF-8", raw, d)
		}
		if again := Decode(raw); again != d {
			t.Fatalf("Decode(%q): got %q, then %q", raw, d, again)
		}
	})
}
