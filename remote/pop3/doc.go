// Package pop3 implements remote.Account and remote.Deleter on a POP3
// maildrop (RFC 1939): one folder, INBOX, whose messages are named by their
// UIDL.
//
// Message numbers only live for one session, so every operation maps the
// UIDLs it is given to numbers with UIDL in the session it runs in, never
// with numbers from an earlier session. A server without UIDL cannot be
// used: messages would have no stable names. Listing rows carry the UIDL,
// the LIST size and nothing else: UID, UIDVALIDITY and Date are zero.
//
// Body is the RETR data with dot-stuffing undone and line endings as sent,
// including the line ending before the terminating ".": a server has to end
// a last line that had none, so such a message comes back with CRLF added.
// Dovecot does so, and its LIST size does not count that CRLF. Header asks
// for TOP n 0 (RETR where the server refuses TOP) and keeps the fields of
// remote.HeaderFields.
//
// POP3 servers lock the maildrop for a session, so an account runs one
// session at a time. Each operation logs in (or takes the parked session),
// runs its commands and either QUITs or parks the session for two seconds,
// so that reading a directory of messages costs one login rather than one
// per message. A parked session serves reads only, for at most 30 seconds;
// its view of the maildrop is from its start, so a message it does not know
// or cannot serve is looked up again in a fresh session, whose answer
// stands, and so is a read whose parked connection the server had closed.
// Listings and deletions always use a fresh session, after QUITting the
// parked one. A login that finds the maildrop locked by another client
// ("-ERR [IN-USE]") is retried for up to five seconds. Delete marks
// messages with DELE and commits with QUIT in one session; if anything
// fails before QUIT, nothing is deleted.
//
// github.com/knadh/go-pop3 drives the simple commands (USER, PASS, APOP,
// UIDL, LIST, DELE, QUIT) over a connection this package dials, protects
// (implicit TLS, or STLS after CAPA, which go-pop3 lacks) and greets itself,
// handed over through go-pop3's Opt.Dialer. RETR, TOP, CAPA and STLS are
// read here: go-pop3 turns bare LF into CRLF and has no line length limit,
// and its errors do not tell a server's -ERR from a broken connection (the
// gate type makes that distinction for the commands go-pop3 runs).
//
// go-pop3 has no context support and sets no deadlines, so the connection
// sits on a deadline.Conn: while an operation runs, a read or write that
// makes no progress for the configured timeout fails, and a cancelled
// context fails it at once. A session that failed that way is closed
// without QUIT, never reused.
package pop3
