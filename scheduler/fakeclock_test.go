package scheduler

import (
	"slices"
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

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{c: c, ch: make(chan time.Time, 1)}
	c.mu.Lock()
	c.timers = append(c.timers, t)
	c.mu.Unlock()
	t.Reset(d)
	return t
}

func (c *fakeClock) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Reset(d time.Duration) {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-t.ch:
	default:
	}
	t.when = c.now.Add(d)
	t.active = true
	if d <= 0 {
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

// WaitArmed blocks until exactly n timers are armed: every loop that should
// be waiting for its next run is.
func (c *fakeClock) WaitArmed(tb testing.TB, n int) {
	tb.Helper()
	c.WaitTimers(tb, -1, n)
}

// WaitTimers blocks until created timers exist (any number when negative)
// and exactly armed of them are armed. After a reload, this tells that the
// new loops have armed their timers and the stopped ones have disarmed
// theirs.
func (c *fakeClock) WaitTimers(tb testing.TB, created, n int) {
	tb.Helper()
	failsafe := time.NewTimer(10 * time.Second)
	defer failsafe.Stop()
	for {
		c.mu.Lock()
		armed := 0
		for _, t := range c.timers {
			if t.active {
				armed++
			}
		}
		ch := c.changed
		total := len(c.timers)
		c.mu.Unlock()
		if armed == n && (created < 0 || total == created) {
			return
		}
		select {
		case <-ch:
		case <-failsafe.C:
			tb.Fatalf("%d timers created and %d armed, want %d and %d", total, armed, created, n)
		}
	}
}
