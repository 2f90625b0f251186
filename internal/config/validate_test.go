package config

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// unsetEnv unsets name for the duration of the test.
func unsetEnv(t *testing.T, name string) {
	t.Helper()
	t.Setenv(name, "") // restores the old value at cleanup
	if err := os.Unsetenv(name); err != nil {
		t.Fatal(err)
	}
}

func TestIsLoopback(t *testing.T) {
	tests := []struct {
		host string
		want bool
	}{
		{"localhost", true},
		{"LocalHost", true},
		{"localhost.", true},
		{"127.0.0.1", true},
		{"127.1.2.3", true},
		{"127.255.255.254", true},
		{"::1", true},
		{"[::1]", true},
		{"0:0:0:0:0:0:0:1", true},
		{"::ffff:127.0.0.1", true},
		{"128.0.0.1", false},
		{"126.255.255.255", false},
		{"10.0.0.1", false},
		{"0.0.0.0", false},
		{"::", false},
		{"::2", false},
		{"imap.example.com", false},
		{"localhost.example.com", false},
		{"mylocalhost", false},
		{"127.0.0.1.nip.io", false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			if got := IsLoopback(tt.host); got != tt.want {
				t.Errorf("IsLoopback(%q): got %v, want %v", tt.host, got, tt.want)
			}
		})
	}
}

func TestPlaintextPolicy(t *testing.T) {
	tests := []struct {
		host           string
		allowPlaintext bool
		wantErr        bool
	}{
		{"localhost", false, false},
		{"127.0.0.1", false, false},
		{"127.8.9.10", false, false},
		{"::1", false, false},
		{"192.168.1.10", false, true},
		{"imap.example.com", false, true},
		{"imap.example.com", true, false},
		{"2001:db8::1", true, false},
	}
	for _, tt := range tests {
		name := tt.host
		if tt.allowPlaintext {
			name += " allowed"
		}
		t.Run(name, func(t *testing.T) {
			lines := []string{`protocol = "imap"`, `host = "` + tt.host + `"`, `tls = "none"`, `username = "u"`, `password_env = "P"`}
			if tt.allowPlaintext {
				lines = append(lines, `allow_plaintext = true`)
			}
			_, err := Parse([]byte(account(lines...)), testSource)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Errorf("error: got %v, want error=%v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "set allow_plaintext = true") {
				t.Errorf("error: got %q, want it to mention allow_plaintext", err)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"", 0, false},
		{"  ", 0, false},
		{"0", 0, false},
		{"1048576", 1 << 20, false},
		{"100B", 100, false},
		{"1K", 1000, false},
		{"1KB", 1000, false},
		{"1KiB", 1024, false},
		{"1Ki", 1024, false},
		{"500MB", 500_000_000, false},
		{"500mb", 500_000_000, false},
		{"500MiB", 500 << 20, false},
		{"1G", 1_000_000_000, false},
		{"1g", 1_000_000_000, false},
		{"2GiB", 2 << 30, false},
		{"2 GiB", 2 << 30, false},
		{"1.5GiB", 3 << 29, false},
		{"0.5K", 500, false},
		{"1T", 1_000_000_000_000, false},
		{"1TiB", 1 << 40, false},
		{"1PiB", 1 << 50, false},
		{"8192PiB", 0, true},
		{"9223372036854775807", math.MaxInt64, false},
		{"9223372036854775808", 0, true},
		{"10000000P", 0, true},
		{"lots", 0, true},
		{"GiB", 0, true},
		{"-1G", 0, true},
		{"1.2.3G", 0, true},
		{"1 GB B", 0, true},
		{"1e3", 0, true},
		{"12XB", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Errorf("ParseSize(%q): got %d, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSize(%q): got error %v, want %d", tt.in, err, tt.want)
			}
			if got != tt.want {
				t.Errorf("ParseSize(%q): got %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestCacheMaxSizeInFile(t *testing.T) {
	tests := []struct {
		value string
		want  int64
	}{
		{`""`, 0},
		{`"2GiB"`, 2 << 30},
		{`"500MB"`, 500_000_000},
		{`"1G"`, 1_000_000_000},
		{`4096`, 4096},
		{`0`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			a := mustParse(t, account(with(`protocol = "imap"`, "cache_max_size = "+tt.value)...)).Accounts["work"]
			if a.CacheMaxSize != tt.want {
				t.Errorf("CacheMaxSize: got %d, want %d", a.CacheMaxSize, tt.want)
			}
		})
	}
}

func TestDefaultPort(t *testing.T) {
	tests := []struct {
		protocol, tls string
		want          int
	}{
		{"imap", "implicit", 993},
		{"imap", "starttls", 143},
		{"imap", "none", 143},
		{"pop3", "implicit", 995},
		{"pop3", "starttls", 110},
		{"pop3", "none", 110},
		{"smtp", "implicit", 0},
	}
	for _, tt := range tests {
		t.Run(tt.protocol+" "+tt.tls, func(t *testing.T) {
			if got := DefaultPort(tt.protocol, tt.tls); got != tt.want {
				t.Errorf("DefaultPort(%q, %q): got %d, want %d", tt.protocol, tt.tls, got, tt.want)
			}
		})
	}
}

func TestResolvePath(t *testing.T) {
	t.Setenv("HOME", "/home/u")
	tests := []struct {
		path, source, want string
	}{
		{"/abs/ca.pem", "/etc/mailfs/config.toml", "/abs/ca.pem"},
		{"ca.pem", "/etc/mailfs/config.toml", "/etc/mailfs/ca.pem"},
		{"certs/../ca.pem", "/etc/mailfs/config.toml", "/etc/mailfs/ca.pem"},
		{"~/ca.pem", "/etc/mailfs/config.toml", "/home/u/ca.pem"},
		{"~", "/etc/mailfs/config.toml", "/home/u"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, err := resolvePath(tt.path, tt.source)
			if err != nil {
				t.Fatalf("resolvePath: got error %v, want %q", err, tt.want)
			}
			if got != tt.want {
				t.Errorf("resolvePath(%q, %q): got %q, want %q", tt.path, tt.source, got, tt.want)
			}
		})
	}

	t.Run("relative without source", func(t *testing.T) {
		got, err := resolvePath("ca.pem", "")
		if err != nil {
			t.Fatalf("resolvePath: got error %v, want nil", err)
		}
		wd, _ := os.Getwd()
		if want := filepath.Join(wd, "ca.pem"); got != want {
			t.Errorf("resolvePath: got %q, want %q", got, want)
		}
	})
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"host", "host", 0},
		{"hots", "host", 2},
		{"hst", "host", 1},
		{"prot", "port", 2},
		{"", "abc", 3},
		{"kitten", "sitting", 3},
	}
	for _, tt := range tests {
		t.Run(tt.a+"/"+tt.b, func(t *testing.T) {
			if got := editDistance(tt.a, tt.b); got != tt.want {
				t.Errorf("editDistance(%q, %q): got %d, want %d", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

func TestLineIndex(t *testing.T) {
	src := `# comment
top = 1
[accounts.work]
protocol = "imap"   # trailing comment
  host = "h"
desc = """
port = 1
"""
"quoted key" = 2
[accounts . "my home" ]
'literal' = 3
sub.key = 4
[[array]]
x = 5
[accounts.other]
`
	idx := newLineIndex([]byte(src))
	tests := []struct {
		key  []string
		want int
	}{
		{[]string{"top"}, 2},
		{[]string{"accounts", "work"}, 3},
		{[]string{"accounts", "work", "protocol"}, 4},
		{[]string{"accounts", "work", "host"}, 5},
		{[]string{"accounts", "work", "desc"}, 6},
		{[]string{"accounts", "work", "port"}, 0}, // inside a multi-line string
		{[]string{"accounts", "work", "quoted key"}, 9},
		{[]string{"accounts", "my home"}, 10},
		{[]string{"accounts", "my home", "literal"}, 11},
		{[]string{"accounts", "my home", "sub", "key"}, 12},
		{[]string{"accounts", "my home", "sub"}, 12}, // first line below it
		{[]string{"array", "x"}, 14},
		{[]string{"accounts"}, 3},
		{[]string{"accounts", "other"}, 15},
		{[]string{"missing"}, 0},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.key, "."), func(t *testing.T) {
			if got := idx.find(tt.key); got != tt.want {
				t.Errorf("find(%q): got %d, want %d", tt.key, got, tt.want)
			}
		})
	}
}

func TestKnownKeys(t *testing.T) {
	want := []string{
		"allow_plaintext", "auth", "ca_file", "cache_key_cmd", "cache_max_size",
		"connections", "delete_after_download", "expunge", "host", "password_cmd",
		"password_env", "poll_interval", "port", "protocol", "timeout", "tls",
		"tls_skip_verify", "username",
	}
	if got := strings.Join(knownKeys, ","); got != strings.Join(want, ",") {
		t.Errorf("knownKeys: got %s, want %s", got, strings.Join(want, ","))
	}
}
