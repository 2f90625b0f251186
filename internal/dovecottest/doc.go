// Package dovecottest runs a private Dovecot IMAP (and optionally POP3)
// server for tests and benchmark programs.
//
// Each Server has its own configuration file, base_dir, state_dir, log
// file, password file and mail home under one temporary directory, listens
// on free ports on 127.0.0.1 only and never reads or touches the system
// Dovecot configuration or its running instance. Mail is stored as Maildir
// (hierarchy delimiter ".") and owned by the system user "mail", because
// Dovecot refuses to run mail processes as root.
//
// Start is for tests: it skips (or fails under CI, see testenv.SkipOrFail)
// when Dovecot is not installed, puts the server under TempParent (tmpfs
// when possible: APPEND is ten times faster there than on ext4) and stops
// it at cleanup. StartProcess is for programs, which must call Stop
// themselves. Stop also signals the master's children directly: left to
// itself the master takes a second to exit and mail processes with open
// connections linger for ten more.
//
// Helpers in imap.go create folders, APPEND messages, FETCH reference
// contents and bulk-load a Maildir directly.
//
// Dovecot behaviours tests should expect:
//   - a message stored with bare LF line endings is served with CRLF, and
//     RFC822.SIZE counts the CRLF bytes;
//   - a message without a final newline is served without one;
//   - APPEND drops a final lone CR; a bare CR inside a line is kept;
//   - a NUL byte is served as 0x80 by BODY[];
//   - folder names are sent in modified UTF-7 ("Entwürfe" is stored as
//     "Entw&APw-rfe"), which go-imap encodes and decodes itself.
package dovecottest
