// Package config loads and validates the mailfs configuration file.
//
// The file is TOML. Its default location is $XDG_CONFIG_HOME/mailfs/config.toml,
// or ~/.config/mailfs/config.toml when XDG_CONFIG_HOME is unset. It holds
// one table per mail account:
//
//	[accounts.work]
//	protocol = "imap"                    # or "pop3"
//	host = "imap.example.com"
//	port = 993                           # default from protocol and tls
//	tls = "implicit"                     # implicit (default) | starttls | none
//	username = "me@example.com"
//	password_cmd = "pass show mail/work" # or password_env = "VAR"
//
// Optional keys and their defaults:
//
//	auth                  imap: "plain" (login | plain | xoauth2);
//	                      pop3: "user" (user | apop)
//	ca_file               PEM file of trusted CAs, replacing the system roots
//	tls_skip_verify       false
//	allow_plaintext       false; needed for tls = "none" to a non-loopback host
//	expunge               "never" (never | on-unmount | immediate)
//	poll_interval         "60s"; a Go duration or an integer number of seconds
//	timeout               "30s"; a Go duration or an integer number of seconds
//	cache_max_size        "" (unlimited); "2GiB", "500MB", "1G" or plain bytes
//	delete_after_download false; pop3 only
//	cache_key_cmd         command printing a 16, 24 or 32 byte key (raw or hex)
//	connections           4 (1..32)
//
// Default ports are 993 (imap, implicit TLS), 143 (imap, starttls or none),
// 995 (pop3, implicit TLS) and 110 (pop3, starttls or none).
//
// Size suffixes follow the usual convention: K, M, G, T (with or without a
// trailing B) are powers of 1000, and Ki, Mi, Gi, Ti (with or without a
// trailing B) are powers of 1024. Suffixes are case-insensitive.
//
// Passwords are never stored in the file. They come from the standard
// output of password_cmd, run with "sh -c", or from the environment variable
// named by password_env, and are fetched only when needed by
// [Account.Password], which then removes the password_env variable from the
// process environment. No command this package runs (password_cmd,
// cache_key_cmd) inherits a password_env variable. For auth = "xoauth2" the
// same mechanism yields the OAuth2 access token. No error produced by this
// package contains a password, a cache key or anything else a command
// printed on its standard output.
//
// Certificates are verified by default. tls = "none" is refused for any host
// that is not a loopback address (127.0.0.0/8, ::1 or "localhost") unless
// allow_plaintext = true.
//
// Every error is a single line that starts with "config: ", names the file
// (and the line, where it can be found) and the account, and says what to
// change.
package config
