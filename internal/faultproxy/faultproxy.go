package faultproxy

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// Direction says which bytes a stall holds back.
type Direction int

const (
	Down Direction = 1 << iota // server to client
	Up                         // client to server
	Both = Down | Up
)

// Kind is a fault of the random mode.
type Kind int

const (
	KindCut      Kind = iota // reset the connection
	KindStall                // hold server-to-client bytes back for a while
	KindTruncate             // close the connection cleanly
)

func (k Kind) String() string {
	switch k {
	case KindCut:
		return "cut"
	case KindStall:
		return "stall"
	case KindTruncate:
		return "truncate"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Fault is what the random mode does to one connection.
type Fault struct {
	Kind Kind
	// After is the number of server-to-client bytes forwarded before the
	// fault: a truncation delivers exactly these bytes.
	After int64
	// Stall is how long a KindStall holds the following bytes back.
	Stall time.Duration
}

// Random configures the random mode.
type Random struct {
	Seed uint64
	// P is the probability that a connection gets a fault.
	P float64
	// Within: a fault comes after a number of server-to-client bytes drawn
	// uniformly from [0, Within). Zero means at the first byte.
	Within int64
	// MaxStall bounds a stall, drawn uniformly from (0, MaxStall]. Zero
	// means one second.
	MaxStall time.Duration
	// Kinds are the faults to draw from, each equally likely; none means
	// all three.
	Kinds []Kind
}

// Fault returns the fault connection n (the n-th the proxy accepted,
// counting from 0) gets, and whether it gets one. It depends only on the
// configuration and n.
func (r Random) Fault(n uint64) (Fault, bool) {
	rng := rand.New(rand.NewPCG(r.Seed, n))
	if rng.Float64() >= r.P {
		return Fault{}, false
	}
	kinds := r.Kinds
	if len(kinds) == 0 {
		kinds = []Kind{KindCut, KindStall, KindTruncate}
	}
	f := Fault{Kind: kinds[rng.IntN(len(kinds))]}
	if r.Within > 0 {
		f.After = rng.Int64N(r.Within)
	}
	if f.Kind == KindStall {
		maxStall := r.MaxStall
		if maxStall <= 0 {
			maxStall = time.Second
		}
		f.Stall = time.Duration(rng.Int64N(int64(maxStall))) + 1
	}
	return f, true
}

// Stats counts what a proxy did.
type Stats struct {
	Conns int64 // connections accepted, refused ones included
	// Faults that took effect: connections refused, reset, truncated, and
	// held back by a stall (one per connection and direction a Stall
	// held, one per random stall).
	Refused, Cuts, Truncations, Stalls int64
	BytesDown, BytesUp                 int64 // bytes forwarded
}

// Faults is the number of faults that took effect.
func (s Stats) Faults() int64 { return s.Refused + s.Cuts + s.Truncations + s.Stalls }

// Proxy forwards connections from Addr to a target. Its methods may be
// called from any goroutine.
type Proxy struct {
	addr   string
	target string
	ln     net.Listener
	wg     sync.WaitGroup // the accept loop and every pump

	mu       sync.Mutex // protects the fields below and every link's counters
	links    map[*link]struct{}
	closed   bool
	refusing bool
	stalled  Direction     // directions Stall holds back
	release  chan struct{} // closed by Release; a new one for each stall
	cleared  chan struct{} // closed by Clear (ending random stalls); then a new one
	random   *Random
	stats    Stats
}

// New starts a proxy on 127.0.0.1 (a free port) in front of target
// ("host:port"). Close stops it.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: %w", err)
	}
	p := &Proxy{addr: ln.Addr().String(), target: target, ln: ln, links: make(map[*link]struct{}), cleared: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address clients connect to, "127.0.0.1:port".
func (p *Proxy) Addr() string { return p.addr }

// dialTimeout bounds the connection to the target.
const dialTimeout = 5 * time.Second

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		n := uint64(p.stats.Conns)
		p.stats.Conns++
		refuse := p.closed || p.refusing
		if refuse && !p.closed {
			p.stats.Refused++
		}
		var fault *Fault
		if p.random != nil {
			if f, ok := p.random.Fault(n); ok {
				fault = &f
			}
		}
		p.mu.Unlock()
		if refuse {
			c.Close()
			continue
		}
		s, err := net.DialTimeout("tcp", p.target, dialTimeout)
		if err != nil {
			c.Close()
			continue
		}
		l := &link{p: p, client: c, server: s, done: make(chan struct{}), truncAt: -1, fault: fault}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			s.Close()
			continue
		}
		p.links[l] = struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		go l.pump(Down, s, c)
		go l.pump(Up, c, s)
	}
}

// live returns the open connections.
func (p *Proxy) live() []*link {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*link, 0, len(p.links))
	for l := range p.links {
		out = append(out, l)
	}
	return out
}

// Cut resets every live connection now and returns how many there were.
func (p *Proxy) Cut() int {
	links := p.live()
	for _, l := range links {
		if l.close(true) {
			p.mu.Lock()
			p.stats.Cuts++
			p.mu.Unlock()
		}
	}
	return len(links)
}

// Refuse makes the proxy close every new connection as soon as it is
// accepted (on), or forward them again (off). Live connections are left
// alone: Cut them too for a server that went away.
func (p *Proxy) Refuse(on bool) {
	p.mu.Lock()
	p.refusing = on
	p.mu.Unlock()
}

// Stall stops forwarding the bytes of dir on every connection, live or
// new, until Release. Connections stay open.
func (p *Proxy) Stall(dir Direction) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stalled == 0 {
		p.release = make(chan struct{})
	}
	p.stalled |= dir & Both
}

// Release ends every stall Stall began; the bytes held back go on.
func (p *Proxy) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.releaseLocked()
}

func (p *Proxy) releaseLocked() {
	if p.stalled != 0 {
		close(p.release)
		p.stalled = 0
	}
}

// Truncate makes every live connection forward only the next n
// server-to-client bytes (counted from the first byte not yet handed to
// the client side) and then close, cleanly. A connection with nothing to
// send is closed when the server next sends. It returns how many
// connections it armed.
func (p *Proxy) Truncate(n int64) int { return p.arm(n, false) }

// CutAfter is Truncate with a reset instead of a clean close: the client
// may lose some of the last bytes, and sees ECONNRESET.
func (p *Proxy) CutAfter(n int64) int { return p.arm(n, true) }

func (p *Proxy) arm(n int64, reset bool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for l := range p.links {
		if at := l.sent[0] + max(n, 0); l.truncAt < 0 || at < l.truncAt {
			l.truncAt, l.truncReset = at, reset
		}
	}
	return len(p.links)
}

// SetRandom switches the random mode on for connections accepted from now
// on (nil switches it off). Connections accepted before keep the fault
// they drew.
func (p *Proxy) SetRandom(r *Random) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r == nil {
		p.random = nil
		return
	}
	c := *r
	c.Kinds = append([]Kind(nil), r.Kinds...)
	p.random = &c
}

// Clear switches every fault off: no refusing, no stall (random stalls
// under way end too), no random mode, and live connections lose the
// truncations and random faults still to come. Connections already closed
// stay closed.
func (p *Proxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refusing = false
	p.random = nil
	p.releaseLocked()
	close(p.cleared)
	p.cleared = make(chan struct{})
	for l := range p.links {
		l.truncAt = -1
		l.fault = nil
	}
}

// Stats returns the counts so far.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Close stops listening, closes every connection and waits for the
// proxy's goroutines to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	for _, l := range p.live() {
		l.close(false)
	}
	p.wg.Wait()
	return err
}

// link is one proxied connection.
type link struct {
	p              *Proxy
	client, server net.Conn
	once           sync.Once
	done           chan struct{} // closed when the link is torn down

	// Under p.mu:
	sent       [2]int64         // bytes handed to the other side, [0] down, [1] up
	truncAt    int64            // close once sent[0] reaches it; -1: not armed
	truncReset bool             // and reset rather than close cleanly
	fault      *Fault           // the random fault still to come, if any
	heldBy     [2]chan struct{} // the stall that last held each direction (to count it once)
}

// close tears the link down, resetting the client's side when reset is
// set; it reports whether this call did it.
func (l *link) close(reset bool) bool {
	did := false
	l.once.Do(func() {
		did = true
		if tc, ok := l.client.(*net.TCPConn); ok && reset {
			tc.SetLinger(0) // Close sends RST
		}
		l.client.Close()
		l.server.Close()
		close(l.done)
		l.p.mu.Lock()
		delete(l.p.links, l)
		l.p.mu.Unlock()
	})
	return did
}

// step is what a pump does next.
type step int

const (
	stepSend     step = iota // write the bytes granted
	stepWait                 // wait for the stall's release
	stepSleep                // a random stall: wait a while
	stepReset                // a random cut
	stepTruncate             // close cleanly
)

// pump forwards src to dst, one direction of the link, until either side
// closes or a fault ends the link.
func (l *link) pump(dir Direction, src, dst net.Conn) {
	defer l.p.wg.Done()
	defer l.close(false)
	buf := make([]byte, 32<<10)
	for {
		n, rerr := src.Read(buf)
		b := buf[:n]
		for len(b) > 0 {
			k, st, wake, sleep := l.next(dir, len(b))
			switch st {
			case stepWait:
				select {
				case <-wake:
				case <-l.done:
					return
				}
				continue
			case stepSleep:
				t := time.NewTimer(sleep)
				select {
				case <-t.C:
				case <-wake:
					t.Stop()
				case <-l.done:
					t.Stop()
					return
				}
				continue
			case stepReset:
				l.close(true)
				return
			case stepTruncate:
				l.close(false)
				return
			}
			if _, err := dst.Write(b[:k]); err != nil {
				return
			}
			b = b[k:]
		}
		if rerr != nil {
			return
		}
	}
}

// next decides what becomes of the next n bytes of dir: how many may be
// sent now, or which fault comes first (with, for a stall, the channel
// whose closing ends it early). Bytes it grants count as sent.
func (l *link) next(dir Direction, n int) (int, step, chan struct{}, time.Duration) {
	p := l.p
	p.mu.Lock()
	defer p.mu.Unlock()
	d := 0
	if dir == Up {
		d = 1
	}
	if p.stalled&dir != 0 {
		if l.heldBy[d] != p.release {
			l.heldBy[d] = p.release
			p.stats.Stalls++
		}
		return 0, stepWait, p.release, 0
	}
	k := int64(n)
	if dir == Down {
		sent := l.sent[0]
		if l.truncAt >= 0 {
			if sent >= l.truncAt {
				if l.truncReset {
					p.stats.Cuts++
					return 0, stepReset, nil, 0
				}
				p.stats.Truncations++
				return 0, stepTruncate, nil, 0
			}
			k = min(k, l.truncAt-sent)
		}
		if f := l.fault; f != nil {
			if sent >= f.After {
				l.fault = nil
				switch f.Kind {
				case KindCut:
					p.stats.Cuts++
					return 0, stepReset, nil, 0
				case KindTruncate:
					p.stats.Truncations++
					return 0, stepTruncate, nil, 0
				default:
					p.stats.Stalls++
					return 0, stepSleep, p.cleared, f.Stall
				}
			}
			k = min(k, f.After-sent)
		}
		p.stats.BytesDown += k
	} else {
		p.stats.BytesUp += k
	}
	l.sent[d] += k
	return int(k), stepSend, nil, 0
}
