package imap

import (
	"context"
	"net"
	"sync"
	"time"
)

// deadlineConn arms an I/O deadline only while a command is in flight, so an
// idle pooled connection (whose reader goroutine always waits in Read) is
// never timed out, while a busy one that stalls for timeout fails.
type deadlineConn struct {
	net.Conn
	timeout time.Duration

	mu        sync.Mutex // protects busy and cancelled, and orders SetDeadline calls
	busy      int
	cancelled bool
}

func newDeadlineConn(c net.Conn, timeout time.Duration) *deadlineConn {
	return &deadlineConn{Conn: c, timeout: timeout}
}

// begin arms the deadline for one command; the returned func disarms it. A
// cancelled ctx makes the connection's I/O fail at once.
func (c *deadlineConn) begin(ctx context.Context) (end func()) {
	c.mu.Lock()
	c.busy++
	if !c.cancelled {
		c.Conn.SetDeadline(time.Now().Add(c.timeout))
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
		if c.busy == 0 && !c.cancelled {
			c.Conn.SetDeadline(time.Time{})
		}
		c.mu.Unlock()
	}
}

func (c *deadlineConn) rearm() {
	c.mu.Lock()
	if c.busy > 0 && !c.cancelled {
		c.Conn.SetDeadline(time.Now().Add(c.timeout))
	}
	c.mu.Unlock()
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.rearm()
	}
	return n, err
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.rearm()
	}
	return n, err
}

// imapclient sets its own fixed deadlines (30 s for a response, 5 min for a
// literal, none when idle); ours, from the account's timeout and the
// caller's context, take their place.
func (c *deadlineConn) SetDeadline(t time.Time) error      { return nil }
func (c *deadlineConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *deadlineConn) SetWriteDeadline(t time.Time) error { return nil }
