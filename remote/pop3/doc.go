// Package pop3 implements remote.Account, remote.Deleter and
// remote.BodyStreamer on a POP3 maildrop (RFC 1939): one folder, INBOX,
// whose messages are named by their UIDL.
//
// Message numbers only live for one session, so every operation maps the
// UIDLs it is given to numbers with UIDL in the session it runs in, never
// with numbers from an earlier session; reads also run LIST there, once
// per session. A server without UIDL cannot be used: messages would have
// no stable names. Listing rows carry the UIDL, the LIST size and nothing
// else: UID, UIDVALIDITY and Date are zero. UIDL and LIST answers are
// parsed here (go-pop3 cuts a UIDL at its first space, and stops at the
// first line it cannot parse): a UIDL is everything after the message
// number and one space, kept whole even with spaces in it (RFC 1939
// forbids them; cut, two messages could get one name); an empty one, one
// longer than 250 bytes or one with a control character is skipped with a
// warning. Listings are bounded (8 KiB a line, 2^20 lines).
//
// Body is the RETR data with dot-stuffing undone and line endings as sent,
// including the line ending before the terminating ".": a server has to end
// a last line that had none, so such a message comes back with CRLF added.
// Dovecot does so, and its LIST size does not count that CRLF. StreamBody
// writes the same bytes to a writer as they arrive, never holding the
// message (the cache streams a download to disk). Header asks for TOP n 0
// (RETR where the server refuses TOP) and keeps the fields of
// remote.HeaderFields. The data of a RETR or TOP is bounded by the
// message's LIST size in that session: past twice that plus 1 MiB (and in
// any case past 1 GiB) the server is not ending the message, and the read
// fails with remote.ErrProtocol; the session is closed, never reused.
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
// parked one, with one exception: a listing never waits behind a long
// operation (the background download of a large message holds the only
// session for as long as its RETR runs). When the slot stays busy for
// 200 ms, List answers with the listing of the session that holds it (its
// UIDL and LIST), which is the maildrop as the server shows that session
// while it locks it; it waits on only while that session has not listed
// yet, and always while a deletion runs. A read that has handed data to
// the caller's writer is never retried in a fresh session. A login that
// finds the maildrop locked by another client
// ("-ERR [IN-USE]") is retried for up to five seconds. Delete marks
// messages with DELE and commits with QUIT in one session; if anything
// fails before QUIT, nothing is deleted.
//
// github.com/knadh/go-pop3 drives the simple commands (USER, PASS, APOP,
// DELE, QUIT) over a connection this package dials, protects (implicit
// TLS, or STLS after CAPA, which go-pop3 lacks) and greets itself, handed
// over through go-pop3's Opt.Dialer. UIDL, LIST, RETR, TOP, CAPA and STLS
// are read here: go-pop3 turns bare LF into CRLF, has no line length
// limit and parses listings loosely (above), and its errors do not tell a
// server's -ERR from a broken connection (the gate type makes that
// distinction for the commands go-pop3 runs).
//
// go-pop3 has no context support and sets no deadlines, so the connection
// sits on a deadline.Conn: while an operation runs, a read or write that
// makes no progress for the configured timeout fails, and a cancelled
// context fails it at once. A session that failed that way is closed
// without QUIT, never reused.
package pop3
