// Package fs is the FUSE adapter of mailfs, on go-fuse's fs package
// (imported as fusefs). It owns nothing but the mapping of a remote.Account
// onto files:
//
//   - rootNode and folderNode: one directory per folder, the hierarchy
//     following the server's delimiter, names escaped reversibly (names.go);
//   - messageNode: one read-only regular file per message, "<uid>.eml";
//   - messageHandle: an open message, holding its bytes or reading ranges.
//
// Per-message state (the size once the body is known, header fields) lives
// in msgState, outside the nodes, because go-fuse hands back the existing node
// when NewInode meets a known inode number and may forget nodes at any time.
//
// Listings are fetched once per folder and refreshed when older than the poll
// interval; READDIRPLUS is answered from the listing. Bodies are fetched on
// open, in bulk for the messages that follow when reading is sequential
// (grep -r), and in ranges for large messages (bodies.go).
//
// Every remote error reaches the kernel through toErrno, never fusefs.ToErrno.
package fs
