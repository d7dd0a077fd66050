package scheduler

import (
	"slices"

	"github.com/flowprobe/flowprobe/probe"
	"sync"
	"testing"
	"time"
)

// fakeClock is a Clock that moves only when the test says so.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	changed chan struct{} // closed and replaced on every timer change
}

func newFakeClock(now time.Time) *fakeClock {
	return &fakeClock{now: now, changed: make(chan struct{})}
}

type fakeTimer struct {
	c      *fakeClock
	ch     chan time.Time
	when   time.Time
	active bool
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(at time.Time) Timer {
	t := &fakeTimer{c: c, ch: make(chan time.Time, 1)}
	c.mu.Lock()
	c.timers = append(c.timers, t)
	c.mu.Unlock()
	t.ResetAt(at)
	return t
}

func (c *fakeClock) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) ResetAt(at time.Time) {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-t.ch:
	default:
	}
	t.when = at
	t.active = true
	if !at.After(c.now) {
		t.active = false
		t.ch <- c.now
	}
	c.notifyLocked()
}

func (t *fakeTimer) Stop() {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	t.active = false
	c.notifyLocked()
}

// Advance moves the clock by d and fires, in deadline order, every timer
// due by then.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	due := []*fakeTimer{}
	for _, t := range c.timers {
		if t.active && !t.when.After(c.now) {
			due = append(due, t)
		}
	}
	slices.SortStableFunc(due, func(a, b *fakeTimer) int { return a.when.Compare(b.when) })
	for _, t := range due {
		t.active = false
		t.ch <- c.now
	}
	c.notifyLocked()
}

// AdvanceToNext moves the clock to the earliest armed timer and fires it
// (and any other timer due at the same instant). It returns the new time.
func (c *fakeClock) AdvanceToNext(tb testing.TB) time.Time {
	tb.Helper()
	c.mu.Lock()
	var next time.Time
	for _, t := range c.timers {
		if t.active && (next.IsZero() || t.when.Before(next)) {
			next = t.when
		}
	}
	d := next.Sub(c.now)
	c.mu.Unlock()
	if next.IsZero() {
		tb.Fatal("AdvanceToNext: no timer armed")
	}
	c.Advance(d)
	return next
}

// poke wakes everyone waiting for a change of the clock's timers.
func (c *fakeClock) poke() {
	c.mu.Lock()
	c.notifyLocked()
	c.mu.Unlock()
}

// fakeScheduler returns a scheduler on the fake clock whose queue changes
// wake waitQueued.
func fakeScheduler(cfg Config, checker probe.Checker, c *fakeClock, sink Sink) *Scheduler {
	s := New(cfg, checker, Options{Clock: c, Sink: sink})
	s.onQueue = c.poke
	return s
}

// waitQueued blocks until exactly n targets wait in the scheduler's queue
// for their next run and the dispatcher's one timer is armed for the first
// of them (disarmed when none waits): every target that should be waiting
// for its time is.
func waitQueued(tb testing.TB, c *fakeClock, s *Scheduler, n int) {
	tb.Helper()
	failsafe := time.NewTimer(10 * time.Second)
	defer failsafe.Stop()
	for {
		c.mu.Lock()
		var armed []time.Time
		for _, t := range c.timers {
			if t.active {
				armed = append(armed, t.when)
			}
		}
		ch := c.changed
		c.mu.Unlock()
		s.mu.Lock()
		queued := len(s.daemon.queue)
		var head time.Time
		if queued > 0 {
			head = s.daemon.queue[0].planned
		}
		s.mu.Unlock()
		if queued == n && (n == 0 && len(armed) == 0 || n > 0 && len(armed) == 1 && armed[0].Equal(head)) {
			return
		}
		select {
		case <-ch:
		case <-failsafe.C:
			tb.Fatalf("%d targets queued and %d timers armed, want %d queued and the timer armed for the first", queued, len(armed), n)
		}
	}
}
