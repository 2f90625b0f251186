package config

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"strconv"
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

// presenceCmd prints a 16-byte hex key that says which of the variables
// names the command sees: byte i is 0x11 when names[i] is set, 0x00 when not.
func presenceCmd(names ...string) string {
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, `if [ -n "${%s+set}" ]; then printf 11; else printf 00; fi; `, n)
	}
	fmt.Fprintf(&b, "echo %s", strings.Repeat("00", 16-len(names)))
	return b.String()
}

// presence decodes what presenceCmd printed, as CacheKey returns it.
func presence(t *testing.T, key []byte, names ...string) map[string]bool {
	t.Helper()
	if len(key) != 16 {
		t.Fatalf("key: got %x, want 16 bytes", key)
	}
	seen := map[string]bool{}
	for i, n := range names {
		seen[n] = key[i] == 0x11
	}
	return seen
}

func TestPasswordEnvHiddenFromCommands(t *testing.T) {
	const (
		own   = "MAILFS_TEST_OWN_PW"
		other = "MAILFS_TEST_OTHER_PW"
		kept  = "MAILFS_TEST_NOT_A_PASSWORD"
	)
	t.Setenv(own, secret)
	t.Setenv(other, "other-"+secret)
	t.Setenv(kept, "x")
	cfg := mustParse(t, `
[accounts.work]
protocol = "imap"
host = "h"
username = "u"
password_env = "`+own+`"
cache_key_cmd = `+strconv.Quote(presenceCmd(own, other, kept))+`

[accounts.home]
protocol = "pop3"
host = "h"
username = "u"
password_env = "`+other+`"

[accounts.cmd]
protocol = "imap"
host = "h"
username = "u"
password_cmd = `+strconv.Quote(presenceCmd(own, other, kept))+`
`)
	ctx := context.Background()
	want := map[string]bool{own: false, other: false, kept: true}

	// mailfs runs cache_key_cmd before it asks for the password: the
	// variable is still in the process environment then.
	key, err := cfg.Accounts["work"].CacheKey(ctx)
	if err != nil {
		t.Fatalf("CacheKey: got error %v, want nil", err)
	}
	if got := presence(t, key, own, other, kept); !maps.Equal(got, want) {
		t.Errorf("cache_key_cmd sees %v, want %v", got, want)
	}

	// password_cmd of another account sees neither password.
	pw, err := cfg.Accounts["cmd"].Password(ctx)
	if err != nil {
		t.Fatalf("Password: got error %v, want nil", err)
	}
	raw, err := hex.DecodeString(pw)
	if err != nil {
		t.Fatalf("password_cmd printed %q, want hex", pw)
	}
	if got := presence(t, raw, own, other, kept); !maps.Equal(got, want) {
		t.Errorf("password_cmd sees %v, want %v", got, want)
	}

	// Password takes the variable out of the environment that later
	// children inherit, and still answers a second time.
	work := cfg.Accounts["work"]
	for i := range 2 {
		got, err := work.Password(ctx)
		if err != nil || got != secret {
			t.Fatalf("Password #%d: got %q, %v; want %q, nil", i+1, got, err, secret)
		}
		if v, ok := os.LookupEnv(own); ok {
			t.Errorf("after Password #%d: %s=%q still in the environment, want it unset", i+1, own, v)
		}
	}
	out, err := exec.Command("/bin/sh", "-c", "printenv "+own+" || true").Output()
	if err != nil || len(out) != 0 {
		t.Errorf("a later child sees %s=%q (%v), want nothing", own, out, err)
	}
	if _, ok := os.LookupEnv(other); !ok {
		t.Errorf("%s unset before its account asked for it, want it kept", other)
	}
}

// An account made without Parse hides its own variable too.
func TestPasswordEnvHiddenWithoutParse(t *testing.T) {
	const name = "MAILFS_TEST_UNPARSED_PW"
	t.Setenv(name, secret)
	a := &Account{Name: "work", PasswordEnv: name, CacheKeyCmd: presenceCmd(name), source: testSource}
	key, err := a.CacheKey(context.Background())
	if err != nil {
		t.Fatalf("CacheKey: got error %v, want nil", err)
	}
	if presence(t, key, name)[name] {
		t.Errorf("cache_key_cmd sees %s, want it hidden", name)
	}
	if v, _ := os.LookupEnv(name); v != secret {
		t.Errorf("%s: got %q before Password, want it untouched", name, v)
	}
}

// Printing an account after Password does not show the password.
func TestPasswordEnvNotPrinted(t *testing.T) {
	const name = "MAILFS_TEST_PRINTED_PW"
	t.Setenv(name, secret)
	a := &Account{Name: "work", PasswordEnv: name}
	if _, err := a.Password(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"%v", "%+v", "%#v"} {
		if s := fmt.Sprintf(format, a); strings.Contains(s, secret) {
			t.Errorf("Sprintf(%q): got %s, want it without the password", format, s)
		}
	}
}

// A password written into the file by mistake, unquoted, is not quoted
// back in the TOML decoder's error.
func TestSecretNotInTOMLErrors(t *testing.T) {
	for _, src := range []string{
		"[accounts.work]\npassword = hunter2xyz\n",
		"[accounts.work]\npassword = 0123456\n",
		"[accounts.work]\npassword = \"hunter\\uZZZZ\"\n",
		"accounts.work.password_cmd = hunter2xyz\n",
		"[accounts]\nwork = { secret = hunter2xyz }\n",
	} {
		_, err := Parse([]byte(src), testSource)
		if err == nil {
			t.Fatalf("Parse(%q): got nil error, want invalid TOML", src)
		}
		msg := err.Error()
		if !strings.Contains(msg, "invalid TOML") || strings.Contains(msg, "hunter") || strings.Contains(msg, "0123456") {
			t.Errorf("Parse(%q): got %q, want invalid TOML without the value", src, msg)
		}
		checkErr(t, err, "is malformed (not shown, as it may be a secret)")
	}
}
