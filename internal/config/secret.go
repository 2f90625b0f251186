package config

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"
)

const (
	maxStdout    = 64 << 10 // a password or key is far smaller
	maxStderr    = 8 << 10
	maxStderrMsg = 300 // characters of stderr quoted in an error
	waitDelay    = 2 * time.Second
)

// Password returns the account's password (or, for auth = "xoauth2", its
// OAuth2 access token). With password_cmd it runs the command with
// "sh -c" and returns its standard output minus the trailing newline; the
// command's standard error is quoted in the error if it fails, its standard
// output never is. With password_env it returns the value of that
// environment variable, which it then removes from the process environment
// so that no program mailfs starts later inherits it; the value stays with
// the account, so a second call returns it again. Exactly one of the two
// must be set, and the result must not be empty.
//
// The password is only returned, never logged or put in an error. Cancel ctx
// to stop a command that hangs; the whole process group is killed.
func (a *Account) Password(ctx context.Context) (string, error) {
	switch {
	case a.PasswordCmd != "" && a.PasswordEnv != "":
		return "", a.errorf("password_env", "both password_cmd and password_env are set; keep only one")
	case a.PasswordCmd != "":
		out, err := a.run(ctx, "password_cmd", a.PasswordCmd)
		if err != nil {
			return "", err
		}
		pw := strings.TrimRight(string(out), "\r\n")
		if pw == "" {
			return "", a.errorf("password_cmd", "password_cmd printed nothing on its standard output; make it print the password")
		}
		if strings.ContainsAny(pw, "\r\n") {
			return "", a.errorf("password_cmd", `password_cmd printed several lines; make it print only the password (e.g. append "| head -n 1")`)
		}
		return pw, nil
	case a.PasswordEnv != "":
		pw, ok := a.envPassword()
		if !ok {
			return "", a.errorf("password_env", "password_env: environment variable %q is not set; export it before starting mailfs", a.PasswordEnv)
		}
		if pw == "" {
			return "", a.errorf("password_env", "password_env: environment variable %q is empty; put the password in it", a.PasswordEnv)
		}
		return pw, nil
	default:
		return "", a.errorf("password_cmd", `no password source; set password_cmd = "COMMAND" (prints the password) or password_env = "VARIABLE"`)
	}
}

// CacheKey runs cache_key_cmd and returns the key it prints: 16, 24 or 32
// raw bytes, or those lengths written in hexadecimal (surrounding white
// space ignored). Output that is entirely hexadecimal of a valid length is
// taken as hex. It returns nil, nil when cache_key_cmd is unset.
func (a *Account) CacheKey(ctx context.Context) ([]byte, error) {
	if a.CacheKeyCmd == "" {
		return nil, nil
	}
	out, err := a.run(ctx, "cache_key_cmd", a.CacheKeyCmd)
	if err != nil {
		return nil, err
	}
	defer clear(out)
	key, ok := parseKeyBytes(out)
	if !ok {
		return nil, a.errorf("cache_key_cmd", "cache_key_cmd printed %d bytes, which is not a key; make it print 16, 24 or 32 raw bytes or 32, 48 or 64 hex digits (e.g. \"openssl rand -hex 32\" once, stored in a password manager)", len(out))
	}
	return key, nil
}

func validKeyLen(n int) bool { return n == 16 || n == 24 || n == 32 }

// parseKeyBytes interprets the output of cache_key_cmd. The result never
// aliases out.
func parseKeyBytes(out []byte) ([]byte, bool) {
	if t := bytes.TrimSpace(out); len(t)%2 == 0 && validKeyLen(len(t)/2) {
		key := make([]byte, len(t)/2)
		if _, err := hex.Decode(key, t); err == nil {
			return key, true
		}
		clear(key)
	}
	if validKeyLen(len(out)) {
		return bytes.Clone(out), true
	}
	if t := bytes.TrimRight(out, "\r\n"); validKeyLen(len(t)) {
		return bytes.Clone(t), true
	}
	return nil, false
}

// run runs command with sh -c and returns its standard output. Errors name
// key and quote the command's standard error, never its standard output.
// The command gets the process environment without the password_env
// variables of the account's configuration (see childEnv).
func (a *Account) run(ctx context.Context, key, command string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, a.errorf(key, "%s was not run: %v", key, err)
	}
	stdout := &capBuffer{max: maxStdout}
	stderr := &capBuffer{max: maxStderr}
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.Stdin = nil // /dev/null
	cmd.Env = a.childEnv()
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	cmd.WaitDelay = waitDelay
	setProcessGroup(cmd)
	err := cmd.Run()
	out := stdout.Bytes()
	if err != nil {
		msg := describeRunError(ctx, key, err, stderr.Bytes(), out)
		clear(out)
		return nil, a.errorf(key, "%s", msg)
	}
	if stdout.overflow {
		clear(out)
		return nil, a.errorf(key, "%s printed more than %d bytes on its standard output; make it print only the secret", key, maxStdout)
	}
	return out, nil
}

// envMu serializes taking password_env variables out of the process
// environment, and protects envNames and Account.taken.
var envMu sync.Mutex

// envNames holds the password_env variable of every account of every
// configuration Parse has loaded: no command this package runs inherits
// them, so that cache_key_cmd (run before Password) or the password_cmd of
// one account never sees the password of another.
var envNames = map[string]struct{}{}

// envSecret is a password_env value that Password has taken out of the
// process environment. Account holds it by pointer, so that printing an
// Account shows an address, not the password.
type envSecret struct {
	value string
}

// registerEnv records the password_env variables of a loaded
// configuration in envNames.
func registerEnv(accounts map[string]*Account) {
	envMu.Lock()
	defer envMu.Unlock()
	for _, a := range accounts {
		if a != nil && a.PasswordEnv != "" {
			envNames[a.PasswordEnv] = struct{}{}
		}
	}
}

// envPassword reads the account's password_env variable and removes it
// from the process environment, so that later children of the process
// (fusermount3, new-mail commands) do not inherit it. Once removed, the
// value is kept in the account for the next call; ok is false when the
// variable was never there.
func (a *Account) envPassword() (pw string, ok bool) {
	envMu.Lock()
	defer envMu.Unlock()
	if pw, ok := os.LookupEnv(a.PasswordEnv); ok {
		if pw != "" {
			a.taken = &envSecret{value: pw}
			os.Unsetenv(a.PasswordEnv)
		}
		return pw, true
	}
	if a.taken != nil {
		return a.taken.value, true
	}
	return "", false
}

// childEnv returns the environment for a command the account runs: the
// process environment without the account's password_env variable or any
// other that a loaded configuration names (envNames).
func (a *Account) childEnv() []string {
	envMu.Lock()
	defer envMu.Unlock()
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		_, named := envNames[name]
		return named || name == a.PasswordEnv
	})
}

func describeRunError(ctx context.Context, key string, err error, stderr, stdout []byte) string {
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return fmt.Sprintf("%s did not finish in time; check that it does not wait for input", key)
		}
		return fmt.Sprintf("%s was interrupted: %v", key, ctxErr)
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		if errors.Is(err, exec.ErrWaitDelay) {
			return fmt.Sprintf("%s exited but left a process holding its output open; make sure it does not start background processes", key)
		}
		return fmt.Sprintf("cannot run %s: %v", key, err)
	}
	status := exitErr.ProcessState.String() // "exit status 1", "signal: killed"
	detail := sanitizeStderr(stderr, stdout)
	if detail == "" {
		return fmt.Sprintf("%s failed (%s) without a message on its standard error; run it in a shell to see why", key, status)
	}
	return fmt.Sprintf("%s failed (%s): %s", key, status, detail)
}

// sanitizeStderr returns stderr on one line, shortened, with every line
// that the command printed on stdout (which may be the secret) redacted.
func sanitizeStderr(stderr, stdout []byte) string {
	s := string(bytes.ToValidUTF8(stderr, []byte("?")))
	for _, line := range strings.Split(string(stdout), "\n") {
		line = strings.TrimSpace(line)
		if line != "" {
			s = strings.ReplaceAll(s, line, "[redacted]")
		}
	}
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > maxStderrMsg {
		s = string(r[:maxStderrMsg]) + "…"
	}
	return s
}

// capBuffer keeps the first max bytes written to it and discards the rest.
type capBuffer struct {
	buf      bytes.Buffer
	max      int
	overflow bool
}

func (b *capBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if room := b.max - b.buf.Len(); len(p) > room {
		p = p[:max(room, 0)]
		b.overflow = true
	}
	b.buf.Write(p)
	return n, nil
}

func (b *capBuffer) Bytes() []byte { return b.buf.Bytes() }
