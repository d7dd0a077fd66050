package scheduler

import (
	"context"
	"hash/fnv"
	"log/slog"
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
	// MaxInFlight caps the checks running at once across all targets: it
	// is the size of the daemon's worker pool (DefaultWorkers when 0). For
	// RunOnce, 0 means no cap.
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
	// after removed and changed targets were stopped and before any new
	// target records. After it returns, no Status of a target
	// outside ts, or of a replaced version of one, is recorded.
	SetTargets(ts []probe.Target)
	// Record receives the status after each run. It is called from the
	// worker that ran the check; calls for one target never overlap.
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

// DefaultWorkers is the daemon's number of workers, the most checks it
// runs at once, when Config.MaxInFlight is 0.
const DefaultWorkers = 256

// Scheduler runs checks: continuously, from a queue of due times served
// by a pool of workers (Update), or once over a set of targets (RunOnce).
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

	// mu guards the daemon's state below and every entry's scheduling
	// fields. It is never held across a check or a sink call that could
	// block on I/O.
	mu      sync.Mutex
	entries map[string]*entry
	closed  bool
	started bool // the dispatcher runs
	daemon  daemonState

	// onWait, when set, is called when a run must wait for a slot;
	// onQueue, under mu, when an entry entered or left the queue.
	onWait  func(t probe.Target)
	onQueue func()
}

type settings struct {
	cfg Config
	lim *limiter
	// workers is the daemon's pool size; hosts its per-host gates.
	workers int
	hosts   *hostGates
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
	s := &Scheduler{checker: checker, clock: opts.Clock, sink: opts.Sink, log: opts.Logger, entries: map[string]*entry{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.daemon.init(&s.mu)
	s.Reconfigure(cfg)
	return s
}

// Reconfigure switches to a new policy. Runs pick it up when they are next
// planned or started; checks in flight finish under the caps they started
// with, so for one interval the old and new caps may both be counting.
func (s *Scheduler) Reconfigure(cfg Config) {
	if old := s.settings.Load(); old != nil && old.cfg == cfg {
		return
	}
	workers := cfg.MaxInFlight
	if workers <= 0 {
		workers = DefaultWorkers
	}
	s.settings.Store(&settings{
		cfg: cfg, lim: newLimiter(cfg.MaxInFlight, cfg.MaxInFlightPerHost),
		workers: workers, hosts: newHostGates(cfg.MaxInFlightPerHost),
	})
	s.mu.Lock()
	s.daemon.cond.Broadcast() // surplus workers retire
	s.mu.Unlock()
}

// Stats returns the self-metric view of the scheduler.
func (s *Scheduler) Stats() Stats {
	return Stats{Targets: int(s.targets.Load()), InFlight: int(s.inFlight.Load()), Lag: s.lag.snapshot()}
}

// Update makes targets the running set, by diff: a target whose ID and
// settings are unchanged keeps its place in the queue, its phase and its
// state; a changed one restarts with fresh state; a removed one stops (a
// run in flight sees its context cancelled and is not recorded). Targets
// are compared with probe.Target.Same: by fingerprint when the planner set
// one (decoded options such as a CA pool never compare equal), else field
// by field. Of duplicate IDs the first wins.
func (s *Scheduler) Update(targets []probe.Target) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	next := make(map[string]*entry, len(targets))
	kept := make([]probe.Target, 0, len(targets))
	var added []*entry
	for _, t := range targets {
		if _, dup := next[t.ID]; dup {
			continue
		}
		kept = append(kept, t)
		if old, ok := s.entries[t.ID]; ok && old.t.Same(&t) {
			next[t.ID] = old
			continue
		}
		e := newEntry(t)
		next[t.ID] = e
		added = append(added, e)
	}
	for id, old := range s.entries {
		if next[id] != old {
			s.stopLocked(old)
		}
	}
	s.entries = next
	s.targets.Store(int64(len(next)))
	if s.sink != nil {
		s.sink.SetTargets(kept)
	}
	now := s.clock.Now()
	set := s.settings.Load()
	for _, e := range added {
		e.first(now, set.cfg.Jitter)
		s.daemon.queue.push(e)
	}
	s.queueChanged()
	if !s.started {
		s.started = true
		s.wg.Add(1)
		go s.dispatch()
	}
	s.daemon.wakeDispatcher()
}

// Close stops every target and waits for the dispatcher and the workers
// (and their checks, which see their context cancelled) to return.
func (s *Scheduler) Close() {
	s.mu.Lock()
	s.closed = true
	for _, e := range s.entries {
		s.stopLocked(e)
	}
	s.entries = nil
	s.targets.Store(0)
	s.daemon.cond.Broadcast()
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
