package exporter

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/report"
)

// Record is one finished run as the scheduler reports it.
type Record struct {
	Target probe.Target
	// Result is the raw result of the run.
	Result probe.Result
	// Up is the debounced verdict after the failure threshold; it is what
	// flowprobe_check_success exports.
	Up bool
	// ConsecutiveFailures counts failed runs since the last passing one.
	ConsecutiveFailures int
}

// Entry is the state of one configured target.
type Entry struct {
	Target probe.Target
	// HasResult is false until the target's first run finished; the other
	// fields are zero until then.
	HasResult           bool
	Result              probe.Result
	Up                  bool
	ConsecutiveFailures int
	// Runs counts finished runs; Failures counts failed runs (verdict
	// false) by outcome, indexed by probe.Outcome.
	Runs     uint64
	Failures []uint64
	// Trace is the latest path trace of the target while it is failed; nil
	// when there is none (never traced, or passing again since).
	Trace *PathTrace

	// labels caches the label pairs of the target's series; it lives and
	// dies with the entry, which SetTargets replaces when the target
	// changes.
	labels *labelCache
	text   *textCache
}

// PathTrace is a path trace of a failed target and when it finished. It
// is never modified once stored.
type PathTrace struct {
	At    time.Time
	Trace report.Trace
}

// Traced reports whether the trace ran: false for a trace that could not
// (report.TraceError), which has a verdict but no hops.
func (p *PathTrace) Traced() bool { return p != nil && len(p.Trace.Paths) > 0 }

// Store keeps the latest result of every configured target. The scheduler
// writes to it after every run; scrapes, the JSON API and the status page
// read copies, so no reader holds its lock while writing a response.
type Store struct {
	mu      sync.RWMutex
	entries map[string]*Entry
	armed   bool // SetTargets was called
	ready   bool // latched: every target of a set finished a run
	hist    history
}

// NewStore returns an empty store; it is not ready until SetTargets was
// called and every target finished its first run.
func NewStore() *Store { return &Store{entries: map[string]*Entry{}} }

// SetTargets replaces the configured set: entries of removed targets go
// away (their series vanish from the next scrape), new targets start
// without a result, and a target whose settings changed starts over
// (result and counters), since its old result may judge different
// settings. Unchanged targets keep everything.
func (s *Store) SetTargets(ts []probe.Target) {
	next := make(map[string]*Entry, len(ts))
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range ts {
		if e, ok := s.entries[t.ID]; ok && sameTarget(e.Target, t) {
			e.Target = t
			next[t.ID] = e
			continue
		}
		next[t.ID] = &Entry{Target: t, Failures: make([]uint64, len(probe.Outcomes())), labels: &labelCache{}, text: &textCache{}}
	}
	s.entries = next
	s.hist.keep(next)
	s.armed = true
	s.updateReadyLocked()
}

// Record stores a run's result. Records of targets not in the set are
// dropped.
func (s *Store) Record(r Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[r.Target.ID]
	if !ok {
		return
	}
	first := !e.HasResult
	e.HasResult = true
	e.Result = r.Result
	e.Up = r.Up
	e.ConsecutiveFailures = r.ConsecutiveFailures
	e.Runs++
	if r.Up {
		e.Trace = nil // the trace explained a failure that is over
	}
	s.hist.add(r)
	if !r.Result.Success && int(r.Result.Outcome) < len(e.Failures) {
		e.Failures[r.Result.Outcome]++
	}
	if first && !s.ready {
		s.updateReadyLocked()
	}
}

// SetTrace stores the trace of t that finished at at, as the target's one
// trace. It is dropped, and SetTrace returns false, when t is no longer
// configured with these settings or is not failed: a trace of a removed,
// changed or recovered target describes nothing that is there.
func (s *Store) SetTrace(t probe.Target, at time.Time, tr report.Trace) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[t.ID]
	if !ok || !e.HasResult || e.Up || !sameTarget(e.Target, t) {
		return false
	}
	e.Trace = &PathTrace{At: at, Trace: tr}
	return true
}

func (s *Store) updateReadyLocked() {
	if s.ready || !s.armed {
		return
	}
	for _, e := range s.entries {
		if !e.HasResult {
			return
		}
	}
	s.ready = true
}

// Ready reports whether every target of the first configured set finished
// a run (once true it stays true: targets added by a reload do not make a
// running instance unready), and how many of the current targets have a
// result.
func (s *Store) Ready() (ready bool, done, total int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, e := range s.entries {
		if e.HasResult {
			done++
		}
	}
	return s.ready, done, len(s.entries)
}

// Snapshot returns a copy of every entry, sorted by product, flow, source,
// destination and target address, then ID.
func (s *Store) Snapshot() []Entry {
	s.mu.RLock()
	out := make([]Entry, 0, len(s.entries))
	for _, e := range s.entries {
		c := *e
		c.Failures = slices.Clone(e.Failures)
		out = append(out, c)
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b Entry) int {
		return cmp.Or(
			cmp.Compare(a.Target.Product, b.Target.Product),
			cmp.Compare(a.Target.Flow, b.Target.Flow),
			cmp.Compare(a.Target.Source, b.Target.Source),
			cmp.Compare(a.Target.Destination, b.Target.Destination),
			cmp.Compare(a.Target.Host, b.Target.Host),
			cmp.Compare(a.Target.Port, b.Target.Port),
			cmp.Compare(a.Target.ID, b.Target.ID),
		)
	})
	return out
}

// results returns a copy of every entry that has a result, in no
// particular order: the scrape's view, which sorts what it needs itself.
func (s *Store) results() []Entry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Entry, 0, len(s.entries))
	failures := make([]uint64, 0, len(s.entries)*len(probe.Outcomes()))
	for _, e := range s.entries {
		if !e.HasResult {
			continue
		}
		c := *e
		n := len(failures)
		failures = append(failures, e.Failures...)
		c.Failures = failures[n:len(failures):len(failures)]
		out = append(out, c)
	}
	return out
}

// sameTarget reports whether two targets have the same settings, options
// included: by fingerprint when both have one (probe.Target.Same).
func sameTarget(a, b probe.Target) bool { return a.Same(&b) }
