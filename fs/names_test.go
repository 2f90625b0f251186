package fs

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEscapeSegment(t *testing.T) {
	tests := []struct{ in, want string }{
		{"INBOX", "INBOX"},
		{"Entwürfe", "Entwürfe"},
		{"Sent Items", "Sent Items"},
		{"a/b", "a%2Fb"},
		{"100%", "100%25"},
		{"%2F", "%252F"},
		{".", "%2E"},
		{"..", "%2E%2E"},
		{"...", "..."},
		{".hidden", ".hidden"},
		{"5.eml", "5%2Eeml"},
		{"notes.eml", "notes%2Eeml"},
		{"a.emlx", "a.emlx"},
		{"nul\x00byte", "nul%00byte"},
		{"", "%00"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := escapeSegment(tt.in)
			if got != tt.want {
				t.Fatalf("escapeSegment(%q): got %q, want %q", tt.in, got, tt.want)
			}
			back, ok := unescapeSegment(got)
			if !ok || back != tt.in {
				t.Fatalf("unescapeSegment(%q): got %q, %v, want %q, true", got, back, ok, tt.in)
			}
		})
	}
}

func TestUnescapeSegmentRejects(t *testing.T) {
	for _, name := range []string{".", "..", "5.eml", "%2", "%zz", "%41", "a%2fb"} {
		if got, ok := unescapeSegment(name); ok {
			t.Errorf("unescapeSegment(%q): got %q, true, want rejected", name, got)
		}
	}
}

func TestMessageFileName(t *testing.T) {
	tests := []struct{ key, want string }{
		{"4711", "4711.eml"},
		{"000001a3.4f5e", "000001a3.4f5e.eml"},
		{"a/b", "a%2Fb.eml"},
		{"50%", "50%25.eml"},
		{"x.eml", "x.eml.eml"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			got := messageFileName(tt.key)
			if got != tt.want {
				t.Fatalf("messageFileName(%q): got %q, want %q", tt.key, got, tt.want)
			}
			back, ok := messageKey(got)
			if !ok || back != tt.key {
				t.Fatalf("messageKey(%q): got %q, %v, want %q, true", got, back, ok, tt.key)
			}
		})
	}
	for _, name := range []string{"4711", ".eml", "a%2fb.eml", "%zz.eml", "Lists"} {
		if got, ok := messageKey(name); ok {
			t.Errorf("messageKey(%q): got %q, true, want rejected", name, got)
		}
	}
}

func TestControlAndLongNames(t *testing.T) {
	for _, in := range []string{"tab\there", "esc\x1b[31m", "del\x7f", "bad\xffutf8", "Entwürfe"} {
		got := escapeSegment(in)
		for i := 0; i < len(got); i++ {
			if got[i] < 0x20 || got[i] == 0x7f {
				t.Errorf("escapeSegment(%q) = %q holds a control character", in, got)
			}
		}
		if back, ok := unescapeSegment(got); !ok || back != in {
			t.Errorf("unescapeSegment(%q) = %q, %v; want %q", got, back, ok, in)
		}
	}
	if _, ok := unescapeSegment("raw\x01ctl"); ok {
		t.Error("a raw control character is accepted as a canonical name")
	}
	long := strings.Repeat("ä", 3000)
	for _, name := range []string{escapeSegment(long), messageFileName(long)} {
		if len(name) > maxName || !utf8.ValidString(name) || !isShortened(name) {
			t.Errorf("long name shortened to %d bytes %q (shortened form: %v)", len(name), name, isShortened(name))
		}
	}
	if escapeSegment(long) == escapeSegment(long+"x") {
		t.Error("two long names shortened to one")
	}
	if _, ok := messageKey(messageFileName(long)); ok {
		t.Error("a shortened message name reads as a key")
	}
	if name := messageFileName(long); !strings.HasSuffix(name, ".eml") {
		t.Errorf("shortened message name %q lacks .eml", name)
	}
	for _, short := range []string{"INBOX", "5.eml", "a%~0123", strings.Repeat("a", 300)} {
		if isShortened(short) {
			t.Errorf("isShortened(%q) = true", short)
		}
	}
}
