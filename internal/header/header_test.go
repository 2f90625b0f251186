package header

import "testing"

func TestFields(t *testing.T) {
	raw := "From: =?UTF-8?B?SsO8cmdlbiBNw7xsbGVy?= <jm@example.org>\r\n" +
		"To: a@example.org,\r\n b@example.org\r\n" +
		"Subject: =?ISO-8859-1?Q?Gr=FC=DFe?= aus\r\n =?UTF-8?Q?K=C3=B6ln?=\r\n" +
		"Cc: c@example.org\r\n" +
		"CC: d@example.org\r\n" +
		"Date: Mon, 2 Nov 2026 10:00:00 +0100\r\n" +
		"Message-ID: <x@example.org>\r\n" +
		"X-Latin1: caf\xe9\r\n" +
		"\r\n" +
		"Subject: not a header\r\n"
	got := Fields([]byte(raw))
	want := map[string]string{
		"from":       "Jürgen Müller <jm@example.org>",
		"to":         "a@example.org, b@example.org",
		"subject":    "Grüße aus Köln",
		"cc":         "c@example.org, d@example.org",
		"date":       "Mon, 2 Nov 2026 10:00:00 +0100",
		"message-id": "<x@example.org>",
		"x-latin1":   "café",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("field %s: got %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d fields %v, want %d", len(got), got, len(want))
	}
}

func TestFieldsOddInput(t *testing.T) {
	tests := []struct {
		name, raw, field, want string
	}{
		{"bare LF", "Subject: hi\nFrom: x@example.org\n\nbody", "from", "x@example.org"},
		{"mbox From line", "From someone Mon Nov  2 10:00:00 2026\nSubject: s\n\n", "subject", "s"},
		{"no header", "\r\nbody", "subject", ""},
		{"unknown charset", "Subject: =?x-unknown?Q?abc?=\r\n\r\n", "subject", "=?x-unknown?Q?abc?="},
		{"broken word", "Subject: =?UTF-8?B?####?=\r\n\r\n", "subject", "=?UTF-8?B?####?="},
		{"no final newline", "Subject: last", "subject", "last"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Fields([]byte(tt.raw))[tt.field]
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}
