// Package pop3server runs a small POP3 server (RFC 1939, with CAPA, STLS,
// RESP-CODES and AUTH-RESP-CODE) on 127.0.0.1 over an in-memory maildrop:
// the POP3 server of `mailfs demo` and of the fast tests.
//
// It serves one account and one maildrop. A session that logs in locks the
// maildrop (a second one gets "-ERR [IN-USE]") and works on a snapshot of
// it: numbers, LIST and UIDL do not change under it; DELE marks, RSET
// unmarks, and only QUIT commits. Add and Remove change the maildrop behind
// the clients' backs, as other clients or new mail would.
//
// Messages are sent as stored, dot-stuffed on the wire; a message whose
// last line has no line ending gets CRLF before the terminating "." (as
// Dovecot and other servers do), and LIST and STAT count those bytes. Bare
// LF line endings are sent as they are (Dovecot would send CRLF).
//
// Options turn off UIDL or TOP, turn on APOP (a timestamp in the greeting),
// and with a TLS configuration offer STLS and, through ServeTLS, a second
// listener with implicit TLS. Others make the server misbehave, for the
// tests of clients: a RETR that never ends or pauses, LIST sizes that lie,
// UIDLs with spaces. Command lines are limited to 512 bytes, a
// connection that sends no command for Options.Timeout is closed, and Close
// waits for every connection's goroutine.
package pop3server
