package main

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/flowprobe/flowprobe/checks/trace"
	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/report"
	"github.com/flowprobe/flowprobe/probe/site"
	"github.com/flowprobe/flowprobe/scheduler"
)

// The daemon traces the path of a flow when it turns failed: a Sink in
// front of the exporter's store sees every Status, and on the debounced
// transition to down hands the target to a small pool of its own, so the
// scheduler's workers never wait for a trace and the scheduler knows
// nothing of tracing. Traces are rate-limited per target and globally.

// Limits of the automatic trace that are not flags.
const (
	// autoTraceBurst is the global token bucket's size: how many traces
	// may start in a row when many flows fail at once.
	autoTraceBurst = 8
	// autoTraceRefill is how often the bucket gains a token.
	autoTraceRefill = 30 * time.Second
	// autoTraceHopTimeout is how long each probe of a trace waits.
	autoTraceHopTimeout = time.Second
	// autoTraceLimit bounds one trace with its comparison: at most
	// 2 × 30 hops × 2 tries × 1 s.
	autoTraceLimit = 2 * trace.DefaultMaxHops * trace.DefaultTries * autoTraceHopTimeout
)

// autoTraceFlags are the flags of the automatic trace.
type autoTraceFlags struct {
	enabled     bool
	minInterval time.Duration
	maxInFlight int
}

func addAutoTraceFlags(cmd *kingpin.CmdClause, f *autoTraceFlags) {
	cmd.Flag("trace.auto", "Trace the path of a flow when it turns failed (--no-trace.auto turns it off; the site config's trace: {auto: false} too).").Default("true").BoolVar(&f.enabled)
	cmd.Flag("trace.auto.min-interval", "Least time between two automatic traces of one target.").Default("10m").DurationVar(&f.minInterval)
	cmd.Flag("trace.auto.max-in-flight", "Automatic traces running at once.").Default("2").IntVar(&f.maxInFlight)
}

// traceFunc traces the path of target t, whose check ended in r.
type traceFunc func(ctx context.Context, t probe.Target, r probe.Result) report.Trace

// traceJob is a target to trace and the result that failed it.
type traceJob struct {
	t probe.Target
	r probe.Result
}

// autoTracer is the Sink that triggers the automatic traces. Record and
// SetTargets pass everything on to next first; Record never blocks on a
// trace: a job that finds the queue full is dropped.
type autoTracer struct {
	next        scheduler.Sink
	trace       traceFunc
	store       func(t probe.Target, at time.Time, tr report.Trace) bool
	now         func() time.Time
	log         *slog.Logger
	minInterval time.Duration

	cfg atomic.Pointer[site.TraceConfig] // the site config's trace block

	mu     sync.Mutex
	last   map[string]time.Time // by target ID: when its last trace was queued
	tokens float64
	filled time.Time // when tokens was last topped up

	jobs   chan traceJob
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// newAutoTracer starts f.maxInFlight workers that run trace for each
// target that turns failed and hand the result to store.
func newAutoTracer(next scheduler.Sink, f autoTraceFlags, trace traceFunc, store func(probe.Target, time.Time, report.Trace) bool, now func() time.Time, log *slog.Logger) *autoTracer {
	a := &autoTracer{next: next, trace: trace, store: store, now: now, log: log, minInterval: f.minInterval,
		last: map[string]time.Time{}, tokens: autoTraceBurst, filled: now(), jobs: make(chan traceJob, autoTraceBurst)}
	a.cfg.Store(&site.TraceConfig{})
	a.ctx, a.cancel = context.WithCancel(context.Background())
	for range max(f.maxInFlight, 1) {
		a.wg.Add(1)
		go a.work()
	}
	return a
}

// liveTracer returns the traceFunc of the daemon: the trace engine, with
// one Tracer spacing the probes of every trace.
func liveTracer() traceFunc {
	tr := &trace.Tracer{}
	return func(ctx context.Context, t probe.Target, r probe.Result) report.Trace {
		return traceTarget(ctx, tr, t, r, autoTraceHopTimeout)
	}
}

// configure applies the site config's trace block from now on.
func (a *autoTracer) configure(c site.TraceConfig) { a.cfg.Store(&c) }

// Close stops the workers; a trace in progress is abandoned.
func (a *autoTracer) Close() {
	a.cancel()
	a.wg.Wait()
}

// SetTargets passes the new set on and forgets the rate limit of removed
// targets, so the map stays as large as the set.
func (a *autoTracer) SetTargets(ts []probe.Target) {
	a.next.SetTargets(ts)
	keep := make(map[string]bool, len(ts))
	for _, t := range ts {
		keep[t.ID] = true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for id := range a.last {
		if !keep[id] {
			delete(a.last, id)
		}
	}
}

// Record passes st on, then queues a trace when the target just turned
// failed and the limits allow one.
func (a *autoTracer) Record(st scheduler.Status) {
	a.next.Record(st)
	if !st.Changed || st.Up || !a.wanted(st) {
		return
	}
	if !a.allow(st.Target.ID) {
		a.log.Debug("Automatic trace skipped: rate limit", "flow", st.Target.Flow, "target", st.Target.Address())
		return
	}
	select {
	case a.jobs <- traceJob{st.Target, st.Result}:
	default:
		a.log.Debug("Automatic trace skipped: queue full", "flow", st.Target.Flow, "target", st.Target.Address())
	}
}

// wanted reports whether the configuration asks for a trace of st.
func (a *autoTracer) wanted(st scheduler.Status) bool {
	cfg := a.cfg.Load()
	return !cfg.NoAuto && traceable(st.Result) && (st.Target.Expect != probe.ExpectDeny || cfg.DenyFlows)
}

// allow takes a token for a trace of target id: at most one per
// minInterval per target, and none when the global bucket is empty.
func (a *autoTracer) allow(id string) bool {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if at, ok := a.last[id]; ok && now.Sub(at) < a.minInterval {
		return false
	}
	if d := now.Sub(a.filled); d > 0 {
		a.tokens = min(autoTraceBurst, a.tokens+float64(d)/float64(autoTraceRefill))
		a.filled = now
	}
	if a.tokens < 1 {
		return false
	}
	a.tokens--
	a.last[id] = now
	return true
}

func (a *autoTracer) work() {
	defer a.wg.Done()
	for {
		select {
		case <-a.ctx.Done():
			return
		case j := <-a.jobs:
			a.run(j)
		}
	}
}

func (a *autoTracer) run(j traceJob) {
	ctx, cancel := context.WithTimeout(a.ctx, autoTraceLimit)
	defer cancel()
	tr := a.trace(ctx, j.t, j.r)
	if a.ctx.Err() != nil {
		return // shutting down: the trace was cut short
	}
	stored := a.store(j.t, a.now(), tr)
	a.log.Info("Path traced", "flow", j.t.Flow, "target", j.t.Address(), "blocked_hop", tr.BlockedHop, "verdict", tr.Verdict, "stored", stored)
}
