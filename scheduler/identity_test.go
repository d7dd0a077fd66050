package scheduler

import (
	"context"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

// uncomparable stands for decoded options that never compare equal, as an
// x509.CertPool (it holds funcs) decoded from a ca_file.
type uncomparable struct{ f func() }

// withOptions returns a copy of t with freshly decoded options and the
// fingerprint fp, as a reload plans it.
func withOptions(t probe.Target, fp byte) probe.Target {
	t.Options = &uncomparable{f: func() {}}
	t.Fingerprint = probe.Fingerprint{fp}
	return t
}

// A reload of an identical config keeps the state of a target whose
// options never compare equal; a changed fingerprint starts it over.
func TestUpdateComparesTargetsByFingerprint(t *testing.T) {
	clock := newFakeClock(t0)
	sink := newSink()
	refused := probe.CheckerFunc(func(context.Context, probe.Target) probe.Result {
		return probe.Result{Outcome: probe.OutcomeRefused}
	})
	s := fakeScheduler(Config{FailuresBeforeDown: 3}, refused, clock, sink)
	defer s.Close()
	a := target("a", "h")
	s.Update([]probe.Target{withOptions(a, 1)})
	waitQueued(t, clock, s, 1)
	clock.AdvanceToNext(t)
	if st := recv(t, sink.records); st.ConsecutiveFailures != 1 || !st.Changed {
		t.Fatalf("first run: %+v, want 1 failure and a new state", st)
	}
	waitQueued(t, clock, s, 1)
	planned := headPlanned(s)

	s.Update([]probe.Target{withOptions(a, 1)}) // a reload of the same config
	waitQueued(t, clock, s, 1)
	if got := headPlanned(s); !got.Equal(planned) {
		t.Errorf("after a reload the run is planned at %v, want its kept slot %v", got, planned)
	}
	clock.AdvanceToNext(t)
	if st := recv(t, sink.records); st.ConsecutiveFailures != 2 || st.Changed {
		t.Fatalf("run after reloading an identical config: %+v, want its failure count kept (2) and no state change", st)
	}

	waitQueued(t, clock, s, 1)
	s.Update([]probe.Target{withOptions(a, 2)}) // the CA file or an option changed
	waitQueued(t, clock, s, 1)
	clock.AdvanceToNext(t)
	if st := recv(t, sink.records); st.ConsecutiveFailures != 1 || !st.Changed {
		t.Fatalf("run after a changed fingerprint: %+v, want fresh state (1 failure, new state)", st)
	}
}

// headPlanned returns when the first queued run is due.
func headPlanned(s *Scheduler) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.daemon.queue[0].planned
}
