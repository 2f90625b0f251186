package config

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// secret is what the test commands print on stdout; no error may contain it.
const secret = "s3cr3t-hunter2"

func TestPasswordCmd(t *testing.T) {
	tests := []struct {
		name    string
		cmd     string
		want    string
		wantErr string // substring of the error; "" for success
	}{
		{name: "plain", cmd: "printf '%s' " + secret, want: secret},
		{name: "trailing newline trimmed", cmd: "echo " + secret, want: secret},
		{name: "trailing CRLF trimmed", cmd: `printf '%s\r\n' ` + secret, want: secret},
		{name: "spaces kept", cmd: `printf ' a b \n'`, want: " a b "},
		{name: "shell features", cmd: "x=" + secret + "; echo \"$x\" | tr -d '\\n'", want: secret},
		{
			name:    "failure with stderr",
			cmd:     "echo 'gpg: decryption failed: No secret key' >&2; exit 2",
			wantErr: "config: /etc/mailfs/config.toml: accounts.work: password_cmd failed (exit status 2): gpg: decryption failed: No secret key",
		},
		{
			name:    "failure with multi-line stderr",
			cmd:     "printf 'line one\\nline two\\n' >&2; exit 1",
			wantErr: "password_cmd failed (exit status 1): line one line two",
		},
		{
			name:    "failure without stderr",
			cmd:     "exit 3",
			wantErr: "password_cmd failed (exit status 3) without a message on its standard error; run it in a shell to see why",
		},
		{
			name:    "failure after printing the password",
			cmd:     "echo " + secret + "; echo oops >&2; exit 1",
			wantErr: "password_cmd failed (exit status 1): oops",
		},
		{
			name:    "failure echoing the password on stderr too",
			cmd:     "echo " + secret + "; echo \"bad: " + secret + "\" >&2; exit 1",
			wantErr: "password_cmd failed (exit status 1): bad: [redacted]",
		},
		{
			name:    "empty output",
			cmd:     "true",
			wantErr: "config: /etc/mailfs/config.toml: accounts.work: password_cmd printed nothing on its standard output; make it print the password",
		},
		{
			name:    "only a newline",
			cmd:     "echo",
			wantErr: "password_cmd printed nothing on its standard output",
		},
		{
			name:    "several lines",
			cmd:     "echo " + secret + "; echo login: me",
			wantErr: "password_cmd printed several lines; make it print only the password",
		},
		{
			name:    "command not found",
			cmd:     "definitely-not-a-command-mailfs",
			wantErr: "password_cmd failed (exit status 127): ",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &Account{Name: "work", PasswordCmd: tt.cmd, source: testSource}
			got, err := a.Password(context.Background())
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Password: got error %v, want nil", err)
				}
				if got != tt.want {
					t.Errorf("Password: got %q, want %q", got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Password: got %q and no error, want error containing %q", got, tt.wantErr)
			}
			if got != "" {
				t.Errorf("Password: got %q with an error, want \"\"", got)
			}
			checkErr(t, err, tt.wantErr)
		})
	}
}

// checkErr checks that err contains want, is one line, starts with
// "config: ", is an *Error and does not leak the secret.
func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	msg := err.Error()
	if !strings.Contains(msg, want) {
		t.Errorf("error: got %q, want it to contain %q", msg, want)
	}
	if !strings.HasPrefix(msg, "config: ") {
		t.Errorf("error: got %q, want prefix \"config: \"", msg)
	}
	if strings.ContainsAny(msg, "\r\n") {
		t.Errorf("error: got %q, want a single line", msg)
	}
	if strings.Contains(msg, secret) {
		t.Errorf("error: got %q, want it without the secret %q", msg, secret)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Errorf("error type: got %T, want *Error", err)
	}
}

func TestPasswordCmdContext(t *testing.T) {
	t.Run("deadline", func(t *testing.T) {
		a := &Account{Name: "work", PasswordCmd: "echo " + secret + "; sleep 30 | cat", source: testSource}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := a.Password(ctx)
		if err == nil {
			t.Fatalf("Password: got nil error, want a timeout error")
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("Password returned after %v, want well under 10s", d)
		}
		checkErr(t, err, "password_cmd did not finish in time")
	})
	t.Run("already cancelled", func(t *testing.T) {
		a := &Account{Name: "work", PasswordCmd: "echo " + secret}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := a.Password(ctx)
		if err == nil {
			t.Fatalf("Password: got nil error, want an error")
		}
		checkErr(t, err, "password_cmd was not run: context canceled")
	})
}

func TestPasswordEnv(t *testing.T) {
	tests := []struct {
		name    string
		set     bool
		value   string
		want    string
		wantErr string
	}{
		{name: "set", set: true, value: secret, want: secret},
		{name: "spaces kept", set: true, value: " x ", want: " x "},
		{name: "unset", wantErr: `config: /etc/mailfs/config.toml: accounts.work: password_env: environment variable "MAILFS_TEST_PW" is not set; export it before starting mailfs`},
		{name: "empty", set: true, value: "", wantErr: `config: /etc/mailfs/config.toml: accounts.work: password_env: environment variable "MAILFS_TEST_PW" is empty; put the password in it`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const name = "MAILFS_TEST_PW"
			t.Setenv(name, tt.value)
			if !tt.set {
				unsetEnv(t, name)
			}
			a := &Account{Name: "work", PasswordEnv: name, source: testSource}
			got, err := a.Password(context.Background())
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Password: got %q and no error, want %q", got, tt.wantErr)
				}
				if err.Error() != tt.wantErr {
					t.Errorf("error: got %q, want %q", err.Error(), tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Password: got error %v, want nil", err)
			}
			if got != tt.want {
				t.Errorf("Password: got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPasswordSources(t *testing.T) {
	tests := []struct {
		name string
		acct Account
		want string
	}{
		{
			name: "neither",
			acct: Account{Name: "work", source: testSource},
			want: `config: /etc/mailfs/config.toml: accounts.work: no password source; set password_cmd = "COMMAND" (prints the password) or password_env = "VARIABLE"`,
		},
		{
			name: "both",
			acct: Account{Name: "work", PasswordCmd: "echo x", PasswordEnv: "X", source: testSource},
			want: `config: /etc/mailfs/config.toml: accounts.work: both password_cmd and password_env are set; keep only one`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.acct.Password(context.Background())
			if err == nil || err.Error() != tt.want {
				t.Errorf("error: got %v, want %s", err, tt.want)
			}
		})
	}
}

func TestPasswordFromParsedConfig(t *testing.T) {
	t.Setenv("MAILFS_TEST_PW", secret)
	a := mustParse(t, account(`protocol = "imap"`, `host = "h"`, `username = "u"`, `password_env = "MAILFS_TEST_PW"`)).Accounts["work"]
	got, err := a.Password(context.Background())
	if err != nil {
		t.Fatalf("Password: got error %v, want nil", err)
	}
	if got != secret {
		t.Errorf("Password: got %q, want %q", got, secret)
	}
}

func TestCacheKey(t *testing.T) {
	key16 := "0123456789abcdef"
	key24 := "0123456789abcdefghijklmn"
	key32 := "0123456789abcdefghijklmnopqrstuv"
	hex16 := "000102030405060708090a0b0c0d0e0f"
	tests := []struct {
		name    string
		cmd     string
		want    []byte
		wantErr string
	}{
		{name: "unset", cmd: "", want: nil},
		{name: "raw 16", cmd: "printf '%s' " + key16, want: []byte(key16)},
		{name: "raw 24", cmd: "printf '%s' " + key24, want: []byte(key24)},
		{name: "raw 32", cmd: "printf '%s' " + key32, want: []byte(key32)},
		{name: "raw 32 with newline", cmd: "echo " + key32, want: []byte(key32)},
		{name: "raw 32 ending in a newline byte", cmd: `printf '0123456789abcdefghijklmnopqrstu\n'`, want: []byte("0123456789abcdefghijklmnopqrstu\n")},
		{name: "raw binary", cmd: `printf '\001\002\003\004\005\006\007\010\011\012\013\014\015\016\017\020'`, want: []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}},
		{name: "hex 16", cmd: "echo " + hex16, want: []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}},
		{name: "hex 24", cmd: "echo " + strings.Repeat("ab", 24), want: bytes.Repeat([]byte{0xab}, 24)},
		{name: "hex 32 upper case", cmd: "echo " + strings.Repeat("CD", 32), want: bytes.Repeat([]byte{0xcd}, 32)},
		{name: "hex with surrounding space", cmd: "echo '  " + hex16 + "  '", want: []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}},
		{
			name:    "too short",
			cmd:     "printf '%s' " + secret,
			wantErr: "config: /etc/mailfs/config.toml: accounts.work: cache_key_cmd printed 14 bytes, which is not a key; make it print 16, 24 or 32 raw bytes or 32, 48 or 64 hex digits",
		},
		{name: "hex of wrong length", cmd: "echo " + strings.Repeat("ab", 20), wantErr: "cache_key_cmd printed 41 bytes, which is not a key"},
		{name: "empty", cmd: "true", wantErr: "cache_key_cmd printed 0 bytes, which is not a key"},
		{name: "failure", cmd: "echo " + secret + "; echo 'no key' >&2; exit 1", wantErr: "cache_key_cmd failed (exit status 1): no key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &Account{Name: "work", CacheKeyCmd: tt.cmd, source: testSource}
			got, err := a.CacheKey(context.Background())
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("CacheKey: got %x and no error, want error containing %q", got, tt.wantErr)
				}
				checkErr(t, err, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatalf("CacheKey: got error %v, want nil", err)
			}
			if !bytes.Equal(got, tt.want) || (got == nil) != (tt.want == nil) {
				t.Errorf("CacheKey: got %x (nil=%v), want %x (nil=%v)", got, got == nil, tt.want, tt.want == nil)
			}
		})
	}
}

func TestSanitizeStderr(t *testing.T) {
	long := strings.Repeat("x", maxStderrMsg+50)
	tests := []struct {
		name   string
		stderr string
		stdout string
		want   string
	}{
		{"plain", "error: nope\n", "", "error: nope"},
		{"lines joined", "a\nb\r\n\tc\n", "", "a b c"},
		{"control characters", "a\x1b[31mb\x00c", "", "a [31mb c"},
		{"stdout redacted", "pw is hunter2!", "hunter2\n", "pw is [redacted]!"},
		{"every stdout line redacted", "one two three", "one\nthree\n", "[redacted] two [redacted]"},
		{"truncated", long, "", strings.Repeat("x", maxStderrMsg) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sanitizeStderr([]byte(tt.stderr), []byte(tt.stdout)); got != tt.want {
				t.Errorf("sanitizeStderr: got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCapBuffer(t *testing.T) {
	b := &capBuffer{max: 4}
	for _, s := range []string{"ab", "cde", "f"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Errorf("Write(%q): got %d, %v, want %d, nil", s, n, err, len(s))
		}
	}
	if got, want := string(b.Bytes()), "abcd"; got != want {
		t.Errorf("Bytes: got %q, want %q", got, want)
	}
	if !b.overflow {
		t.Errorf("overflow: got false, want true")
	}
}
