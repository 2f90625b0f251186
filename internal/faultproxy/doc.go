// Package faultproxy is a TCP proxy for tests that puts network and server
// faults between a client and a real server: it listens on 127.0.0.1,
// forwards every connection to a target address, and breaks connections
// when a test says so or at pseudo-random points a seed decides.
//
// Faults a test switches on and off at any time:
//
//   - Cut resets every live connection (the client sees ECONNRESET, the
//     server a closed connection); Refuse closes new connections as soon as
//     they are accepted, until turned off.
//   - Stall stops forwarding in one direction or both, on live connections
//     and new ones, keeping them open, until Release: a server or network
//     that goes silent, which only the client's timeout notices.
//   - Truncate forwards only the next N server-to-client bytes of every
//     live connection and then closes it cleanly (the client sees EOF):
//     with a small N the cut lands inside a response, often inside a
//     literal. CutAfter does the same with a reset.
//
// The random mode (SetRandom) gives each new connection, with probability
// P, one fault (a reset, a stall of a random length, or a truncation)
// after a random number of server-to-client bytes. What connection n gets
// depends only on the seed and n (Random.Fault), so a run can be repeated
// as far as the order of connections repeats.
//
// Bytes are forwarded exactly as they come; a proxy never reorders, drops
// or invents a byte on a connection it keeps open. Either side closing
// closes both (no half-closed connections: IMAP and POP3 need none). Stats
// counts connections, bytes and the faults that took effect.
//
// The proxy is deliberately small and knows nothing of the protocol it
// carries; tests decide when a fault is interesting (fs/fault_test.go).
package faultproxy
