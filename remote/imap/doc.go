// Package imap implements remote.Account on an IMAP server with go-imap v2's
// imapclient.
//
// A small pool of connections serves the account; each connection is used by
// one goroutine at a time and remembers which folder it has open, and
// whether read-only (EXAMINE) or read-write (SELECT), so that a request goes
// to a connection already on its folder where one is idle. Reads open
// folders with EXAMINE (or use a read-write selection already there) and
// fetch bodies with BODY.PEEK, so reading never sets \Seen.
//
// Changes (Delete, Move, Append, SetFlags and the folder editing of
// remote.FolderEditor) name messages by UID only, never by sequence number,
// and never send a plain EXPUNGE or CLOSE. Every change SELECTs its folder
// anew and refuses, before sending anything, a ref whose UIDVALIDITY is not
// the folder's (remote.ErrUIDValidity). Deleting flags \Deleted; Config.Expunge
// says whether and when exactly the UIDs so flagged are expunged (UID
// EXPUNGE, which needs UIDPLUS). A UID another client expunged is reported
// with remote.ErrNotFound once the other refs are done.
//
// imapclient has no context support, so every connection sits on a
// deadline.Conn: while a command is in flight, a read or write that makes no
// progress for the configured timeout fails, and a cancelled context fails it
// at once. A connection that failed that way is closed, never reused.
package imap
