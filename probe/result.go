package probe

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Phase is one timed step of a check.
type Phase uint8

// The phases a check may time. Not every check has every phase.
const (
	PhaseResolve Phase = iota
	PhaseConnect
	PhaseTLS
	PhaseRequest

	NumPhases
)

var phaseNames = [NumPhases]string{"resolve", "connect", "tls", "request"}

func (p Phase) String() string {
	if p < NumPhases {
		return phaseNames[p]
	}
	return "unknown"
}

// Well-known Result.Details keys shared by several checks.
const (
	DetailResponder = "responder" // "true" when a flowprobe responder answered
	DetailReason    = "reason"    // short English reason of a failure
)

// Result is what one check run reports.
type Result struct {
	Outcome Outcome
	// Success is the verdict after the target's expectation (see
	// Expect.Passes); Run sets it.
	Success  bool
	Start    time.Time
	Duration time.Duration
	// Phases holds the duration of each phase that ran; zero means the
	// phase did not run.
	Phases [NumPhases]time.Duration
	// Details are human-readable facts (TLS version, cipher, banner, rcode
	// name, kiss code...). Never exported as labels.
	Details map[string]string
	// Values are numeric protocol facts, each exported as the metric
	// flowprobe_<name>; the check kinds declare their names and HELP.
	Values map[string]float64
	// Err is the wrapped error behind a failed outcome, nil on ok.
	Err error
	// Connected records the phase the run reached: the transport connected
	// (a TCP connection was established, or for UDP a first answer came).
	// Path outcomes (timeout, refused, unreachable) happen only before it;
	// an expect: deny flow fails once it is true.
	Connected bool
	// Interrupted is true when the run was cancelled from outside (the
	// parent context of Run was cancelled: Ctrl-C, shutdown, reload) before
	// the check finished. Its outcome then says nothing about the flow:
	// callers drop the run rather than store or count it; the CLI exits
	// with 130. Err wraps ErrInterrupted.
	Interrupted bool
}

// ErrInterrupted is wrapped by the error of an interrupted run (see
// Result.Interrupted): errors.Is(r.Err, ErrInterrupted).
var ErrInterrupted = errors.New("check interrupted")

// SetDetail records a human-readable detail.
func (r *Result) SetDetail(k, v string) {
	if r.Details == nil {
		r.Details = make(map[string]string, 4)
	}
	r.Details[k] = v
}

// SetValue records a numeric protocol fact.
func (r *Result) SetValue(k string, v float64) {
	if r.Values == nil {
		r.Values = make(map[string]float64, 4)
	}
	r.Values[k] = v
}

// Error returns the error text, or "" on success.
func (r *Result) Error() string {
	if r.Err == nil {
		return ""
	}
	return r.Err.Error()
}

// Checker runs one check kind against a target. Check must return once ctx
// is done; the caller (the scheduler, or Run) owns the deadline.
type Checker interface {
	Check(ctx context.Context, t Target) Result
}

// CheckerFunc adapts a function to the Checker interface.
type CheckerFunc func(ctx context.Context, t Target) Result

// Check calls f(ctx, t).
func (f CheckerFunc) Check(ctx context.Context, t Target) Result { return f(ctx, t) }

// Run runs c against t under a deadline of t.Timeout (when non-zero) and
// fills in the start time, the duration and the verdict against the target's
// expectation.
//
// When ctx itself is cancelled (not merely past a deadline) before the
// check succeeded, the run is interrupted: the result has Interrupted set,
// Success false and an Err wrapping ErrInterrupted. An interrupted run is
// no outcome of the flow; callers must not store or count it.
func Run(ctx context.Context, c Checker, t Target) Result {
	parent := ctx
	if t.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.Timeout)
		defer cancel()
	}
	start := time.Now()
	r := c.Check(ctx, t)
	r.Start = start
	r.Duration = time.Since(start)
	if r.Outcome != OutcomeOK && errors.Is(parent.Err(), context.Canceled) {
		r.Interrupted = true
		r.Success = false
		r.Err = fmt.Errorf("%w: %w", ErrInterrupted, errors.Join(r.Err, parent.Err()))
		return r
	}
	r.Success = t.Expect.Passes(&r)
	return r
}
