package scheduler

import (
	"container/heap"
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

// The daemon keeps no goroutine or timer per target. Every target is an
// entry in one of three places: the queue (a heap ordered by the time its
// next run is due), the ready list (due, waiting for a worker), or a host
// gate's waiting list (due, waiting for a slot on its destination host).
// One dispatcher goroutine sleeps on a single timer until the head of the
// queue is due and moves every due entry to the ready list; a pool of at
// most settings.workers workers runs them. An entry goes back into the
// queue only after its run finished, so runs of one target never overlap,
// and a due run is never skipped, only late: its lag, from the planned
// time to its start, is what the lag histogram counts.

// entry is one target of the daemon. Its scheduling fields are guarded by
// Scheduler.mu; its verdict fields belong to the worker running it, and
// only one worker runs an entry at a time.
type entry struct {
	t        probe.Target
	interval time.Duration
	offset   time.Duration
	base     time.Time          // the slot of the next run, before jitter
	planned  time.Time          // when the next run is due: base plus jitter
	index    int                // position in the queue; -1 when not queued
	cancel   context.CancelFunc // set while a run is in flight

	// stopped is written under both Scheduler.mu and recordMu, so either
	// lock reads it. recordMu orders a record against a stop without
	// holding Scheduler.mu while the sink works.
	stopped  bool
	recordMu sync.Mutex

	// gate is the host gate of gates, looked up again only when the
	// settings change, so a run never touches the map of hosts.
	gates *hostGates
	gate  *hostGate

	known    bool
	up       bool
	failures int
}

func newEntry(t probe.Target) *entry {
	interval := t.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	return &entry{t: t, interval: interval, offset: Offset(t.ID, interval), index: -1}
}

// first plans the first run: the first slot at or after now.
func (e *entry) first(now time.Time, jitter float64) {
	e.base = slotAfter(now.Add(-1), e.offset, e.interval)
	e.planned = e.jittered(jitter)
}

// plan plans the run after one that ended at now: the next slot on the
// phase grid, skipping the slots a long run missed (no catch-up burst), or,
// after a recorded failure, FailingInterval after the last slot.
func (e *entry) plan(failed bool, now time.Time, cfg Config) {
	if fi := cfg.FailingInterval; failed && fi > 0 && fi < e.interval {
		e.base = e.base.Add(fi)
		if e.base.Before(now) {
			e.base = now
		}
	} else {
		e.base = slotAfter(e.base, e.offset, e.interval)
		if e.base.Before(now) {
			e.base = slotAfter(now, e.offset, e.interval)
		}
	}
	e.planned = e.jittered(cfg.Jitter)
}

// jittered returns base moved later by a random part of jitter·interval.
// The slots themselves do not move, so jitter never accumulates.
func (e *entry) jittered(jitter float64) time.Time {
	if j := time.Duration(min(jitter, 1) * float64(e.interval)); j > 0 {
		return e.base.Add(rand.N(j))
	}
	return e.base
}

// hostGate returns the entry's gate under hs.
func (e *entry) hostGate(hs *hostGates) *hostGate {
	if e.gates != hs {
		e.gates, e.gate = hs, hs.get(e.t.Host)
	}
	return e.gate
}

// judge updates the debounced verdict with r and returns the status to
// record.
func (e *entry) judge(r probe.Result, threshold int) Status {
	if r.Success {
		e.failures = 0
	} else {
		e.failures++
	}
	was, known := e.up, e.known
	switch {
	case !known, r.Success:
		e.up = r.Success
	case e.failures >= max(threshold, 1):
		e.up = false
	}
	e.known = true
	return Status{Target: e.t, Result: r, Up: e.up, ConsecutiveFailures: e.failures, Changed: !known || was != e.up}
}

// daemonState is the daemon's part of a Scheduler, guarded by its mu.
type daemonState struct {
	queue queue
	ready fifo
	// cond wakes idle workers: when the ready list grows, when the
	// settings change (surplus workers retire) and on Close.
	cond *sync.Cond
	// wake tells the dispatcher that the head of the queue may have
	// moved; it holds at most one pending signal.
	wake    chan struct{}
	workers int // workers alive
	idle    int // workers waiting on cond
}

func (d *daemonState) init(mu *sync.Mutex) {
	d.cond = sync.NewCond(mu)
	d.wake = make(chan struct{}, 1)
}

func (d *daemonState) wakeDispatcher() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// dispatch moves due entries from the queue to the ready list, then sleeps
// until the next one is due or the queue changes. Targets due in the same
// 10 ms slot (PhaseGranularity) are handed out in one wakeup.
func (s *Scheduler) dispatch() {
	defer s.wg.Done()
	d := &s.daemon
	var timer Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		now := s.clock.Now()
		set := s.settings.Load()
		for len(d.queue) > 0 && !d.queue[0].planned.After(now) {
			s.readyLocked(heap.Pop(&d.queue).(*entry), set)
		}
		armed := len(d.queue) > 0
		var next time.Time
		if armed {
			next = d.queue[0].planned
		}
		s.mu.Unlock()

		switch {
		case !armed:
			if timer != nil {
				timer.Stop()
			}
		case timer == nil:
			timer = s.clock.NewTimer(next)
		default:
			timer.ResetAt(next)
		}
		var fired <-chan time.Time
		if timer != nil {
			fired = timer.C()
		}
		select {
		case <-s.ctx.Done():
			return
		case <-fired:
		case <-d.wake:
		}
	}
}

// readyLocked hands a due entry to a worker: an idle one, a new one while
// the pool is below its size, or, when every worker is busy, the first
// worker to finish.
func (s *Scheduler) readyLocked(e *entry, set *settings) {
	d := &s.daemon
	d.ready.push(e)
	switch {
	case d.idle >= d.ready.len():
		d.cond.Signal()
	case d.workers < set.workers:
		d.workers++
		s.wg.Add(1)
		go s.work()
	default:
		s.waiting(e)
	}
}

func (s *Scheduler) waiting(e *entry) {
	if s.onWait != nil {
		s.onWait(e.t)
	}
}

// work is one worker of the pool: it runs due entries until Close or until
// the pool shrank below the number of workers.
func (s *Scheduler) work() {
	defer s.wg.Done()
	d := &s.daemon
	s.mu.Lock()
	defer s.mu.Unlock()
	var next *entry // the waiter a finished run handed its host slot to
	for {
		e := next
		next = nil
		if e == nil {
			for d.ready.len() == 0 && !s.closed && d.workers <= s.settings.Load().workers {
				d.idle++
				d.cond.Wait()
				d.idle--
			}
			if s.closed || d.workers > s.settings.Load().workers {
				d.workers--
				return
			}
			e = d.ready.pop()
		}
		if e.stopped {
			continue
		}
		set := s.settings.Load()
		g := e.hostGate(set.hosts)
		if !g.tryAcquire() {
			g.waiting.push(e)
			s.waiting(e)
			continue
		}
		ctx, cancel := context.WithCancel(s.ctx)
		e.cancel = cancel
		planned := e.planned
		s.mu.Unlock()

		st, ended, keep := s.runEntry(ctx, e, planned, set.cfg)

		if keep {
			s.record(e, st)
		}
		s.mu.Lock()
		cancel()
		e.cancel = nil
		next = g.release()
		if e.stopped {
			continue
		}
		e.plan(keep && !st.Result.Success, ended, set.cfg)
		d.queue.push(e)
		if e.index == 0 {
			d.wakeDispatcher()
		}
		s.queueChanged()
	}
}

// runEntry runs one check of e without holding the lock. It returns the
// status to record, the time the run ended, and whether the run counts
// (see counts).
func (s *Scheduler) runEntry(ctx context.Context, e *entry, planned time.Time, cfg Config) (Status, time.Time, bool) {
	start := s.clock.Now()
	s.lag.observe(start.Sub(planned))
	s.inFlight.Add(1)
	r := probe.Run(ctx, s.checker, e.t)
	s.inFlight.Add(-1)
	ended := s.clock.Now()
	if !counts(ctx, r) {
		return Status{Result: r}, ended, false
	}
	known := e.known
	st := e.judge(r, cfg.FailuresBeforeDown)
	if st.Changed {
		s.logChange(st, known)
	}
	return st, ended, true
}

// counts reports whether a finished run says something about its flow. A
// run whose context was cancelled (the target was stopped or the scheduler
// closed) does not, nor does an interrupted one: neither is stored nor
// counted.
func counts(ctx context.Context, r probe.Result) bool {
	return ctx.Err() == nil && !r.Interrupted
}

// record hands a status to the sink unless e was stopped meanwhile.
func (s *Scheduler) record(e *entry, st Status) {
	if s.sink == nil {
		return
	}
	e.recordMu.Lock()
	defer e.recordMu.Unlock()
	if !e.stopped {
		s.sink.Record(st)
	}
}

// logChange logs a flow going down, or up again after it was down.
func (s *Scheduler) logChange(st Status, wasKnown bool) {
	r := st.Result
	log := s.log.With("flow", st.Target.Product+"/"+st.Target.Flow, "target", st.Target.ID)
	switch {
	case !st.Up:
		log.Warn("Flow down", "outcome", r.Outcome.String(), "failures", st.ConsecutiveFailures, "err", r.Error())
	case wasKnown:
		log.Info("Flow up", "outcome", r.Outcome.String())
	}
}

// stopLocked takes e out of the daemon: out of the queue, and a run in
// flight sees its context cancelled. The ready list and host gates skip
// stopped entries when they reach them.
func (s *Scheduler) stopLocked(e *entry) {
	e.recordMu.Lock()
	e.stopped = true
	e.recordMu.Unlock()
	if e.index >= 0 {
		heap.Remove(&s.daemon.queue, e.index)
	}
	if e.cancel != nil {
		e.cancel()
	}
	s.queueChanged()
}

func (s *Scheduler) queueChanged() {
	if s.onQueue != nil {
		s.onQueue()
	}
}

// queue is a min-heap of entries by planned time (container/heap).
type queue []*entry

func (q queue) Len() int           { return len(q) }
func (q queue) Less(i, j int) bool { return q[i].planned.Before(q[j].planned) }
func (q queue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}

// Push and Pop are for container/heap; use push and heap.Pop.
func (q *queue) Push(x any) {
	e := x.(*entry)
	e.index = len(*q)
	*q = append(*q, e)
}

func (q *queue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.index = -1
	*q = old[:len(old)-1]
	return e
}

func (q *queue) push(e *entry) { heap.Push(q, e) }

// fifo is a first-in first-out list of entries.
type fifo struct {
	items []*entry
	head  int
}

func (f *fifo) len() int { return len(f.items) - f.head }

func (f *fifo) push(e *entry) {
	if f.head > 0 && f.head == len(f.items) {
		f.items, f.head = f.items[:0], 0
	}
	if f.head >= 1024 && 2*f.head >= len(f.items) {
		n := copy(f.items, f.items[f.head:])
		clear(f.items[n:])
		f.items, f.head = f.items[:n], 0
	}
	f.items = append(f.items, e)
}

func (f *fifo) pop() *entry {
	e := f.items[f.head]
	f.items[f.head] = nil
	f.head++
	return e
}

// hostGates are the per-host caps of one configuration. A reconfiguration
// replaces them; runs holding a slot of the old gates release it there.
type hostGates struct {
	perHost int
	hosts   map[string]*hostGate
}

func newHostGates(perHost int) *hostGates {
	return &hostGates{perHost: perHost, hosts: map[string]*hostGate{}}
}

// get returns the gate of a host, nil (no cap) when perHost is not set.
func (hs *hostGates) get(host string) *hostGate {
	if hs.perHost <= 0 {
		return nil
	}
	g, ok := hs.hosts[host]
	if !ok {
		g = &hostGate{limit: hs.perHost}
		hs.hosts[host] = g
	}
	return g
}

// hostGate counts the runs in flight against one host and queues the due
// entries that found it full. A nil gate admits everyone.
type hostGate struct {
	limit, n int
	waiting  fifo
}

func (g *hostGate) tryAcquire() bool {
	if g == nil {
		return true
	}
	if g.n >= g.limit {
		return false
	}
	g.n++
	return true
}

// release frees a slot and returns the first waiting entry that was not
// stopped meanwhile, which the caller runs next; nil when none waits.
func (g *hostGate) release() *entry {
	if g == nil {
		return nil
	}
	g.n--
	for g.waiting.len() > 0 {
		if e := g.waiting.pop(); !e.stopped {
			return e
		}
	}
	return nil
}
