// Package mailgen produces deterministic, plausible e-mail for the demo
// mailbox, the tests and the benchmarks of mailfs.
//
// There are three sources of messages:
//
//   - [Fixtures]: the hand-written messages of the module's testdata/mail
//     directory (embedded through package mailfs/testdata). They cover
//     RFC 2047 encoded words, folded headers, multipart bodies, a missing
//     Message-ID, a missing final CRLF and an 8bit UTF-8 body.
//   - [Generate]: n messages for one folder with a realistic size mix, for
//     benchmarks and load tests. The result depends only on the seed and n.
//   - [Demo]: a small mailbox of several folders (nested and non-ASCII
//     names included) that contains the fixtures and two messages with
//     multi-megabyte attachments.
//
// All messages use CRLF line endings and parse with net/mail. Dates lie
// before [ReferenceDate]; nothing depends on the clock. Every generated
// (not hand-written) body contains a unique token, see [Token], so that a
// test can search the mounted file system for exactly one message.
package mailgen
