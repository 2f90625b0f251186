package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is a parsed, defaulted and validated configuration file.
type Config struct {
	// Accounts maps the account name (the key of its [accounts.NAME]
	// table) to its settings.
	Accounts map[string]*Account

	source string // file name used in error messages
}

// Account holds the settings of one [accounts.NAME] table, with defaults
// applied. It holds no password until [Account.Password] takes one out of
// the environment (password_env), and never shows one.
type Account struct {
	Name string // the table key

	Protocol string // "imap" or "pop3"
	Host     string // host name or IP address, without brackets or port
	Port     int
	TLS      string // "implicit", "starttls" or "none"
	Username string

	PasswordCmd string // run with sh -c; prints the password on stdout
	PasswordEnv string // name of an environment variable holding the password
	Auth        string // "login", "plain", "xoauth2" (imap); "user", "apop" (pop3)

	CAFile         string // PEM file of trusted CAs; "" = system roots
	TLSSkipVerify  bool
	AllowPlaintext bool

	Expunge      string // "never", "on-unmount" or "immediate"
	PollInterval time.Duration
	Timeout      time.Duration

	CacheMaxSize        int64 // bytes; 0 = unlimited
	DeleteAfterDownload bool  // pop3 only
	CacheKeyCmd         string
	Connections         int

	source string     // config file name used in error messages
	taken  *envSecret // password_env's value once Password took it; under envMu
}

// Protocols, TLS modes, auth mechanisms and expunge policies.
const (
	ProtocolIMAP = "imap"
	ProtocolPOP3 = "pop3"

	TLSImplicit = "implicit"
	TLSStartTLS = "starttls"
	TLSNone     = "none"

	AuthLogin   = "login"
	AuthPlain   = "plain"
	AuthXOAuth2 = "xoauth2"
	AuthUser    = "user"
	AuthAPOP    = "apop"

	ExpungeNever     = "never"
	ExpungeOnUnmount = "on-unmount"
	ExpungeImmediate = "immediate"
)

// Defaults and limits.
const (
	DefaultPollInterval = 60 * time.Second
	DefaultTimeout      = 30 * time.Second
	DefaultConnections  = 4
	MaxConnections      = 32
)

// Error is the type of every error returned by this package. Its message is
// a single line: "config: FILE[:LINE]: accounts.NAME: MESSAGE".
type Error struct {
	File    string // configuration file; may be empty
	Line    int    // 1-based line in File; 0 when unknown
	Account string // account name; empty for file-level errors
	Key     string // offending key within the account, if any
	Msg     string // what is wrong and how to fix it
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("config: ")
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":")
			b.WriteString(strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Account != "" {
		b.WriteString(accountPath(e.Account))
		b.WriteString(": ")
	}
	b.WriteString(oneLine(e.Msg))
	return b.String()
}

// accountPath renders the TOML key of an account table, quoting the name
// when needed: accounts.work, accounts."my work".
func accountPath(name string) string {
	return toml.Key{"accounts", name}.String()
}

// oneLine collapses all runs of whitespace, including newlines, into single
// spaces so that every message fits on one line.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n\t\v\f") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}

// DefaultPath returns $XDG_CONFIG_HOME/mailfs/config.toml, or
// ~/.config/mailfs/config.toml when XDG_CONFIG_HOME is unset or not an
// absolute path.
func DefaultPath() (string, error) {
	if dir := os.Getenv("XDG_CONFIG_HOME"); dir != "" && filepath.IsAbs(dir) {
		return filepath.Join(dir, "mailfs", "config.toml"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return "", &Error{Msg: "cannot find the default configuration file: neither XDG_CONFIG_HOME nor HOME is set; set one of them or pass the path of the file explicitly"}
	}
	return filepath.Join(home, ".config", "mailfs", "config.toml"), nil
}

// Load reads the file at path, parses it, applies defaults and validates
// every account.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var msg string
		switch {
		case errors.Is(err, fs.ErrNotExist):
			msg = `no such file; create it (see README "Configuration")`
		case errors.Is(err, fs.ErrPermission):
			msg = "permission denied; make the file readable by the user running mailfs"
		default:
			if fi, serr := os.Stat(path); serr == nil && fi.IsDir() {
				msg = "is a directory; give the path of the configuration file itself"
			} else {
				msg = "cannot read: " + describeFSError(err)
			}
		}
		return nil, &Error{File: path, Msg: msg}
	}
	return Parse(data, path)
}

// describeFSError strips the operation and path from a *fs.PathError, which
// the caller already reports.
func describeFSError(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// Account returns the account called name. An unknown name yields an error
// listing the accounts that are defined.
func (c *Config) Account(name string) (*Account, error) {
	if a, ok := c.Accounts[name]; ok && a != nil {
		return a, nil
	}
	names := c.names()
	if len(names) == 0 {
		return nil, &Error{File: c.source, Msg: fmt.Sprintf("no account %q: no accounts are defined; add an [accounts.NAME] table", name)}
	}
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = strconv.Quote(n)
	}
	return nil, &Error{File: c.source, Msg: fmt.Sprintf("no account %q (known accounts: %s)", name, strings.Join(quoted, ", "))}
}

func (c *Config) names() []string {
	names := make([]string, 0, len(c.Accounts))
	for n, a := range c.Accounts {
		if a != nil {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// Addr returns "host:port", with IPv6 addresses in brackets.
func (a *Account) Addr() string {
	return net.JoinHostPort(a.Host, strconv.Itoa(a.Port))
}

// TLSConfig returns the TLS client configuration for the account: the
// server name is the host, the root CAs come from ca_file when it is set
// (the system roots otherwise), and certificate verification is skipped
// only if tls_skip_verify is true.
func (a *Account) TLSConfig() (*tls.Config, error) {
	cfg := &tls.Config{
		ServerName:         a.Host,
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: a.TLSSkipVerify, //nolint:gosec // explicit user opt-in
	}
	if a.CAFile != "" {
		pem, err := os.ReadFile(a.CAFile)
		if err != nil {
			var msg string
			switch {
			case errors.Is(err, fs.ErrNotExist):
				msg = fmt.Sprintf("ca_file %q: no such file; fix the path or remove ca_file to use the system roots", a.CAFile)
			case errors.Is(err, fs.ErrPermission):
				msg = fmt.Sprintf("ca_file %q: permission denied; make it readable", a.CAFile)
			default:
				msg = fmt.Sprintf("ca_file %q: cannot read: %s", a.CAFile, describeFSError(err))
			}
			return nil, a.errorf("ca_file", "%s", msg)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, a.errorf("ca_file", "ca_file %q holds no PEM certificate; give a file with one or more \"-----BEGIN CERTIFICATE-----\" blocks", a.CAFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// errorf builds an error about the account, for use after loading.
func (a *Account) errorf(key, format string, args ...any) *Error {
	return &Error{File: a.source, Account: a.Name, Key: key, Msg: fmt.Sprintf(format, args...)}
}
