// Package remote defines what mailfs needs from a mail account, and nothing
// more: a context-first Account interface (folders, listings, header fields,
// bodies), the value types that cross it, and the sentinel errors every
// implementation wraps.
//
// Implementations live in sub-packages (remote/imap, remote/pop3) and the
// cache package decorates any of them. Abilities that only some accounts have
// (ranged reads, bulk fetches) are separate small interfaces discovered by type
// assertion, so that a caller can fall back when one is missing.
package remote
