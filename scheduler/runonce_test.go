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
