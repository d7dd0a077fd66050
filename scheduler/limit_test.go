package scheduler

import (
	"fmt"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

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
