package fs

import (
	"context"
	"time"
)

// refresher is what the folder tree and every folder listing share about
// being fetched again: one fetch at a time, whose result every waiter
// takes; a short wait for it where an old value may be served meanwhile;
// and a backoff after failures, so that a server that is down is not asked
// on every system call. Its owner's mutex protects it.
type refresher struct {
	running  chan struct{} // closed when the fetch in flight ends; nil if none
	started  time.Time     // when it began
	failures int           // failed fetches in a row
	retryAt  time.Time     // no fetch before this, after a failure
	err      error         // why the last fetch failed
}

// begin returns the channel of the fetch in flight, or of a new one the
// caller must start (fresh); nil while backing off. The owner's lock is
// held.
func (r *refresher) begin() (ch chan struct{}, fresh bool) {
	if r.running != nil {
		return r.running, false
	}
	if time.Now().Before(r.retryAt) {
		return nil, false
	}
	r.running = make(chan struct{})
	r.started = time.Now()
	return r.running, true
}

// end records how the fetch ended and lets its waiters go. The owner's
// lock is held.
func (r *refresher) end(err error) {
	r.err = err
	if err == nil {
		r.failures = 0
		r.retryAt = time.Time{}
	} else {
		r.failures++
		r.retryAt = time.Now().Add(backoff(r.failures))
	}
	close(r.running)
	r.running = nil
}

// refreshWait is how long a request waits for the refresh of a value that
// is only old before it is served the old one.
const refreshWait = 500 * time.Millisecond

// waitRefresh waits for the fetch of ch, which began at started: until it ends,
// or (patient false) no longer than refreshWait from its start. The
// owner's lock is not held. Every caller, the one that started the fetch
// too, stops waiting when its own request is interrupted; the fetch goes
// on for the others.
func waitRefresh(ctx context.Context, ch chan struct{}, started time.Time, patient bool) error {
	var timer <-chan time.Time
	if !patient {
		t := time.NewTimer(time.Until(started.Add(refreshWait)))
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-ch:
	case <-timer:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// backoff is the wait after the n-th failure in a row: 2 s, doubling, at
// most a minute.
func backoff(n int) time.Duration {
	return min(2*time.Second<<min(n-1, 5), time.Minute)
}
