// Package deadline gives a network connection the time limits mailfs's
// protocol clients need and their libraries lack: while an operation is in
// flight, a read or write that makes no progress for the timeout fails, the
// whole operation fails once it has taken longer than its overall limit
// (SetLimit, Extend: a server that trickles bytes cannot hold a request for
// ever), and a cancelled context fails it at once; an idle connection
// (whose reader may wait in Read for ever) is never timed out.
package deadline

import (
	"context"
	"net"
	"sync"
	"time"
)

// Conn is a net.Conn with progress deadlines armed by Begin.
type Conn struct {
	net.Conn
	timeout time.Duration
	// own: the client library's own SetDeadline calls are ignored, these
	// deadlines take their place (imapclient sets fixed ones of 30 s and
	// 5 min).
	own bool

	mu        sync.Mutex // protects the fields below, and orders SetDeadline calls
	busy      int
	cancelled bool
	end       time.Time // the overall limit of the operations in flight; zero: none
}

// New wraps c. With ignoreOthers, SetDeadline and friends called by the
// code above (a protocol library) do nothing.
func New(c net.Conn, timeout time.Duration, ignoreOthers bool) *Conn {
	return &Conn{Conn: c, timeout: timeout, own: ignoreOthers}
}

// Begin arms the deadline for one operation; the returned func disarms
// it. A cancelled ctx makes the connection's I/O fail at once: the
// connection is then broken and must be closed.
func (c *Conn) Begin(ctx context.Context) (end func()) {
	c.mu.Lock()
	c.busy++
	if !c.cancelled {
		c.Conn.SetDeadline(c.next())
	}
	c.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.cancelled = true
		c.Conn.SetDeadline(time.Now().Add(-time.Second))
		c.mu.Unlock()
	})
	return func() {
		stop()
		c.mu.Lock()
		c.busy--
		if c.busy == 0 {
			c.end = time.Time{}
			if !c.cancelled {
				c.Conn.SetDeadline(time.Time{})
			}
		}
		c.mu.Unlock()
	}
}

// next is the deadline of the next read or write: a timeout from now, or
// the overall limit if that comes first. c.mu is held.
func (c *Conn) next() time.Time {
	t := time.Now().Add(c.timeout)
	if !c.end.IsZero() && c.end.Before(t) {
		return c.end
	}
	return t
}

// SetLimit gives the operations in flight (between Begin and its end) an
// overall limit of d from now; it ends with the last of them. d <= 0
// removes it.
func (c *Conn) SetLimit(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d <= 0 {
		c.end = time.Time{}
	} else {
		c.end = time.Now().Add(d)
	}
	if c.busy > 0 && !c.cancelled {
		c.Conn.SetDeadline(c.next())
	}
}

// Extend pushes the overall limit d further away, for work that turned out
// larger than planned (a literal announced mid-response). No limit, no
// change.
func (c *Conn) Extend(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.end.IsZero() || d <= 0 {
		return
	}
	c.end = c.end.Add(d)
	if c.busy > 0 && !c.cancelled {
		c.Conn.SetDeadline(c.next())
	}
}

func (c *Conn) rearm() {
	c.mu.Lock()
	if c.busy > 0 && !c.cancelled {
		c.Conn.SetDeadline(c.next())
	}
	c.mu.Unlock()
}

// Read reads, and gives a busy connection another timeout of progress.
func (c *Conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.rearm()
	}
	return n, err
}

// Write writes, and gives a busy connection another timeout of progress.
func (c *Conn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.rearm()
	}
	return n, err
}

// SetDeadline passes on, unless the connection keeps its own deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	if c.own {
		return nil
	}
	return c.Conn.SetDeadline(t)
}

// SetReadDeadline passes on, unless the connection keeps its own deadlines.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if c.own {
		return nil
	}
	return c.Conn.SetReadDeadline(t)
}

// SetWriteDeadline passes on, unless the connection keeps its own deadlines.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	if c.own {
		return nil
	}
	return c.Conn.SetWriteDeadline(t)
}
