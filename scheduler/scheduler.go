package scheduler

import (
	"context"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

// DefaultInterval is used for a target whose Interval is not set.
const DefaultInterval = time.Minute

// Config holds the scheduling policy of one site (the `scheduler:` section
// of the site config). The zero value runs every check at its interval with
// no caps, no jitter and no debouncing.
type Config struct {
	// MaxInFlight caps the checks running at once across all targets;
	// 0 means no cap.
	MaxInFlight int
	// MaxInFlightPerHost caps the checks running at once against one
	// destination host (Target.Host); 0 means no cap.
	MaxInFlightPerHost int
	// Jitter is a fraction (0..1) of a target's interval: each run starts
	// up to that much later than its slot, at random. The slots themselves
	// do not drift, so jitter never accumulates.
	Jitter float64
	// FailingInterval, when set and shorter than a target's interval, is
	// the interval between runs while the target's latest run failed.
	FailingInterval time.Duration
	// FailuresBeforeDown is how many consecutive failed runs flip a target
	// that was up to down; 0 and 1 both mean the first failure does.
	FailuresBeforeDown int
}

// Status is what the scheduler reports after every run of a target.
type Status struct {
	Target probe.Target
	// Result is the raw result of the latest run; Result.Success is that
	// run's verdict against the target's expectation.
	Result probe.Result
	// Up is the debounced verdict: the first run sets it, one passing run
	// sets it to true, and FailuresBeforeDown consecutive failed runs set
	// it to false.
	Up bool
	// ConsecutiveFailures counts failed runs since the last passing one.
	ConsecutiveFailures int
	// Changed is true when Up was set by this run: the target's first
	// result or a transition.
	Changed bool
}

// Sink receives what the scheduler learns. Its methods must return quickly
// and must not call back into the Scheduler.
type Sink interface {
	// SetTargets is called by Update with the complete new target set,
	// after the loops of removed and changed targets were stopped and
	// before any new loop records. After it returns, no Status of a target
	// outside ts, or of a replaced version of one, is recorded.
	SetTargets(ts []probe.Target)
	// Record receives the status after each run. It is called from the
	// target's own loop, so calls for one target never overlap.
	Record(Status)
}

// Options are the collaborators of a Scheduler.
type Options struct {
	// Clock defaults to the wall clock.
	Clock Clock
	// Sink receives targets and statuses; nil discards them.
	Sink Sink
	// Logger receives state changes (a flow going down or up); nil
	// discards them.
	Logger *slog.Logger
}

// Scheduler runs checks: continuously, one loop per target (Update), or
// once over a set of targets (RunOnce). Both modes share its caps.
type Scheduler struct {
	checker probe.Checker
	clock   Clock
	sink    Sink
	log     *slog.Logger

	settings atomic.Pointer[settings]
	inFlight atomic.Int64
	targets  atomic.Int64
	lag      lagHistogram

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex // serialises Update and Close
	loops  map[string]*loop
	closed bool

	// onWait, when set, is called when a run must wait for a slot.
	onWait func(t probe.Target)
}

type settings struct {
	cfg Config
	lim *limiter
}

// New returns a scheduler that runs checks with checker under cfg. It runs
// nothing until Update or RunOnce.
func New(cfg Config, checker probe.Checker, opts Options) *Scheduler {
	if opts.Clock == nil {
		opts.Clock = WallClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Scheduler{checker: checker, clock: opts.Clock, sink: opts.Sink, log: opts.Logger, loops: map[string]*loop{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.Reconfigure(cfg)
	return s
}

// Reconfigure switches to a new policy. Loops pick it up at their next run;
// checks in flight finish under the caps they started with, so for one
// interval the old and new caps may both be counting.
func (s *Scheduler) Reconfigure(cfg Config) {
	if old := s.settings.Load(); old != nil && old.cfg == cfg {
		return
	}
	s.settings.Store(&settings{cfg: cfg, lim: newLimiter(cfg.MaxInFlight, cfg.MaxInFlightPerHost)})
}

// Stats returns the self-metric view of the scheduler.
func (s *Scheduler) Stats() Stats {
	return Stats{Targets: int(s.targets.Load()), InFlight: int(s.inFlight.Load()), Lag: s.lag.snapshot()}
}

// Update makes targets the running set, by diff: a target whose ID and
// settings are unchanged keeps its loop, its phase and its state; a changed
// one restarts with fresh state; a removed one stops. Targets are compared
// with reflect.DeepEqual, options included. Of duplicate IDs the first
// wins.
func (s *Scheduler) Update(targets []probe.Target) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	next := make(map[string]*loop, len(targets))
	kept := make([]probe.Target, 0, len(targets))
	var started []*loop
	for _, t := range targets {
		if _, dup := next[t.ID]; dup {
			continue
		}
		kept = append(kept, t)
		if old, ok := s.loops[t.ID]; ok && reflect.DeepEqual(old.t, t) {
			next[t.ID] = old
			continue
		}
		l := s.newLoop(t)
		next[t.ID] = l
		started = append(started, l)
	}
	for id, old := range s.loops {
		if next[id] != old {
			old.stop()
		}
	}
	s.loops = next
	s.targets.Store(int64(len(next)))
	if s.sink != nil {
		s.sink.SetTargets(kept)
	}
	for _, l := range started {
		s.wg.Add(1)
		go l.run()
	}
}

// Close stops every loop and waits for them (and their checks, which see
// their context cancelled) to return.
func (s *Scheduler) Close() {
	s.mu.Lock()
	s.closed = true
	for _, l := range s.loops {
		l.stop()
	}
	s.loops = nil
	s.targets.Store(0)
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
}

// Offset is a target's phase: where in each interval its runs start,
// counted from the Unix epoch. It depends only on the ID and the interval,
// so a restart keeps the phase and many targets spread evenly.
func Offset(id string, interval time.Duration) time.Duration {
	if interval <= 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(id))
	slots := max(uint64(interval/PhaseGranularity), 1)
	return time.Duration(h.Sum64()%slots) * PhaseGranularity
}

// PhaseGranularity is the resolution of phase offsets. Runs due in the
// same slot wake up together, which lets the runtime serve their timers in
// one wakeup instead of one per check; DESIGN.md's fixed-rate costs come
// from exactly those wakeups.
const PhaseGranularity = 10 * time.Millisecond

// slotAfter returns the first time strictly after t that lies on the grid
// offset + k·interval.
func slotAfter(t time.Time, offset, interval time.Duration) time.Time {
	n, off, iv := t.UnixNano(), int64(offset), int64(interval)
	g := off + (n-off)/iv*iv
	for g <= n {
		g += iv
	}
	return time.Unix(0, g)
}

// loop is the life of one target in the daemon.
type loop struct {
	s      *Scheduler
	t      probe.Target
	ctx    context.Context
	cancel context.CancelFunc
	log    *slog.Logger

	mu      sync.Mutex // orders the last Record against stop
	stopped bool

	// Owned by the loop goroutine.
	known    bool
	up       bool
	failures int
}

func (s *Scheduler) newLoop(t probe.Target) *loop {
	l := &loop{s: s, t: t, log: s.log.With("flow", t.Product+"/"+t.Flow, "target", t.ID)}
	l.ctx, l.cancel = context.WithCancel(s.ctx)
	return l
}

func (l *loop) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
	l.cancel()
}

func (l *loop) run() {
	defer l.s.wg.Done()
	s := l.s
	interval := l.t.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	offset := Offset(l.t.ID, interval)
	now := s.clock.Now()
	base := slotAfter(now.Add(-1), offset, interval) // first slot at or after now

	var timer Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	var (
		curLim *limiter
		sl     slots
	)
	for {
		set := s.settings.Load()
		planned := base
		if j := time.Duration(min(set.cfg.Jitter, 1) * float64(interval)); j > 0 {
			planned = planned.Add(rand.N(j))
		}
		if d := planned.Sub(now); timer == nil {
			timer = s.clock.NewTimer(d)
		} else {
			timer.Reset(d)
		}
		select {
		case <-l.ctx.Done():
			return
		case <-timer.C():
		}

		if set.lim != curLim {
			curLim = set.lim
			sl = slots{host: curLim.host(l.t.Host), global: curLim.global}
		}
		var wait func()
		if s.onWait != nil {
			wait = func() { s.onWait(l.t) }
		}
		if sl.acquire(l.ctx, wait) != nil {
			return
		}
		start := s.clock.Now()
		s.lag.observe(start.Sub(planned))
		s.inFlight.Add(1)
		r := probe.Run(l.ctx, s.checker, l.t)
		s.inFlight.Add(-1)
		sl.release()
		if l.ctx.Err() != nil {
			return // stopped mid-run: the result says nothing about the flow
		}
		if !r.Interrupted {
			// An interrupted run is no outcome: neither stored nor counted.
			l.record(r, set.cfg.FailuresBeforeDown)
		}

		now = s.clock.Now()
		if fi := set.cfg.FailingInterval; !r.Success && !r.Interrupted && fi > 0 && fi < interval {
			base = base.Add(fi)
			if base.Before(now) {
				base = now
			}
			continue
		}
		base = slotAfter(base, offset, interval)
		if base.Before(now) {
			base = slotAfter(now, offset, interval) // skip the slots a long run missed
		}
	}
}

// record judges r, logs a state change and hands the status to the sink
// unless the loop was stopped meanwhile.
func (l *loop) record(r probe.Result, threshold int) {
	if r.Success {
		l.failures = 0
	} else {
		l.failures++
	}
	was, known := l.up, l.known
	switch {
	case !known, r.Success:
		l.up = r.Success
	case l.failures >= max(threshold, 1):
		l.up = false
	}
	l.known = true
	changed := !known || was != l.up
	if changed {
		switch {
		case !l.up:
			l.log.Warn("Flow down", "outcome", r.Outcome.String(), "failures", l.failures, "err", r.Error())
		case known:
			l.log.Info("Flow up", "outcome", r.Outcome.String())
		}
	}
	if l.s.sink == nil {
		return
	}
	st := Status{Target: l.t, Result: r, Up: l.up, ConsecutiveFailures: l.failures, Changed: changed}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped {
		l.s.sink.Record(st)
	}
}
