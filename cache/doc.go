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
// only what the cache holds.
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
// first, the record last, and Open deletes chunks without a record. A
// cache of another schema version is refused (ErrSchema), never read.
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
// of its Date header (else the time it was downloaded). POP3 bodies are
// synced to disk before Body returns and are never evicted.
//
// # Size, eviction, garbage
//
// With Options.MaxSize, least recently used IMAP bodies are evicted in the
// background once the cached bytes exceed it, down to 90% of it. Uses are
// noted in memory and their times written in batches (every 30 seconds and
// at Close). A goroutine runs badger's value-log garbage collection every
// few minutes and after a large eviction.
//
// # Concurrency
//
// Every method may be called from many goroutines. An in-memory index
// (guarded by one mutex) mirrors which bodies and headers the database
// holds; writes that change it are serialized by a second mutex, so that a
// body enters the index only once written and leaves it before it is
// deleted.
//
// The directory is locked by badger: a second mount of the same account
// fails with ErrInUse. With Options.EncryptionKey everything on disk is
// encrypted (AES); opening with another key, or none, fails with
// ErrEncryptionKey.
package cache
