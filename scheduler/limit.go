package scheduler

import (
	"context"
	"sync"
)

// semaphore is a counting semaphore on a buffered channel; a nil semaphore
// admits everyone. Blocked acquirers are served in arrival order.
type semaphore chan struct{}

func newSemaphore(n int) semaphore {
	if n <= 0 {
		return nil
	}
	return make(semaphore, n)
}

// tryAcquire takes a slot if one is free right now.
func (s semaphore) tryAcquire() bool {
	if s == nil {
		return true
	}
	select {
	case s <- struct{}{}:
		return true
	default:
		return false
	}
}

// acquire waits for a slot or for ctx to end.
func (s semaphore) acquire(ctx context.Context) error {
	if s == nil {
		return nil
	}
	select {
	case s <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s semaphore) release() {
	if s != nil {
		<-s
	}
}

// limiter holds RunOnce's caps under one scheduler configuration: a global
// semaphore and one semaphore per destination host, created on first use.
// The daemon caps with its pool size and its host gates instead.
// A reconfiguration replaces the whole limiter; runs holding slots of the
// old one release them there.
type limiter struct {
	global  semaphore
	perHost int

	mu    sync.Mutex
	hosts map[string]semaphore
}

func newLimiter(global, perHost int) *limiter {
	return &limiter{global: newSemaphore(global), perHost: perHost, hosts: map[string]semaphore{}}
}

// host returns the semaphore of a destination host.
func (l *limiter) host(h string) semaphore {
	if l.perHost <= 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.hosts[h]
	if !ok {
		s = newSemaphore(l.perHost)
		l.hosts[h] = s
	}
	return s
}

// slots is what one run holds while its check is in flight.
type slots struct {
	host, global semaphore
}

// acquire takes the host slot first and then the global one, so a run
// queued behind a busy host does not hold a global slot others could use.
// wait, when set, is called before blocking (tests use it to know that a
// run is queued).
func (sl slots) acquire(ctx context.Context, wait func()) error {
	if !sl.host.tryAcquire() {
		if wait != nil {
			wait()
		}
		if err := sl.host.acquire(ctx); err != nil {
			return err
		}
	}
	if !sl.global.tryAcquire() {
		if wait != nil {
			wait()
		}
		if err := sl.global.acquire(ctx); err != nil {
			sl.host.release()
			return err
		}
	}
	return nil
}

func (sl slots) release() {
	sl.global.release()
	sl.host.release()
}
