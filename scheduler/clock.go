package scheduler

import "time"

// Clock is the scheduler's source of time. Production code uses the wall
// clock; tests pass a fake one and move time by hand, so no test sleeps.
type Clock interface {
	Now() time.Time
	// NewTimer returns a stopped-or-running timer that fires once after d.
	NewTimer(d time.Duration) Timer
}

// Timer is the subset of *time.Timer the scheduler uses. Each target loop
// owns one timer and resets it for every run instead of allocating a new
// one.
type Timer interface {
	C() <-chan time.Time
	// Reset re-arms the timer to fire after d. The caller has already
	// drained or stopped it (Go 1.23 timer semantics make that implicit
	// for the wall clock).
	Reset(d time.Duration)
	Stop()
}

// WallClock is the real time.
type WallClock struct{}

// Now returns time.Now().
func (WallClock) Now() time.Time { return time.Now() }

// NewTimer wraps time.NewTimer.
func (WallClock) NewTimer(d time.Duration) Timer { return wallTimer{time.NewTimer(d)} }

type wallTimer struct{ t *time.Timer }

func (w wallTimer) C() <-chan time.Time   { return w.t.C }
func (w wallTimer) Reset(d time.Duration) { w.t.Reset(d) }
func (w wallTimer) Stop()                 { w.t.Stop() }
