package scheduler

import "time"

// Clock is the scheduler's source of time. Production code uses the wall
// clock; tests pass a fake one and move time by hand, so no test sleeps.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that fires once at the instant at (at
	// once when at has passed).
	NewTimer(at time.Time) Timer
}

// Timer is the subset of *time.Timer the scheduler uses, with deadlines
// as instants rather than durations: the dispatcher computes the next
// deadline under its lock and arms the timer after releasing it, and an
// instant stays right however much time passed in between (a duration
// would be late by that much, and with a fake clock moved in between,
// never fire).
type Timer interface {
	C() <-chan time.Time
	// ResetAt re-arms the timer to fire at the instant at, discarding a
	// fire that was not received (Go 1.23 timer semantics for the wall
	// clock).
	ResetAt(at time.Time)
	Stop()
}

// WallClock is the real time.
type WallClock struct{}

// Now returns time.Now().
func (WallClock) Now() time.Time { return time.Now() }

// NewTimer wraps time.NewTimer.
func (WallClock) NewTimer(at time.Time) Timer { return wallTimer{time.NewTimer(time.Until(at))} }

type wallTimer struct{ t *time.Timer }

func (w wallTimer) C() <-chan time.Time  { return w.t.C }
func (w wallTimer) ResetAt(at time.Time) { w.t.Reset(time.Until(at)) }
func (w wallTimer) Stop()                { w.t.Stop() }
