// Package imap implements remote.Account on an IMAP server with go-imap v2's
// imapclient.
//
// A small pool of connections serves the account; each connection is used by
// one goroutine at a time and remembers which folder it has open, so that a
// request goes to a connection already on its folder where one is idle.
// Folders are opened read-only (EXAMINE) and bodies are fetched with
// BODY.PEEK, so reading never sets \Seen.
//
// imapclient has no context support, so every connection sits on a
// deadlineConn: while a command is in flight, a read or write that makes no
// progress for the configured timeout fails, and a cancelled context fails it
// at once. A connection that failed that way is closed, never reused.
package imap
