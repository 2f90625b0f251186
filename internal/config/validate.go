package config

import (
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// fieldErr is a validation failure about one key of an account.
type fieldErr struct {
	key string
	msg string
}

func invalid(key, format string, args ...any) *fieldErr {
	return &fieldErr{key: key, msg: fmt.Sprintf(format, args...)}
}

var (
	protocols      = []string{ProtocolIMAP, ProtocolPOP3}
	tlsModes       = []string{TLSImplicit, TLSStartTLS, TLSNone}
	imapAuths      = []string{AuthLogin, AuthPlain, AuthXOAuth2}
	pop3Auths      = []string{AuthUser, AuthAPOP}
	expungePolices = []string{ExpungeNever, ExpungeOnUnmount, ExpungeImmediate}
)

func oneOf(v string, vals []string) bool {
	for _, x := range vals {
		if v == x {
			return true
		}
	}
	return false
}

// DefaultPort returns the default port for a protocol and TLS mode, or 0.
func DefaultPort(protocol, tlsMode string) int {
	switch {
	case protocol == ProtocolIMAP && tlsMode == TLSImplicit:
		return 993
	case protocol == ProtocolIMAP:
		return 143
	case protocol == ProtocolPOP3 && tlsMode == TLSImplicit:
		return 995
	case protocol == ProtocolPOP3:
		return 110
	}
	return 0
}

// validate applies defaults to a freshly decoded account and checks it.
// set tells which keys were present in the file; source is the path of the
// configuration file, against which a relative ca_file is resolved.
func validate(a *Account, set map[string]bool, source string) *fieldErr {
	if err := validateName(a.Name); err != nil {
		return err
	}

	// protocol
	a.Protocol = strings.ToLower(strings.TrimSpace(a.Protocol))
	if !set["protocol"] {
		return invalid("protocol", `protocol is missing; set protocol = "imap" or protocol = "pop3"`)
	}
	if !oneOf(a.Protocol, protocols) {
		return invalid("protocol", `protocol = %q is not supported; use "imap" or "pop3"`, a.Protocol)
	}

	// host
	a.Host = strings.TrimSpace(a.Host)
	if a.Host == "" {
		return invalid("host", `host is missing; set host = "mail.example.com"`)
	}
	if strings.HasPrefix(a.Host, "[") && strings.HasSuffix(a.Host, "]") {
		if a.Host == "[]" {
			return invalid("host", `host = "[]" is not a valid host name or IP address; give only the name, e.g. "imap.example.com"`)
		}
		a.Host = a.Host[1 : len(a.Host)-1]
	}
	if err := validateHost(a.Host); err != nil {
		return err
	}

	// tls
	a.TLS = strings.ToLower(strings.TrimSpace(a.TLS))
	if !set["tls"] {
		a.TLS = TLSImplicit
	}
	if !oneOf(a.TLS, tlsModes) {
		return invalid("tls", `tls = %q is not supported; use "implicit", "starttls" or "none"`, a.TLS)
	}

	// port
	if !set["port"] {
		a.Port = DefaultPort(a.Protocol, a.TLS)
	}
	if a.Port < 1 || a.Port > 65535 {
		return invalid("port", "port = %d is out of range; use 1..65535, or remove it for the default (%d)", a.Port, DefaultPort(a.Protocol, a.TLS))
	}

	// username
	if a.Username == "" {
		return invalid("username", `username is missing; set username = "me@example.com"`)
	}

	// password source
	switch {
	case set["password_cmd"] && set["password_env"]:
		return invalid("password_env", "both password_cmd and password_env are set; keep only one")
	case set["password_cmd"]:
		if strings.TrimSpace(a.PasswordCmd) == "" {
			return invalid("password_cmd", `password_cmd is empty; set it to a command that prints the password, e.g. "pass show mail/work"`)
		}
	case set["password_env"]:
		if err := validateEnvName(a.PasswordEnv); err != nil {
			return err
		}
	default:
		return invalid("password_cmd", `no password source; set password_cmd = "COMMAND" (prints the password) or password_env = "VARIABLE"`)
	}

	// auth
	a.Auth = strings.ToLower(strings.TrimSpace(a.Auth))
	auths := imapAuths
	if a.Protocol == ProtocolPOP3 {
		auths = pop3Auths
	}
	if !set["auth"] {
		a.Auth = AuthPlain
		if a.Protocol == ProtocolPOP3 {
			a.Auth = AuthUser
		}
	}
	if !oneOf(a.Auth, auths) {
		return invalid("auth", "auth = %q is not supported for %s; use one of %s", a.Auth, a.Protocol, quoteList(auths))
	}

	// plaintext
	if a.TLS == TLSNone {
		if !a.AllowPlaintext && !IsLoopback(a.Host) {
			return invalid("tls", `tls = "none" for non-loopback host %q: set allow_plaintext = true to send your password unencrypted`, a.Host)
		}
		if set["ca_file"] {
			return invalid("ca_file", `ca_file is set but tls = "none"; remove ca_file or use tls = "implicit" or "starttls"`)
		}
		if a.TLSSkipVerify {
			return invalid("tls_skip_verify", `tls_skip_verify is set but tls = "none"; remove tls_skip_verify or use tls = "implicit" or "starttls"`)
		}
	}

	// ca_file
	if set["ca_file"] {
		p, err := resolvePath(a.CAFile, source)
		if err != nil {
			return invalid("ca_file", "ca_file = %q: %v", a.CAFile, err)
		}
		a.CAFile = p
	}

	// expunge
	a.Expunge = strings.ToLower(strings.TrimSpace(a.Expunge))
	if !set["expunge"] {
		a.Expunge = ExpungeNever
	}
	if !oneOf(a.Expunge, expungePolices) {
		return invalid("expunge", `expunge = %q is not supported; use "never", "on-unmount" or "immediate"`, a.Expunge)
	}

	// durations
	if !set["poll_interval"] {
		a.PollInterval = DefaultPollInterval
	}
	if a.PollInterval < time.Second {
		return invalid("poll_interval", `poll_interval = %q is too short; use at least "1s" (default "60s")`, a.PollInterval.String())
	}
	if !set["timeout"] {
		a.Timeout = DefaultTimeout
	}
	if a.Timeout <= 0 {
		return invalid("timeout", `timeout = %q must be positive; use e.g. "30s" (the default)`, a.Timeout.String())
	}

	// delete_after_download
	if a.DeleteAfterDownload && a.Protocol != ProtocolPOP3 {
		return invalid("delete_after_download", "delete_after_download is only valid for pop3 accounts; remove it (this account uses %s)", a.Protocol)
	}

	// cache_key_cmd
	if set["cache_key_cmd"] && strings.TrimSpace(a.CacheKeyCmd) == "" {
		return invalid("cache_key_cmd", "cache_key_cmd is empty; set it to a command that prints a 16, 24 or 32 byte key, or remove it")
	}

	// connections
	if !set["connections"] {
		a.Connections = DefaultConnections
	}
	if a.Connections < 1 || a.Connections > MaxConnections {
		return invalid("connections", "connections = %d is out of range; use 1..%d (default %d)", a.Connections, MaxConnections, DefaultConnections)
	}
	return nil
}

// validateName rejects account names that cannot serve as a directory or
// command-line name.
func validateName(name string) *fieldErr {
	switch {
	case name == "":
		return invalid("", `the account name is empty; name the table, e.g. [accounts.work]`)
	case name == "." || name == "..":
		return invalid("", "the account name %q is reserved; choose another name", name)
	case strings.ContainsRune(name, '/'):
		return invalid("", "the account name %q contains \"/\"; choose a name without it", name)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return invalid("", "the account name %q contains a control character; choose another name", name)
		}
	}
	return nil
}

// validateHost checks that h is a host name or IP address without a port.
func validateHost(h string) *fieldErr {
	if _, err := netip.ParseAddr(h); err == nil {
		return nil
	}
	if strings.Contains(h, ":") {
		if _, port, err := splitHostPort(h); err == nil {
			return invalid("host", "host = %q includes a port; put the host alone in host and set port = %s", h, port)
		}
		return invalid("host", "host = %q is not a valid host name or IP address", h)
	}
	for _, r := range h {
		if unicode.IsSpace(r) || unicode.IsControl(r) || strings.ContainsRune("/@?#[]\\", r) {
			return invalid("host", "host = %q is not a valid host name or IP address; give only the name, e.g. \"imap.example.com\"", h)
		}
	}
	return nil
}

func splitHostPort(s string) (host, port string, err error) {
	i := strings.LastIndexByte(s, ':')
	host, port = s[:i], s[i+1:]
	if _, err := strconv.ParseUint(port, 10, 16); err != nil || host == "" || strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		return "", "", fmt.Errorf("not host:port")
	}
	return host, port, nil
}

func validateEnvName(v string) *fieldErr {
	if v == "" {
		return invalid("password_env", `password_env is empty; set it to the name of an environment variable, e.g. password_env = "MAIL_PASSWORD"`)
	}
	for _, r := range v {
		if r == '=' || r == 0 || unicode.IsSpace(r) {
			return invalid("password_env", "password_env = %q is not a valid environment variable name; give the variable's name, not its value", v)
		}
	}
	return nil
}

// IsLoopback reports whether host is "localhost" or an address in
// 127.0.0.0/8 or ::1 (including IPv4-mapped forms and bracketed IPv6).
func IsLoopback(host string) bool {
	h := strings.TrimSuffix(strings.TrimSpace(host), ".")
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	if strings.EqualFold(h, "localhost") {
		return true
	}
	addr, err := netip.ParseAddr(h)
	if err != nil {
		return false
	}
	return addr.Unmap().IsLoopback()
}

// resolvePath expands a leading "~/" to the home directory and makes a
// relative path relative to the directory of the configuration file.
func resolvePath(p, source string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("empty path; give the path of a PEM file or remove ca_file")
	}
	if p == "~" || strings.HasPrefix(p, "~/") {
		home, err := os.UserHomeDir()
		if err != nil || home == "" {
			return "", fmt.Errorf("cannot expand \"~\": HOME is not set; give an absolute path")
		}
		p = filepath.Join(home, strings.TrimPrefix(p, "~"))
	}
	if !filepath.IsAbs(p) && source != "" {
		p = filepath.Join(filepath.Dir(source), p)
	}
	if !filepath.IsAbs(p) {
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
	}
	return p, nil
}

// sizeUnits maps lower-case size suffixes to multipliers.
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1e3, "kb": 1e3, "ki": 1 << 10, "kib": 1 << 10,
	"m": 1e6, "mb": 1e6, "mi": 1 << 20, "mib": 1 << 20,
	"g": 1e9, "gb": 1e9, "gi": 1 << 30, "gib": 1 << 30,
	"t": 1e12, "tb": 1e12, "ti": 1 << 40, "tib": 1 << 40,
	"p": 1e15, "pb": 1e15, "pi": 1 << 50, "pib": 1 << 50,
}

// ParseSize parses a size such as "2GiB", "500MB", "1G", "1.5 GiB" or
// "1048576". K, M, G, T and P (optionally followed by B) are powers of 1000;
// Ki, Mi, Gi, Ti and Pi (optionally followed by B) are powers of 1024.
// Suffixes are case-insensitive. The empty string means unlimited and
// yields 0.
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	num, unit := s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	mult, ok := sizeUnits[unit]
	if num == "" || !ok {
		return 0, fmt.Errorf(`not a size; use e.g. "2GiB", "500MB", "1G" or a number of bytes, or "" for unlimited`)
	}
	if !strings.Contains(num, ".") {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n > math.MaxInt64/mult {
			return 0, fmt.Errorf("size is too large")
		}
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf(`not a size; use e.g. "2GiB", "500MB", "1G" or a number of bytes, or "" for unlimited`)
	}
	v := math.Round(f * float64(mult))
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("size is too large")
	}
	return int64(v), nil
}
