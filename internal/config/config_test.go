package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testSource = "/etc/mailfs/config.toml"

// account returns a config with one account "work" made of the given lines.
func account(lines ...string) string {
	return "[accounts.work]\n" + strings.Join(lines, "\n") + "\n"
}

// minimal holds the keys every valid account needs, minus protocol.
var minimal = []string{
	`host = "mail.example.com"`,
	`username = "me@example.com"`,
	`password_cmd = "pass show mail/work"`,
}

func with(extra ...string) []string {
	return append(append([]string{}, minimal...), extra...)
}

func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	cfg, err := Parse([]byte(src), testSource)
	if err != nil {
		t.Fatalf("Parse: got error %v, want nil", err)
	}
	return cfg
}

func TestDefaults(t *testing.T) {
	tests := []struct {
		name     string
		lines    []string
		wantPort int
		wantTLS  string
		wantAuth string
	}{
		{"imap implicit", with(`protocol = "imap"`), 993, "implicit", "plain"},
		{"imap implicit explicit", with(`protocol = "imap"`, `tls = "implicit"`), 993, "implicit", "plain"},
		{"imap starttls", with(`protocol = "imap"`, `tls = "starttls"`), 143, "starttls", "plain"},
		{"imap none", with(`protocol = "imap"`, `tls = "none"`, `allow_plaintext = true`), 143, "none", "plain"},
		{"pop3 implicit", with(`protocol = "pop3"`), 995, "implicit", "user"},
		{"pop3 starttls", with(`protocol = "pop3"`, `tls = "starttls"`), 110, "starttls", "user"},
		{"pop3 none", with(`protocol = "pop3"`, `tls = "none"`, `allow_plaintext = true`), 110, "none", "user"},
		{"explicit port", with(`protocol = "imap"`, `port = 1993`), 1993, "implicit", "plain"},
		{"upper case values", with(`protocol = "IMAP"`, `tls = "StartTLS"`), 143, "starttls", "plain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := mustParse(t, account(tt.lines...)).Accounts["work"]
			if a == nil {
				t.Fatalf("account work: got nil, want an account")
			}
			if a.Port != tt.wantPort {
				t.Errorf("Port: got %d, want %d", a.Port, tt.wantPort)
			}
			if a.TLS != tt.wantTLS {
				t.Errorf("TLS: got %q, want %q", a.TLS, tt.wantTLS)
			}
			if a.Auth != tt.wantAuth {
				t.Errorf("Auth: got %q, want %q", a.Auth, tt.wantAuth)
			}
			if a.Name != "work" {
				t.Errorf("Name: got %q, want %q", a.Name, "work")
			}
			if a.Expunge != "never" {
				t.Errorf("Expunge: got %q, want %q", a.Expunge, "never")
			}
			if a.PollInterval != 60*time.Second {
				t.Errorf("PollInterval: got %v, want %v", a.PollInterval, 60*time.Second)
			}
			if a.Timeout != 30*time.Second {
				t.Errorf("Timeout: got %v, want %v", a.Timeout, 30*time.Second)
			}
			if a.CacheMaxSize != 0 {
				t.Errorf("CacheMaxSize: got %d, want 0", a.CacheMaxSize)
			}
			if a.Connections != 4 {
				t.Errorf("Connections: got %d, want 4", a.Connections)
			}
			if a.DeleteAfterDownload || a.TLSSkipVerify || a.CacheKeyCmd != "" || a.CAFile != "" {
				t.Errorf("optional settings: got delete_after_download=%v tls_skip_verify=%v cache_key_cmd=%q ca_file=%q, want zero values",
					a.DeleteAfterDownload, a.TLSSkipVerify, a.CacheKeyCmd, a.CAFile)
			}
		})
	}
}

func TestFullAccount(t *testing.T) {
	src := `
# A comment.
[accounts.work]
protocol = "pop3"
host = "pop.example.com"
port = 1995
tls = "starttls"
username = "me@example.com"
password_env = "WORK_PASSWORD"
auth = "apop"
ca_file = "certs/ca.pem"
tls_skip_verify = true
expunge = "on-unmount"
poll_interval = "5m"
timeout = 10
cache_max_size = "2GiB"
delete_after_download = true
cache_key_cmd = "pass show mail/key"
connections = 32

[accounts."home mail"]
protocol = "imap"
host = "::1"
tls = "none"
username = "me"
password_cmd = "cat pw"
auth = "xoauth2"
expunge = "immediate"
cache_max_size = 1048576
connections = 1
`
	cfg := mustParse(t, src)
	if got, want := len(cfg.Accounts), 2; got != want {
		t.Fatalf("len(Accounts): got %d, want %d", got, want)
	}
	w := cfg.Accounts["work"]
	want := Account{
		Name: "work", Protocol: "pop3", Host: "pop.example.com", Port: 1995, TLS: "starttls",
		Username: "me@example.com", PasswordEnv: "WORK_PASSWORD", Auth: "apop",
		CAFile: "/etc/mailfs/certs/ca.pem", TLSSkipVerify: true, Expunge: "on-unmount",
		PollInterval: 5 * time.Minute, Timeout: 10 * time.Second, CacheMaxSize: 2 << 30,
		DeleteAfterDownload: true, CacheKeyCmd: "pass show mail/key", Connections: 32,
		source: testSource,
	}
	if *w != want {
		t.Errorf("work: got %+v, want %+v", *w, want)
	}
	h := cfg.Accounts["home mail"]
	if h == nil {
		t.Fatalf(`account "home mail": got nil, want an account`)
	}
	if h.Port != 143 || h.Auth != "xoauth2" || h.Expunge != "immediate" || h.CacheMaxSize != 1<<20 || h.Connections != 1 {
		t.Errorf(`"home mail": got port=%d auth=%q expunge=%q cache_max_size=%d connections=%d, want 143 "xoauth2" "immediate" 1048576 1`,
			h.Port, h.Auth, h.Expunge, h.CacheMaxSize, h.Connections)
	}
	if got, want := h.Addr(), "[::1]:143"; got != want {
		t.Errorf("Addr: got %q, want %q", got, want)
	}
}

func TestValidationErrors(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		want  string // the whole error message
		key   string // Error.Key
		nline int    // Error.Line
	}{
		{
			name:  "missing protocol",
			src:   account(minimal...),
			want:  `config: /etc/mailfs/config.toml:1: accounts.work: protocol is missing; set protocol = "imap" or protocol = "pop3"`,
			key:   "protocol",
			nline: 1,
		},
		{
			name:  "bad protocol",
			src:   account(with(`protocol = "smtp"`)...),
			want:  `config: /etc/mailfs/config.toml:5: accounts.work: protocol = "smtp" is not supported; use "imap" or "pop3"`,
			key:   "protocol",
			nline: 5,
		},
		{
			name:  "protocol wrong type",
			src:   account(with(`protocol = 4`)...),
			want:  `config: /etc/mailfs/config.toml:5: accounts.work: protocol must be a string (in "quotes"), not an integer`,
			key:   "protocol",
			nline: 5,
		},
		{
			name: "missing host",
			src:  account(`protocol = "imap"`, `username = "u"`, `password_env = "P"`),
			want: `config: /etc/mailfs/config.toml:1: accounts.work: host is missing; set host = "mail.example.com"`,
			key:  "host", nline: 1,
		},
		{
			name: "host with port",
			src:  account(`protocol = "imap"`, `host = "imap.example.com:993"`, `username = "u"`, `password_env = "P"`),
			want: `config: /etc/mailfs/config.toml:3: accounts.work: host = "imap.example.com:993" includes a port; put the host alone in host and set port = 993`,
			key:  "host", nline: 3,
		},
		{
			name: "host with space",
			src:  account(`protocol = "imap"`, `host = "imap example"`, `username = "u"`, `password_env = "P"`),
			want: `config: /etc/mailfs/config.toml:3: accounts.work: host = "imap example" is not a valid host name or IP address; give only the name, e.g. "imap.example.com"`,
			key:  "host", nline: 3,
		},
		{
			name: "bad tls",
			src:  account(with(`protocol = "imap"`, `tls = "ssl"`)...),
			want: `config: /etc/mailfs/config.toml:6: accounts.work: tls = "ssl" is not supported; use "implicit", "starttls" or "none"`,
			key:  "tls", nline: 6,
		},
		{
			name: "port zero",
			src:  account(with(`protocol = "imap"`, `port = 0`)...),
			want: `config: /etc/mailfs/config.toml:6: accounts.work: port = 0 is out of range; use 1..65535, or remove it for the default (993)`,
			key:  "port", nline: 6,
		},
		{
			name: "port too large",
			src:  account(with(`protocol = "pop3"`, `port = 70000`)...),
			want: `config: /etc/mailfs/config.toml:6: accounts.work: port = 70000 is out of range; use 1..65535, or remove it for the default (995)`,
			key:  "port", nline: 6,
		},
		{
			name: "port as string",
			src:  account(with(`protocol = "imap"`, `port = "993"`)...),
			want: `config: /etc/mailfs/config.toml:6: accounts.work: port must be an integer (without quotes), not a string`,
			key:  "port", nline: 6,
		},
		{
			name: "missing username",
			src:  account(`protocol = "imap"`, `host = "h"`, `password_env = "P"`),
			want: `config: /etc/mailfs/config.toml:1: accounts.work: username is missing; set username = "me@example.com"`,
			key:  "username", nline: 1,
		},
		{
			name: "no password source",
			src:  account(`protocol = "imap"`, `host = "h"`, `username = "u"`),
			want: `config: /etc/mailfs/config.toml:1: accounts.work: no password source; set password_cmd = "COMMAND" (prints the password) or password_env = "VARIABLE"`,
			key:  "password_cmd", nline: 1,
		},
		{
			name: "both password sources",
			src:  account(with(`protocol = "imap"`, `password_env = "P"`)...),
			want: `config: /etc/mailfs/config.toml:6: accounts.work: both password_cmd and password_env are set; keep only one`,
			key:  "password_env", nline: 6,
		},
		{
			name: "empty password_cmd",
			src:  account(`protocol = "imap"`, `host = "h"`, `username = "u"`, `password_cmd = "  "`),
			want: `config: /etc/mailfs/config.toml:5: accounts.work: password_cmd is empty; set it to a command that prints the password, e.g. "pass show mail/work"`,
			key:  "password_cmd", nline: 5,
		},
		{
			name: "empty password_env",
			src:  account(`protocol = "imap"`, `host = "h"`, `username = "u"`, `password_env = ""`),
			want: `config: /etc/mailfs/config.toml:5: accounts.work: password_env is empty; set it to the name of an environment variable, e.g. password_env = "MAIL_PASSWORD"`,
			key:  "password_env", nline: 5,
		},
		{
			name: "password_env holding a value",
			src:  account(`protocol = "imap"`, `host = "h"`, `username = "u"`, `password_env = "PW=x"`),
			want: `config: /etc/mailfs/config.toml:5: accounts.work: password_env = "PW=x" is not a valid environment variable name; give the variable's name, not its value`,
			key:  "password_env", nline: 5,
		},
		{
			name: "imap auth apop",
			src:  account(with(`protocol = "imap"`, `auth = "apop"`)...),
			want: `config: /etc/mailfs/config.toml:6: accounts.work: auth = "apop" is not supported for imap; use one of "login", "plain", "xoauth2"`,
			key:  "auth", nline: 6,
		},
		{
			name: "pop3 auth plain",
			src:  account(with(`protocol = "pop3"`, `auth = "plain"`)...),
			want: `config: /etc/mailfs/config.toml:6: accounts.work: auth = "plain" is not supported for pop3; use one of "user", "apop"`,
			key:  "auth", nline: 6,
		},
		{
			name: "plaintext to remote host",
			src:  account(`protocol = "imap"`, `host = "imap.example.com"`, `tls = "none"`, `username = "u"`, `password_env = "P"`),
			want: `config: /etc/mailfs/config.toml:4: accounts.work: tls = "none" for non-loopback host "imap.example.com": set allow_plaintext = true to send your password unencrypted`,
			key:  "tls", nline: 4,
		},
		{
			name: "plaintext with allow_plaintext = false",
			src:  account(`protocol = "pop3"`, `host = "10.0.0.1"`, `tls = "none"`, `allow_plaintext = false`, `username = "u"`, `password_env = "P"`),
			want: `config: /etc/mailfs/config.toml:4: accounts.work: tls = "none" for non-loopback host "10.0.0.1": set allow_plaintext = true to send your password unencrypted`,
			key:  "tls", nline: 4,
		},
		{
			name: "ca_file without tls",
			src:  account(`protocol = "imap"`, `host = "localhost"`, `tls = "none"`, `ca_file = "/ca.pem"`, `username = "u"`, `password_env = "P"`),
			want: `config: /etc/mailfs/config.toml:5: accounts.work: ca_file is set but tls = "none"; remove ca_file or use tls = "implicit" or "starttls"`,
			key:  "ca_file", nline: 5,
		},
		{
			name: "tls_skip_verify without tls",
			src:  account(`protocol = "imap"`, `host = "127.0.0.1"`, `tls = "none"`, `tls_skip_verify = true`, `username = "u"`, `password_env = "P"`),
			want: `config: /etc/mailfs/config.toml:5: accounts.work: tls_skip_verify is set but tls = "none"; remove tls_skip_verify or use tls = "implicit" or "starttls"`,
			key:  "tls_skip_verify", nline: 5,
		},
		{
			name: "tls_skip_verify wrong type",
			src:  account(with(`protocol = "imap"`, `tls_skip_verify = "yes"`)...),
			want: `config: /etc/mailfs/config.toml:6: accounts.work: tls_skip_verify must be true or false (without quotes), not a string`,
			key:  "tls_skip_verify", nline: 6,
		},
		{
			name: "bad expunge",
			src:  account(with(`protocol = "imap"`, `expunge = "always"`)...),
			want: `config: /etc/mailfs/config.toml:6: accounts.work: expunge = "always" is not supported; use "never", "on-unmount" or "immediate"`,
			key:  "expunge", nline: 6,
		},
		{
			name: "bad poll_interval",
			src:  account(with(`protocol = "imap"`, `poll_interval = "often"`)...),
			want: `config: /etc/mailfs/config.toml:6: accounts.work: poll_interval = "often" is not a duration; use e.g. "60s", "5m" or "1h30m", or an integer number of seconds`,
			key:  "poll_interval", nline: 6,
		},
		{
			name: "short poll_interval",
			src:  account(with(`protocol = "imap"`, `poll_interval = "10ms"`)...),
			want: `config: /etc/mailfs/config.toml:6: accounts.work: poll_interval = "10ms" is too short; use at least "1s" (default "60s")`,
			key:  "poll_interval", nline: 6,
		},
		{
			name: "poll_interval float",
			src:  account(with(`protocol = "imap"`, `poll_interval = 1.5`)...),
			want: `config: /etc/mailfs/config.toml:6: accounts.work: poll_interval must be a duration such as "60s" or "5m", or an integer number of seconds, not a float`,
			key:  "poll_interval", nline: 6,
		},
		{
			name: "negative timeout",
			src:  account(with(`protocol = "imap"`, `timeout = -5`)...),
			want: `config: /etc/mailfs/config.toml:6: accounts.work: timeout = -5 is negative; use a positive number of seconds`,
			key:  "timeout", nline: 6,
		},
		{
			name: "zero timeout",
			src:  account(with(`protocol = "imap"`, `timeout = "0s"`)...),
			want: `config: /etc/mailfs/config.toml:6: accounts.work: timeout = "0s" must be positive; use e.g. "30s" (the default)`,
			key:  "timeout", nline: 6,
		},
		{
			name: "bad cache_max_size",
			src:  account(with(`protocol = "imap"`, `cache_max_size = "lots"`)...),
			want: `config: /etc/mailfs/config.toml:6: accounts.work: cache_max_size = "lots": not a size; use e.g. "2GiB", "500MB", "1G" or a number of bytes, or "" for unlimited`,
			key:  "cache_max_size", nline: 6,
		},
		{
			name: "negative cache_max_size",
			src:  account(with(`protocol = "imap"`, `cache_max_size = -1`)...),
			want: `config: /etc/mailfs/config.toml:6: accounts.work: cache_max_size = -1 is negative; use a size in bytes, or "" for unlimited`,
			key:  "cache_max_size", nline: 6,
		},
		{
			name: "delete_after_download for imap",
			src:  account(with(`protocol = "imap"`, `delete_after_download = true`)...),
			want: `config: /etc/mailfs/config.toml:6: accounts.work: delete_after_download is only valid for pop3 accounts; remove it (this account uses imap)`,
			key:  "delete_after_download", nline: 6,
		},
		{
			name: "empty cache_key_cmd",
			src:  account(with(`protocol = "imap"`, `cache_key_cmd = ""`)...),
			want: `config: /etc/mailfs/config.toml:6: accounts.work: cache_key_cmd is empty; set it to a command that prints a 16, 24 or 32 byte key, or remove it`,
			key:  "cache_key_cmd", nline: 6,
		},
		{
			name: "zero connections",
			src:  account(with(`protocol = "imap"`, `connections = 0`)...),
			want: `config: /etc/mailfs/config.toml:6: accounts.work: connections = 0 is out of range; use 1..32 (default 4)`,
			key:  "connections", nline: 6,
		},
		{
			name: "too many connections",
			src:  account(with(`protocol = "imap"`, `connections = 33`)...),
			want: `config: /etc/mailfs/config.toml:6: accounts.work: connections = 33 is out of range; use 1..32 (default 4)`,
			key:  "connections", nline: 6,
		},
		{
			name: "second account reported by name",
			src:  account(with(`protocol = "imap"`)...) + "\n[accounts.\"my home\"]\nprotocol = \"imap\"\n",
			want: `config: /etc/mailfs/config.toml:7: accounts."my home": host is missing; set host = "mail.example.com"`,
			key:  "host", nline: 7,
		},
		{
			name: "account name with slash",
			src:  "[accounts.\"a/b\"]\n" + strings.Join(with(`protocol = "imap"`), "\n"),
			want: `config: /etc/mailfs/config.toml:1: accounts."a/b": the account name "a/b" contains "/"; choose a name without it`,
			key:  "", nline: 1,
		},
		{
			name: "account is not a table",
			src:  "[accounts]\nwork = 3\n",
			want: `config: /etc/mailfs/config.toml:2: accounts.work: must be a table of settings ([accounts.work]), not an integer`,
			key:  "", nline: 2,
		},
		{
			name: "accounts is not a table",
			src:  "accounts = \"work\"\n",
			want: `config: /etc/mailfs/config.toml:1: accounts must be a table of account tables such as [accounts.work], not a string`,
			key:  "", nline: 1,
		},
		{
			name: "accounts is an array of tables",
			src:  "[[accounts]]\nhost = \"x\"\n",
			want: `config: /etc/mailfs/config.toml:1: accounts must be a table of account tables: write [accounts.NAME], not [[accounts]]`,
			key:  "", nline: 1,
		},
		{
			name: "no accounts",
			src:  "# nothing yet\n",
			want: `config: /etc/mailfs/config.toml: no accounts defined; add an [accounts.NAME] table with at least protocol, host, username and password_cmd or password_env`,
		},
		{
			name:  "empty accounts table",
			src:   "[accounts]\n",
			want:  `config: /etc/mailfs/config.toml:1: no accounts defined; add an [accounts.NAME] table with at least protocol, host, username and password_cmd or password_env`,
			nline: 1,
		},
		{
			name:  "syntax error",
			src:   "[accounts.work]\nhost = \"unterminated\n",
			want:  `config: /etc/mailfs/config.toml:2: invalid TOML: strings cannot contain newlines`,
			nline: 2,
		},
		{
			name: "dotted keys",
			src:  "accounts.work.protocol = \"imap\"\naccounts.work.host = \"h\"\naccounts.work.username = \"u\"\naccounts.work.password_env = \"P\"\naccounts.work.port = 99999\n",
			want: `config: /etc/mailfs/config.toml:5: accounts.work: port = 99999 is out of range; use 1..65535, or remove it for the default (993)`,
			key:  "port", nline: 5,
		},
		{
			name: "inline table falls back to the account line",
			src:  "[accounts]\nwork = { protocol = \"imap\", host = \"h\", username = \"u\", password_env = \"P\", port = 0 }\n",
			want: `config: /etc/mailfs/config.toml:2: accounts.work: port = 0 is out of range; use 1..65535, or remove it for the default (993)`,
			key:  "port", nline: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.src), testSource)
			if err == nil {
				t.Fatalf("Parse: got config %+v, want error %q", cfg, tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error:\ngot  %s\nwant %s", got, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error: got a multi-line message, want one line")
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error type: got %T, want *Error", err)
			}
			if e.Key != tt.key {
				t.Errorf("Error.Key: got %q, want %q", e.Key, tt.key)
			}
			if e.Line != tt.nline {
				t.Errorf("Error.Line: got %d, want %d", e.Line, tt.nline)
			}
		})
	}
}

func TestUnknownKeys(t *testing.T) {
	known := strings.Join(knownKeys, ", ")
	tests := []struct {
		name string
		src  string
		want string
	}{
		{
			name: "typo in account",
			src:  account(`protocol = "imap"`, `hots = "h"`),
			want: `config: /etc/mailfs/config.toml:3: accounts.work: unknown key "hots" (known keys: ` + known + `); did you mean "host"?`,
		},
		{
			name: "unrelated key in account",
			src:  account(with(`protocol = "imap"`, `colour = "blue"`)...),
			want: `config: /etc/mailfs/config.toml:6: accounts.work: unknown key "colour" (known keys: ` + known + `)`,
		},
		{
			name: "wrong case",
			src:  account(with(`protocol = "imap"`, `Port = 993`)...),
			want: `config: /etc/mailfs/config.toml:6: accounts.work: unknown key "Port" (known keys: ` + known + `); did you mean "port"?`,
		},
		{
			name: "sub-table in account",
			src:  account(with(`protocol = "imap"`)...) + "[accounts.work.imap]\nidle = true\n",
			want: `config: /etc/mailfs/config.toml:6: accounts.work: unknown key "imap" (known keys: ` + known + `)`,
		},
		{
			name: "top-level key",
			src:  "verbose = true\n" + account(with(`protocol = "imap"`)...),
			want: `config: /etc/mailfs/config.toml:1: unknown top-level key "verbose" (known keys: accounts; settings go in [accounts.NAME] tables)`,
		},
		{
			name: "top-level table typo",
			src:  "[account.work]\nprotocol = \"imap\"\n",
			want: `config: /etc/mailfs/config.toml:1: unknown top-level key "account" (known keys: accounts; settings go in [accounts.NAME] tables); did you mean "accounts"?`,
		},
		{
			name: "top-level wrong case",
			src:  "[Accounts.work]\nprotocol = \"imap\"\n",
			want: `config: /etc/mailfs/config.toml:1: unknown top-level key "Accounts" (known keys: accounts; settings go in [accounts.NAME] tables); did you mean "accounts"?`,
		},
		{
			name: "reported before validation errors",
			src:  account(`hots = "h"`),
			want: `config: /etc/mailfs/config.toml:2: accounts.work: unknown key "hots" (known keys: ` + known + `); did you mean "host"?`,
		},
		{
			name: "table below a known key is a type error",
			src:  account(with(`protocol = "imap"`)...) + "[accounts.work.timeout]\nx = 1\n",
			want: `config: /etc/mailfs/config.toml:6: accounts.work: timeout must be a duration such as "60s" or "5m", or an integer number of seconds, not a table`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.src), testSource)
			if err == nil {
				t.Fatalf("Parse: got nil error, want %q", tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error:\ngot  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestDurations(t *testing.T) {
	tests := []struct {
		value string
		want  time.Duration
	}{
		{`"60s"`, 60 * time.Second},
		{`"5m"`, 5 * time.Minute},
		{`"1h30m"`, 90 * time.Minute},
		{`120`, 120 * time.Second},
		{`" 2s "`, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			a := mustParse(t, account(with(`protocol = "imap"`, "poll_interval = "+tt.value, "timeout = "+tt.value)...)).Accounts["work"]
			if a.PollInterval != tt.want {
				t.Errorf("PollInterval: got %v, want %v", a.PollInterval, tt.want)
			}
			if a.Timeout != tt.want {
				t.Errorf("Timeout: got %v, want %v", a.Timeout, tt.want)
			}
		})
	}
}

func TestParseWithoutSource(t *testing.T) {
	_, err := Parse([]byte(account(`protocol = "imap"`)), "")
	want := `config: line 1: accounts.work: host is missing; set host = "mail.example.com"`
	if err == nil || err.Error() != want {
		t.Errorf("error: got %v, want %s", err, want)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()

	t.Run("ok", func(t *testing.T) {
		path := filepath.Join(dir, "config.toml")
		if err := os.WriteFile(path, []byte(account(with(`protocol = "imap"`, `ca_file = "ca.pem"`)...)), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(path)
		if err != nil {
			t.Fatalf("Load: got error %v, want nil", err)
		}
		a, err := cfg.Account("work")
		if err != nil {
			t.Fatalf("Account: got error %v, want nil", err)
		}
		if got, want := a.CAFile, filepath.Join(dir, "ca.pem"); got != want {
			t.Errorf("CAFile: got %q, want %q", got, want)
		}
	})

	t.Run("missing file", func(t *testing.T) {
		path := filepath.Join(dir, "nope.toml")
		_, err := Load(path)
		want := "config: " + path + `: no such file; create it (see README "Configuration")`
		if err == nil || err.Error() != want {
			t.Errorf("error: got %v, want %s", err, want)
		}
	})

	t.Run("directory", func(t *testing.T) {
		_, err := Load(dir)
		want := "config: " + dir + ": is a directory; give the path of the configuration file itself"
		if err == nil || err.Error() != want {
			t.Errorf("error: got %v, want %s", err, want)
		}
	})

	t.Run("invalid", func(t *testing.T) {
		path := filepath.Join(dir, "bad.toml")
		if err := os.WriteFile(path, []byte(account(`protocol = "imap"`, `hots = "x"`)), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path)
		if err == nil || !strings.HasPrefix(err.Error(), "config: "+path+":3: accounts.work: unknown key \"hots\"") {
			t.Errorf("error: got %v, want it to name %s:3, accounts.work and \"hots\"", err, path)
		}
	})
}

func TestDefaultPath(t *testing.T) {
	tests := []struct {
		name string
		xdg  string
		home string
		want string
	}{
		{"xdg", "/xdg/config", "/home/u", "/xdg/config/mailfs/config.toml"},
		{"no xdg", "", "/home/u", "/home/u/.config/mailfs/config.toml"},
		{"relative xdg ignored", "relative/dir", "/home/u", "/home/u/.config/mailfs/config.toml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("XDG_CONFIG_HOME", tt.xdg)
			t.Setenv("HOME", tt.home)
			got, err := DefaultPath()
			if err != nil {
				t.Fatalf("DefaultPath: got error %v, want nil", err)
			}
			if got != tt.want {
				t.Errorf("DefaultPath: got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestConfigAccount(t *testing.T) {
	cfg := mustParse(t, account(with(`protocol = "imap"`)...)+"[accounts.home]\n"+strings.Join(with(`protocol = "pop3"`), "\n"))
	tests := []struct {
		name    string
		account string
		wantErr string
	}{
		{"work", "work", ""},
		{"home", "home", ""},
		{"unknown", "play", `config: /etc/mailfs/config.toml: no account "play" (known accounts: "home", "work")`},
		{"empty", "", `config: /etc/mailfs/config.toml: no account "" (known accounts: "home", "work")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := cfg.Account(tt.account)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Errorf("error: got %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("error: got %v, want nil", err)
			}
			if a.Name != tt.account {
				t.Errorf("Name: got %q, want %q", a.Name, tt.account)
			}
		})
	}

	t.Run("no accounts", func(t *testing.T) {
		_, err := (&Config{}).Account("x")
		want := `config: no account "x": no accounts are defined; add an [accounts.NAME] table`
		if err == nil || err.Error() != want {
			t.Errorf("error: got %v, want %s", err, want)
		}
	})
}

func TestAddr(t *testing.T) {
	tests := []struct {
		host string
		port int
		want string
	}{
		{"imap.example.com", 993, "imap.example.com:993"},
		{"127.0.0.1", 143, "127.0.0.1:143"},
		{"::1", 993, "[::1]:993"},
		{"2001:db8::1", 995, "[2001:db8::1]:995"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			a := &Account{Host: tt.host, Port: tt.port}
			if got := a.Addr(); got != tt.want {
				t.Errorf("Addr: got %q, want %q", got, tt.want)
			}
		})
	}

	t.Run("bracketed host in file", func(t *testing.T) {
		a := mustParse(t, account(`protocol = "imap"`, `host = "[::1]"`, `username = "u"`, `password_env = "P"`)).Accounts["work"]
		if got, want := a.Host, "::1"; got != want {
			t.Errorf("Host: got %q, want %q", got, want)
		}
		if got, want := a.Addr(), "[::1]:993"; got != want {
			t.Errorf("Addr: got %q, want %q", got, want)
		}
	})
}

func TestTLSConfig(t *testing.T) {
	dir := t.TempDir()
	caPath := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caPath, selfSignedPEM(t), 0o600); err != nil {
		t.Fatal(err)
	}
	junkPath := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junkPath, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		acct     Account
		wantPool bool
		wantErr  string
	}{
		{name: "defaults verify", acct: Account{Name: "work", Host: "imap.example.com"}},
		{name: "skip verify", acct: Account{Name: "work", Host: "imap.example.com", TLSSkipVerify: true}},
		{name: "ca_file", acct: Account{Name: "work", Host: "imap.example.com", CAFile: caPath}, wantPool: true},
		{
			name:    "missing ca_file",
			acct:    Account{Name: "work", Host: "h", CAFile: filepath.Join(dir, "none.pem"), source: testSource},
			wantErr: `config: /etc/mailfs/config.toml: accounts.work: ca_file "` + filepath.Join(dir, "none.pem") + `": no such file; fix the path or remove ca_file to use the system roots`,
		},
		{
			name:    "junk ca_file",
			acct:    Account{Name: "work", Host: "h", CAFile: junkPath, source: testSource},
			wantErr: `config: /etc/mailfs/config.toml: accounts.work: ca_file "` + junkPath + `" holds no PEM certificate; give a file with one or more "-----BEGIN CERTIFICATE-----" blocks`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := tt.acct.TLSConfig()
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Errorf("error: got %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("error: got %v, want nil", err)
			}
			if cfg.ServerName != tt.acct.Host {
				t.Errorf("ServerName: got %q, want %q", cfg.ServerName, tt.acct.Host)
			}
			if cfg.InsecureSkipVerify != tt.acct.TLSSkipVerify {
				t.Errorf("InsecureSkipVerify: got %v, want %v", cfg.InsecureSkipVerify, tt.acct.TLSSkipVerify)
			}
			if got := cfg.RootCAs != nil; got != tt.wantPool {
				t.Errorf("RootCAs set: got %v, want %v", got, tt.wantPool)
			}
		})
	}
}

func selfSignedPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
