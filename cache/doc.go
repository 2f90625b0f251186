// Package cache keeps an account's folders, listings, header fields and
// message bodies on disk, in a badger database, so that a message is
// fetched once, a mount can work offline, and a POP3 maildrop can be
// emptied without losing mail.
//
// A Store is one account's cache directory (Open, Close); Store.Wrap
// decorates a remote.Account with it. The result implements the same
// interfaces (remote.Account, RangeReader, RangeStreamer, BulkFetcher,
// Deleter): it answers from the cache where it can, asks the inner account
// where it must and stores what it gets. Wrap(nil) is offline: no network,
// only what the cache holds. Download (what internal/syncer uses) fills the
// cache without handing bodies over: from an inner remote.BodyStreamer
// (POP3) each body goes to disk chunk by chunk as it arrives, so memory
// stays bounded whatever a message's size.
//
// # Keys
//
// Every key but the schema key starts with the schema version, then a kind
// and the account; bodies, headers and their records then name the folder,
// the UIDVALIDITY (8 hex digits) and the message key (the decimal UID for
// IMAP, the UIDL for POP3). Components are separated by NUL bytes and
// escaped (NUL as 01 01, 01 as 01 02), so any folder name, "/" and any
// UTF-8 included, is one unambiguous component:
//
//	mailfs-schema                            "1"
//	1 F account                              folder list (JSON)
//	1 L account folder validity              the folder's last listing
//	1 M account folder validity key          body record: size, chunk size, date, order, last use
//	1 B account folder validity key chunk    body bytes, in chunks of 256 KiB
//	1 H account folder validity key          header fields
//
// A body is cached exactly when its record exists: chunks are written
// first, the record last, and Open deletes chunks without a record. That
// holds for every way a body comes in: whole (Body, Bodies), streamed
// (Download: chunks as they fill, the record once the stream has ended
// well; a failed or cut stream, or one whose message is deleted meanwhile,
// deletes its chunks and writes no record), and in ranges (below). A cache
// of another schema version is refused (ErrSchema), never read.
//
// # Large messages read in ranges
//
// The filesystem reads a message over 1 MiB in ranges (BodyRange,
// StreamRange), never whole. The chunks a range from the server covers
// whole are written as it arrives, without a record, and tracked in memory
// as a partial body; the body's end is learnt from a read that comes back
// short (the filesystem's size probe), and only the size the folder's
// listing announced is believed (a range cut short is not a body; the
// filesystem fetches whole a message whose announced size is wrong). Once
// every chunk up to the end is written, the record follows and the body is
// cached: read once online,
// readable offline and after a remount. Partial bodies live in memory only
// (at most 64; the least recently used goes first): the next Open deletes
// the chunks of one never completed, like any chunks without a record.
// POP3 accounts have no ranges: their bodies come whole.
//
// # UIDVALIDITY
//
// A body is only ever served under the UIDVALIDITY it was fetched under:
// its key carries it, and once a listing shows a new UIDVALIDITY the
// folder's messages under any other are dropped, and refs naming another
// are neither served nor stored. For IMAP, messages a listing shows
// expunged (a UID below its highest that it lacks) are dropped too.
//
// # Offline and failures
//
// When the inner account fails (or there is none), Folders and List answer
// from the cache: a listing then holds only the messages whose bodies are
// cached. A message the cache cannot serve fails at once with
// remote.ErrUnavailable; when the cache knows better the error also wraps
// remote.ErrNotFound (the cached listing or folder list lacks it) or
// remote.ErrUIDValidity (the cached listing has another UIDVALIDITY), since
// offline the cache is the mount's view of the account.
//
// # POP3
//
// A POP3 listing is the union of the maildrop and the cached bodies the
// maildrop no longer has (appended in the order they were first cached):
// the cache may be the only copy. A cached message is listed with the date
// of its Date header (else the time it was downloaded). A POP3 body counts
// as cached only once it is durable: its chunks are synced to disk before
// its record is written, and the record before the body enters the index
// (so before Body, Store or Download return). POP3 bodies are never
// evicted.
//
// # Size, eviction, garbage
//
// With Options.MaxSize, least recently used IMAP bodies are evicted in the
// background once the cached bytes (the chunks of partial bodies
// included, which go the same way) exceed it, down to 90% of it; a body or
// a partial one larger than MaxSize is not kept at all. Uses are
// noted in memory and their times written in batches (every 30 seconds and
// at Close). A goroutine runs badger's value-log garbage collection every
// few minutes and after a large eviction.
//
// # Concurrency
//
// Every method may be called from many goroutines. An in-memory index
// (guarded by one mutex) mirrors which bodies, partial bodies and headers
// the database holds; writes that change it are serialized by a second
// mutex, so that a body enters the index only once written and leaves it
// before it is deleted. A streamed body takes that mutex for each chunk,
// not for the whole stream, and gives up when another writer caches the
// body first (one stream per body at a time).
//
// The directory is locked by badger: a second mount of the same account
// fails with ErrInUse. With Options.EncryptionKey everything on disk is
// encrypted (AES); opening with another key, or none, fails with
// ErrEncryptionKey.
package cache
