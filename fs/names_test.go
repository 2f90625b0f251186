package fs

import "testing"

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
