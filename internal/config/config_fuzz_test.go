package config

import (
	"errors"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// FuzzParse feeds any text to Parse, the decoder and validator behind
// Load. It must not panic and must be deterministic; an error is an *Error
// on one line starting with "config: "; a configuration it accepts is
// valid; and the value of a key that looks like a password (a password
// written into the file by mistake) never shows in an error.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"",
		"[accounts.work]\nprotocol = \"imap\"\nhost = \"imap.example.com\"\nusername = \"me\"\npassword_cmd = \"pass show mail/work\"\n",
		"[accounts.home]\nprotocol = \"pop3\"\nhost = \"127.0.0.1\"\ntls = \"none\"\nport = 1110\nusername = \"u\"\npassword_env = \"P\"\ndelete_after_download = true\n",
		"[accounts.\"my work\"]\nprotocol = \"imap\"\nhost = \"[::1]\"\nusername = \"u\"\npassword_env = \"P\"\ncache_max_size = \"1.5GiB\"\npoll_interval = 30\ntimeout = \"1m\"\nconnections = 32\n",
		"[accounts.work]\npassword = \"hunter2-in-the-file\"\n",
		"[accounts.work]\npassword = hunter2unquoted\n",
		"[accounts.work]\npassword_cmd = pass show mail/work\n",
		"accounts.work.password = 0123456\n",
		"[[accounts]]\nprotocol = \"imap\"\n",
		"accounts = 1\n",
		"[accounts.work]\nport = 99999999999999999999\n",
		"[accounts.work]\nprotocol = \"imap\"\nhost = \"h\"\nusername = \"u\"\npassword_env = \"P\"\ncache_max_size = \"99999999999PiB\"\n",
		"[accounts.work]\nProtocol = \"imap\"\n",
		"[accounts.\"a\\nb\"]\nprotocol = \"imap\"\n",
		"[accounts.work]\nhost = \"h\\u0000\"\n",
		"x = \"\xff\"\n",
		"[accounts]\n0={protocol=\"token=000\"}",
	} {
		f.Add(s)
	}
	saved := maps.Clone(envNames)
	f.Fuzz(func(t *testing.T, src string) {
		// Parse records password_env names for every command this
		// package runs; forget the fuzzer's.
		defer func() {
			envMu.Lock()
			envNames = maps.Clone(saved)
			envMu.Unlock()
		}()
		cfg, err := Parse([]byte(src), "config.toml")
		cfg2, err2 := Parse([]byte(src), "config.toml")
		if (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() {
			t.Fatalf("Parse twice: got %v, then %v", err, err2)
		}
		if err != nil {
			checkFuzzErr(t, err)
			checkSecretsHidden(t, src, err.Error())
			return
		}
		if cfg == nil || len(cfg.Accounts) == 0 {
			t.Fatalf("Parse: got %v and no error, want accounts", cfg)
		}
		for name, a := range cfg.Accounts {
			if b := cfg2.Accounts[name]; b == nil || *a != *b {
				t.Fatalf("Parse twice: account %q differs: %+v, then %+v", name, a, b)
			}
			checkAccount(t, name, a)
		}
	})
}

func checkFuzzErr(t *testing.T, err error) {
	t.Helper()
	msg := err.Error()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %q: got %T, want *Error", msg, err)
	}
	if !strings.HasPrefix(msg, "config: config.toml") {
		t.Fatalf("error %q: want it to start with \"config: config.toml\"", msg)
	}
	if strings.ContainsAny(msg, "\r\n") {
		t.Fatalf("error %q: want a single line", msg)
	}
}

// checkAccount checks that an accepted account is one the rest of mailfs
// can use as it stands.
func checkAccount(t *testing.T, name string, a *Account) {
	t.Helper()
	bad := func(what string) { t.Fatalf("account %q accepted with %s: %+v", name, what, a) }
	switch {
	case a.Name != name || name == "" || name == "." || name == ".." || strings.Contains(name, "/") ||
		strings.ContainsFunc(name, unicode.IsControl):
		bad("a bad name")
	case a.Protocol != ProtocolIMAP && a.Protocol != ProtocolPOP3:
		bad("a bad protocol")
	case a.Host == "" || strings.ContainsAny(a.Host, " /@"):
		bad("a bad host")
	case a.Port < 1 || a.Port > 65535:
		bad("a bad port")
	case !oneOf(a.TLS, tlsModes):
		bad("a bad tls")
	case a.Username == "":
		bad("no username")
	case (a.PasswordCmd == "") == (a.PasswordEnv == ""):
		bad("not exactly one password source")
	case a.Protocol == ProtocolIMAP && !oneOf(a.Auth, imapAuths), a.Protocol == ProtocolPOP3 && !oneOf(a.Auth, pop3Auths):
		bad("a bad auth")
	case !oneOf(a.Expunge, expungePolices):
		bad("a bad expunge")
	case a.PollInterval < 1e9 || a.Timeout <= 0:
		bad("a bad duration")
	case a.CacheMaxSize < 0:
		bad("a negative cache_max_size")
	case a.Connections < 1 || a.Connections > MaxConnections:
		bad("a bad connections")
	case a.DeleteAfterDownload && a.Protocol != ProtocolPOP3:
		bad("delete_after_download for imap")
	case a.TLS == TLSNone && !a.AllowPlaintext && !IsLoopback(a.Host):
		bad("plain text to a remote host")
	}
}

// secretAssign finds `KEY = VALUE` where KEY looks like it names a
// password. password_env is left out: its value names a variable, and an
// invalid name is quoted in its error on purpose.
var secretAssign = regexp.MustCompile(`(?i)([a-z0-9_-]*(?:pass|pwd|secret|token)[a-z0-9_-]*)["']?[ \t]*=[ \t]*`)

// valueToken is a piece of a value worth looking for in an error.
var valueToken = regexp.MustCompile(`[A-Za-z0-9]{3,}`)

// checkSecretsHidden checks that no piece of the value of a password-like
// key shows in msg, the error for src. Each piece of such a value is
// changed in src (letters to other letters, digits to other digits): if
// the error changes only where it showed the piece, it quotes the value.
func checkSecretsHidden(t *testing.T, src, msg string) {
	t.Helper()
	for _, m := range secretAssign.FindAllStringSubmatchIndex(src, 8) {
		key := src[m[2]:m[3]]
		if strings.EqualFold(key, "password_env") || !keyPosition(src, m[2]) {
			continue
		}
		for _, tok := range valueToken.FindAllString(valueText(src[m[1]:]), 8) {
			if strings.Count(src, tok) != 1 {
				continue // changing it would change more than the value
			}
			_, err := Parse([]byte(strings.Replace(src, tok, rot(tok), 1)), "config.toml")
			if err == nil {
				continue
			}
			got := err.Error()
			p := commonPrefix(msg, got)
			q := commonPrefix(reverse(msg[p:]), reverse(got[p:]))
			was, now := msg[p:len(msg)-q], got[p:len(got)-q]
			if was != "" && rot(was) == now && len(valueToken.FindString(was)) >= 3 {
				t.Fatalf("error %q shows %q from the value of %s", msg, was, key)
			}
		}
	}
}

// keyPosition reports whether a key could start at src[i]: not inside a
// quoted string of its line (`protocol = "token=000"` assigns nothing).
func keyPosition(src string, i int) bool {
	line := src[strings.LastIndexByte(src[:i], '\n')+1 : i]
	quoted := byte(0)
	for j := 0; j < len(line); j++ {
		switch c := line[j]; {
		case quoted == 0 && (c == '"' || c == '\''):
			quoted = c
		case quoted == '"' && c == '\\':
			j++
		case c == quoted:
			quoted = 0
		}
	}
	return quoted == 0
}

func commonPrefix(a, b string) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}

func reverse(s string) string {
	b := []byte(s)
	slices.Reverse(b)
	return string(b)
}

// valueText returns the value at the start of s: a quoted string up to its
// closing quote, else everything up to white space or the end of an
// inline table or array.
func valueText(s string) string {
	if s == "" {
		return ""
	}
	if q := s[0]; q == '"' || q == '\'' {
		for i := 1; i < len(s); i++ {
			switch {
			case s[i] == '\n':
				return s[:i]
			case s[i] == '\\' && q == '"':
				i++
			case s[i] == q:
				return s[:i+1]
			}
		}
		return s
	}
	if i := strings.IndexAny(s, " \t\r\n,}]#"); i >= 0 {
		return s[:i]
	}
	return s
}

// rot maps letters to letters and digits to digits, each to another, so
// that a token keeps its kind.
func rot(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return 'a' + (r-'a'+13)%26
		case r >= 'A' && r <= 'Z':
			return 'A' + (r-'A'+13)%26
		case r >= '0' && r <= '9':
			return '0' + (r-'0'+5)%10
		}
		return r
	}, s)
}
