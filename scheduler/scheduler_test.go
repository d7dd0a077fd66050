package scheduler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

// t0 lies on every test interval's grid (a multiple of 10s since the epoch).
var t0 = time.Unix(1_800_000_000, 0)

func recv[T any](tb testing.TB, ch <-chan T) T {
	tb.Helper()
	failsafe := time.NewTimer(10 * time.Second)
	defer failsafe.Stop()
	select {
	case v := <-ch:
		return v
	case <-failsafe.C:
		tb.Fatal("nothing received")
		panic("unreachable")
	}
}

func noMore[T any](tb testing.TB, ch <-chan T) {
	tb.Helper()
	select {
	case v := <-ch:
		tb.Fatalf("unexpected %v", v)
	default:
	}
}

func target(id, host string) probe.Target {
	return probe.Target{ID: id, Product: "demo", Flow: id, Host: host, Port: 443, Protocol: probe.TCP, Check: "tcp", Interval: 10 * time.Second}
}

// recordingSink collects what the scheduler reports.
type recordingSink struct {
	mu      sync.Mutex
	sets    [][]string
	records chan Status
}

func newSink() *recordingSink { return &recordingSink{records: make(chan Status, 100)} }

func (s *recordingSink) SetTargets(ts []probe.Target) {
	ids := make([]string, len(ts))
	for i, t := range ts {
		ids[i] = t.ID
	}
	s.mu.Lock()
	s.sets = append(s.sets, ids)
	s.mu.Unlock()
}

func (s *recordingSink) Record(st Status) { s.records <- st }

// run is one observed check start.
type run struct {
	id string
	at time.Time
}

// clockChecker reports each start with the fake time and answers ok.
func clockChecker(c Clock, starts chan<- run) probe.Checker {
	return probe.CheckerFunc(func(_ context.Context, t probe.Target) probe.Result {
		starts <- run{t.ID, c.Now()}
		return probe.Result{Outcome: probe.OutcomeOK}
	})
}

func TestOffsetIsStableAndSpreadsEvenly(t *testing.T) {
	const iv = 10 * time.Second
	counts := make([]int, 10)
	for i := range 1000 {
		id := probe.MakeID("demo", "flow", fmt.Sprintf("host-%d.example.org", i), 443, probe.TCP, "tcp")
		off := Offset(id, iv)
		if off != Offset(id, iv) {
			t.Fatalf("Offset(%q) is not stable", id)
		}
		if off < 0 || off >= iv {
			t.Fatalf("Offset(%q) = %v, outside [0, %v)", id, off, iv)
		}
		counts[off/time.Second]++
	}
	for sec, n := range counts {
		if n < 70 || n > 130 {
			t.Errorf("second %d of the interval holds %d of 1000 first runs, want about 100 (all: %v)", sec, n, counts)
		}
	}
}

func TestRunsStartAtPhaseOffsetsAndRestartsKeepThePhase(t *testing.T) {
	ids := []string{"demo/a/192.0.2.1:443/tcp/tcp", "demo/b/192.0.2.2:443/tcp/tcp", "demo/c/192.0.2.3:443/tcp/tcp"}
	var targets []probe.Target
	for _, id := range ids {
		targets = append(targets, target(id, "h"))
	}
	want := func(start time.Time, rounds int) []run {
		var w []run
		for _, id := range ids {
			at := slotAfter(start.Add(-1), Offset(id, 10*time.Second), 10*time.Second)
			for k := range rounds {
				w = append(w, run{id, at.Add(time.Duration(k) * 10 * time.Second)})
			}
		}
		slices.SortFunc(w, func(a, b run) int { return a.at.Compare(b.at) })
		return w
	}

	for _, start := range []time.Time{t0, t0.Add(3700 * time.Millisecond)} {
		clock := newFakeClock(start)
		starts := make(chan run, 10)
		s := fakeScheduler(Config{}, clockChecker(clock, starts), clock, nil)
		s.Update(targets)
		var got []run
		for range 2 * len(ids) {
			waitQueued(t, clock, s, len(ids))
			clock.AdvanceToNext(t)
			got = append(got, recv(t, starts))
		}
		s.Close()
		w := want(start, 2)
		if !slices.Equal(got, w) {
			t.Errorf("started at %v: runs\n got %v\nwant %v", start, got, w)
		}
		for _, r := range got {
			if off := time.Duration(r.at.UnixNano()) % (10 * time.Second); off != Offset(r.id, 10*time.Second) {
				t.Errorf("%s ran at phase %v, want %v", r.id, off, Offset(r.id, 10*time.Second))
			}
		}
		if st := s.Stats(); st.Lag.Count != 6 || st.Lag.Sum != 0 {
			t.Errorf("lag histogram count %d sum %v, want 6 runs with no lag", st.Lag.Count, st.Lag.Sum)
		}
	}
}

// gate is a checker that blocks each check until released.
type gate struct {
	started chan string
	release chan struct{}
}

func newGate() *gate {
	return &gate{started: make(chan string, 100), release: make(chan struct{}, 100)}
}

func (g *gate) Check(ctx context.Context, t probe.Target) probe.Result {
	g.started <- t.ID
	select {
	case <-g.release:
		return probe.Result{Outcome: probe.OutcomeOK, Details: map[string]string{"id": t.ID}}
	case <-ctx.Done():
		return probe.Result{Outcome: probe.OutcomeTimeout, Err: ctx.Err()}
	}
}

func TestDaemonGlobalCap(t *testing.T) {
	clock := newFakeClock(t0)
	g := newGate()
	sink := newSink()
	s := fakeScheduler(Config{MaxInFlight: 2}, g, clock, sink)
	waiting := make(chan string, 100)
	s.onWait = func(t probe.Target) { waiting <- t.ID }
	var targets []probe.Target
	for i := range 5 {
		targets = append(targets, target(fmt.Sprintf("t%d", i), fmt.Sprintf("h%d", i)))
	}
	s.Update(targets)
	defer s.Close()
	waitQueued(t, clock, s, 5)
	clock.Advance(10 * time.Second) // every target is due

	recv(t, g.started)
	recv(t, g.started)
	for range 3 {
		recv(t, waiting)
	}
	noMore(t, g.started)
	if st := s.Stats(); st.InFlight != 2 || st.Targets != 5 {
		t.Fatalf("stats %+v, want 2 in flight of 5 targets", st)
	}
	for range 3 {
		g.release <- struct{}{}
		recv(t, g.started)
		recv(t, sink.records)
		noMore(t, g.started)
	}
	g.release <- struct{}{}
	g.release <- struct{}{}
	recv(t, sink.records)
	recv(t, sink.records)
	waitQueued(t, clock, s, 5)
	if st := s.Stats(); st.InFlight != 0 {
		t.Fatalf("%d in flight after all runs finished", st.InFlight)
	}
	// Three runs waited for a slot: the lag histogram saw them late only
	// in real terms; the fake clock did not move, so the sum stays 0.
	if st := s.Stats(); st.Lag.Count != 5 {
		t.Errorf("lag count %d, want 5", st.Lag.Count)
	}
}

func TestRunOncePerHostCapAndOrder(t *testing.T) {
	g := newGate()
	s := New(Config{MaxInFlightPerHost: 2}, g, Options{})
	waiting := make(chan string, 100)
	s.onWait = func(t probe.Target) { waiting <- t.ID }
	targets := []probe.Target{
		target("a1", "a.example.org"), target("a2", "a.example.org"), target("a3", "a.example.org"),
		target("a4", "a.example.org"), target("b1", "b.example.org"),
	}
	done := make(chan []probe.Result)
	var progress []int
	go func() {
		done <- s.RunOnce(context.Background(), targets, func(i int, _ probe.Result) { progress = append(progress, i) })
	}()
	started := map[string]bool{}
	for range 3 {
		started[recv(t, g.started)] = true
	}
	// Three workers at most (two for a, one for b): none of them waits on
	// a host gate, and a3 and a4 wait for a worker.
	noMore(t, g.started)
	noMore(t, waiting)
	if !started["b1"] || len(started) != 3 {
		t.Fatalf("started %v, want two of host a and b1", started)
	}
	if n := s.Stats().InFlight; n != 3 {
		t.Fatalf("%d in flight, want 3", n)
	}
	close(g.release)
	res := recv(t, done)
	for i, r := range res {
		if r.Outcome != probe.OutcomeOK || !r.Success || r.Details["id"] != targets[i].ID {
			t.Errorf("result %d = %+v, want ok for %s", i, r, targets[i].ID)
		}
	}
	slices.Sort(progress)
	if !slices.Equal(progress, []int{0, 1, 2, 3, 4}) {
		t.Errorf("progress called for %v, want each index once", progress)
	}
}

func TestRunOnceRunsEverythingAtOnceWithoutCaps(t *testing.T) {
	const n = 64
	var mu sync.Mutex
	count := 0
	all := make(chan struct{})
	checker := probe.CheckerFunc(func(ctx context.Context, _ probe.Target) probe.Result {
		mu.Lock()
		if count++; count == n {
			close(all)
		}
		mu.Unlock()
		select { // passes only if all n checks are in flight together
		case <-all:
			return probe.Result{Outcome: probe.OutcomeOK}
		case <-ctx.Done():
			return probe.Result{Outcome: probe.OutcomeTimeout, Err: ctx.Err()}
		}
	})
	targets := make([]probe.Target, n)
	for i := range targets {
		targets[i] = target(fmt.Sprint(i), "h")
		targets[i].Timeout = time.Minute // failsafe only
	}
	res := New(Config{}, checker, Options{}).RunOnce(context.Background(), targets, nil)
	for i, r := range res {
		if r.Outcome != probe.OutcomeOK {
			t.Fatalf("target %d: %v (%v): the checks did not all run in parallel", i, r.Outcome, r.Err)
		}
	}
}

func TestRunOnceCancelledReportsNotRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	s := New(Config{MaxInFlight: 1}, probe.CheckerFunc(func(context.Context, probe.Target) probe.Result {
		ran = true
		return probe.Result{}
	}), Options{})
	tg := target("t", "h")
	tg.Expect = probe.ExpectDeny // a timeout would pass a deny flow: a check that never ran must not
	res := s.RunOnce(ctx, []probe.Target{tg, tg}, nil)
	if ran {
		t.Fatal("a check ran after its context was cancelled")
	}
	for _, r := range res {
		if r.Success || r.Outcome != probe.OutcomeTimeout || !errors.Is(r.Err, context.Canceled) {
			t.Errorf("result %+v, want a failed timeout wrapping context.Canceled", r)
		}
		if !r.Interrupted || !errors.Is(r.Err, probe.ErrInterrupted) {
			t.Errorf("result %+v, want an interrupted run", r)
		}
	}
}

// An interrupted run (cancelled from outside) says nothing about the flow:
// the daemon neither records nor counts it.
func TestInterruptedRunIsDropped(t *testing.T) {
	clock := newFakeClock(t0)
	script := []probe.Result{
		{Outcome: probe.OutcomeRefused},
		{Outcome: probe.OutcomeTimeout, Interrupted: true, Err: probe.ErrInterrupted},
		{Outcome: probe.OutcomeRefused},
	}
	var i int
	checker := probe.CheckerFunc(func(context.Context, probe.Target) probe.Result {
		r := script[min(i, len(script)-1)]
		i++
		return r
	})
	sink := newSink()
	s := fakeScheduler(Config{FailuresBeforeDown: 3}, checker, clock, sink)
	s.Update([]probe.Target{target("t", "h")})
	defer s.Close()
	var failures []int
	for range 2 {
		waitQueued(t, clock, s, 1)
		clock.AdvanceToNext(t)
		st := recv(t, sink.records)
		if st.Result.Interrupted {
			t.Fatalf("an interrupted run was recorded: %+v", st.Result)
		}
		failures = append(failures, st.ConsecutiveFailures)
		if len(failures) == 1 {
			// The interrupted run comes next; it records nothing.
			waitQueued(t, clock, s, 1)
			clock.AdvanceToNext(t)
		}
	}
	if !slices.Equal(failures, []int{1, 2}) {
		t.Errorf("consecutive failures %v, want [1 2]: the interrupted run must not count", failures)
	}
}

func TestRunsNeverOverlapAndSkipMissedSlots(t *testing.T) {
	clock := newFakeClock(t0)
	g := newGate()
	s := fakeScheduler(Config{}, g, clock, nil)
	tg := target("slow", "h")
	s.Update([]probe.Target{tg})
	defer s.Close()
	off := Offset(tg.ID, 10*time.Second)

	waitQueued(t, clock, s, 1)
	clock.AdvanceToNext(t)
	recv(t, g.started)
	clock.Advance(35 * time.Second) // three more slots pass while the run blocks
	waitQueued(t, clock, s, 0)
	noMore(t, g.started)
	g.release <- struct{}{}

	waitQueued(t, clock, s, 1)
	at := clock.AdvanceToNext(t)
	if want := t0.Add(off + 40*time.Second); !at.Equal(want) {
		t.Errorf("next run at %v, want the first slot after the long run, %v", at, want)
	}
	recv(t, g.started)
	noMore(t, g.started)
	g.release <- struct{}{}
}

func TestFailureThresholdAndFailingInterval(t *testing.T) {
	clock := newFakeClock(t0)
	script := []probe.Outcome{probe.OutcomeOK, probe.OutcomeRefused, probe.OutcomeRefused, probe.OutcomeRefused, probe.OutcomeOK, probe.OutcomeOK}
	var i int
	checker := probe.CheckerFunc(func(context.Context, probe.Target) probe.Result {
		o := script[i]
		i++
		return probe.Result{Outcome: o}
	})
	sink := newSink()
	s := fakeScheduler(Config{FailuresBeforeDown: 3, FailingInterval: 2 * time.Second}, checker, clock, sink)
	tg := target("flappy", "h")
	s.Update([]probe.Target{tg})
	defer s.Close()
	off := Offset(tg.ID, 10*time.Second)

	type step struct {
		at       time.Duration // since t0
		up       bool
		failures int
		changed  bool
	}
	want := []step{
		{off, true, 0, true},                   // first result sets the verdict
		{off + 10*time.Second, true, 1, false}, // one failure: still up
		{off + 12*time.Second, true, 2, false}, // re-checked after FailingInterval
		{off + 14*time.Second, false, 3, true}, // third failure: down
		{off + 16*time.Second, true, 0, true},  // one pass: up
		{off + 20*time.Second, true, 0, false}, // back on the phase grid
	}
	for k, w := range want {
		waitQueued(t, clock, s, 1)
		at := clock.AdvanceToNext(t)
		st := recv(t, sink.records)
		got := step{at.Sub(t0), st.Up, st.ConsecutiveFailures, st.Changed}
		if got != w {
			t.Errorf("run %d: got %+v, want %+v", k, got, w)
		}
		if st.Result.Outcome != script[k] {
			t.Errorf("run %d: raw outcome %v, want %v", k, st.Result.Outcome, script[k])
		}
	}
}

func TestUpdateKeepsUnchangedTargetsAndStopsRemovedOnes(t *testing.T) {
	clock := newFakeClock(t0)
	sink := newSink()
	checker := probe.CheckerFunc(func(_ context.Context, t probe.Target) probe.Result {
		if t.Flow == "a" {
			return probe.Result{Outcome: probe.OutcomeRefused}
		}
		return probe.Result{Outcome: probe.OutcomeOK}
	})
	s := fakeScheduler(Config{FailuresBeforeDown: 5}, checker, clock, sink)
	defer s.Close()
	a, b, c := target("a", "h"), target("b", "h"), target("c", "h")
	s.Update([]probe.Target{a, b, c})
	byID := map[string]Status{}
	for range 3 {
		waitQueued(t, clock, s, 3)
		clock.AdvanceToNext(t)
		st := recv(t, sink.records)
		byID[st.Target.ID] = st
	}
	if st := byID["a"]; st.Up || st.ConsecutiveFailures != 1 {
		t.Fatalf("a after one failure: %+v, want down with 1 failure (the first result is not debounced)", st)
	}
	waitQueued(t, clock, s, 3)

	b2 := b
	b2.Timeout = 3 * time.Second
	d := target("d", "h")
	s.Update([]probe.Target{a, b2, d, a}) // c removed, b changed, d new, a duplicated
	if got := sink.sets[len(sink.sets)-1]; !slices.Equal(got, []string{"a", "b", "d"}) {
		t.Fatalf("SetTargets got %v, want [a b d]", got)
	}
	if n := s.Stats().Targets; n != 3 {
		t.Fatalf("%d targets configured, want 3", n)
	}
	waitQueued(t, clock, s, 3) // b and d queued; a kept its place; old b and c left the queue

	seen := map[string]Status{}
	for len(seen) < 3 {
		waitQueued(t, clock, s, 3)
		at := clock.AdvanceToNext(t)
		st := recv(t, sink.records)
		if _, dup := seen[st.Target.ID]; dup {
			t.Fatalf("%s ran twice before the others ran once", st.Target.ID)
		}
		seen[st.Target.ID] = st
		if st.Target.ID == "a" {
			if want := t0.Add(Offset("a", 10*time.Second) + 10*time.Second); !at.Equal(want) {
				t.Errorf("a ran at %v, want its unchanged slot %v", at, want)
			}
		}
	}
	if st := seen["a"]; st.ConsecutiveFailures != 2 || st.Changed {
		t.Errorf("a after reload: %+v, want its failure count kept (2) and no state change", st)
	}
	if st := seen["b"]; !st.Changed || st.Target.Timeout != 3*time.Second {
		t.Errorf("b after reload: %+v, want a fresh loop with the new timeout", st)
	}
	if _, ok := seen["c"]; ok {
		t.Error("removed target c still runs")
	}
}

func TestJitterStaysWithinItsFractionAndDoesNotDrift(t *testing.T) {
	clock := newFakeClock(t0)
	starts := make(chan run, 10)
	s := fakeScheduler(Config{Jitter: 0.5}, clockChecker(clock, starts), clock, nil)
	tg := target("jittery", "h")
	s.Update([]probe.Target{tg})
	defer s.Close()
	off := Offset(tg.ID, 10*time.Second)
	moved := 0
	for k := range 20 {
		waitQueued(t, clock, s, 1)
		clock.AdvanceToNext(t)
		at := recv(t, starts).at
		slot := t0.Add(off + time.Duration(k)*10*time.Second)
		if at.Before(slot) || !at.Before(slot.Add(5*time.Second)) {
			t.Fatalf("run %d at %v, want within [%v, %v)", k, at, slot, slot.Add(5*time.Second))
		}
		if !at.Equal(slot) {
			moved++
		}
	}
	if moved == 0 {
		t.Error("jitter moved no run")
	}
}

func TestDaemonPerHostCapRunsEveryDueTargetLate(t *testing.T) {
	clock := newFakeClock(t0)
	g := newGate()
	sink := newSink()
	s := fakeScheduler(Config{MaxInFlight: 8, MaxInFlightPerHost: 1}, g, clock, sink)
	waiting := make(chan string, 100)
	s.onWait = func(t probe.Target) { waiting <- t.ID }
	s.Update([]probe.Target{target("a1", "a"), target("a2", "a"), target("a3", "a"), target("b1", "b")})
	defer s.Close()
	waitQueued(t, clock, s, 4)
	clock.Advance(10 * time.Second) // every target is due

	started := map[string]bool{recv(t, g.started): true, recv(t, g.started): true}
	recv(t, waiting)
	recv(t, waiting)
	noMore(t, g.started)
	if !started["b1"] {
		t.Fatalf("started %v, want one of host a and b1", started)
	}
	clock.Advance(3 * time.Second) // the queued runs are now late
	for range 4 {
		g.release <- struct{}{}
	}
	recv(t, g.started) // the waiting runs of host a take the freed slot in turn
	recv(t, g.started)
	for range 4 {
		recv(t, sink.records)
	}
	waitQueued(t, clock, s, 4)
	st := s.Stats()
	if st.Lag.Count != 4 || st.Lag.Sum < 6 {
		t.Errorf("lag count %d sum %vs, want 4 runs, two of them 3s late", st.Lag.Count, st.Lag.Sum)
	}
}

func TestRunOnceWorkersNoMoreThanTheCapsAdmit(t *testing.T) {
	for _, c := range []struct {
		targets, maxInFlight, perHost int
		hosts                         []int
		want                          int
	}{
		{10000, 256, 4, []int{10000}, 4},    // one host: its cap
		{10, 256, 4, []int{4, 3, 2, 1}, 10}, // every target at once
		{300, 256, 4, make300(), 256},       // the global cap
		{64, 0, 0, []int{64}, 64},           // no caps
		{5, 0, 2, []int{4, 1}, 3},           // per-host cap only
		{10000, 8, 0, []int{5000, 5000}, 8}, // global cap only
	} {
		if got := runOnceWorkers(c.targets, c.hosts, c.maxInFlight, c.perHost); got != c.want {
			t.Errorf("runOnceWorkers(%d, %v, %d, %d) = %d, want %d", c.targets, c.hosts, c.maxInFlight, c.perHost, got, c.want)
		}
	}
}

// make300 is 300 hosts of one target each.
func make300() []int {
	h := make([]int, 300)
	for i := range h {
		h[i] = 1
	}
	return h
}
