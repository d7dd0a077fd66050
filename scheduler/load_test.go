package scheduler

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/exporter"
	"github.com/flowprobe/flowprobe/probe"
)

// With ten times more due targets than workers, every target still runs
// once per interval, in turn and late, and the lag histogram (and the
// metric exported from it) counts how late.
func TestDaemonOverloadRunsEveryTargetLate(t *testing.T) {
	const workers, targets, rounds = 4, 40, 3
	clock := newFakeClock(t0)
	g := newGate()
	sink := &recordingSink{records: make(chan Status, targets)}
	s := fakeScheduler(Config{MaxInFlight: workers}, g, clock, sink)
	defer s.Close()
	var ts []probe.Target
	for i := range targets {
		ts = append(ts, target(fmt.Sprintf("t%02d", i), fmt.Sprintf("h%02d", i)))
	}
	s.Update(ts)
	for round := range rounds {
		waitQueued(t, clock, s, targets)
		clock.Advance(10 * time.Second) // every target is due
		ran := map[string]int{}
		for range workers {
			ran[recv(t, g.started)]++
		}
		noMore(t, g.started)           // the pool is full; the others wait, queued
		clock.Advance(2 * time.Second) // the waiting runs are now 2s late at least
		for range targets - workers {
			g.release <- struct{}{}
			ran[recv(t, g.started)]++
		}
		for range workers {
			g.release <- struct{}{}
		}
		for range targets {
			recv(t, sink.records)
		}
		if len(ran) != targets {
			t.Fatalf("round %d: %d targets ran, want all %d", round, len(ran), targets)
		}
		for id, n := range ran {
			if n != 1 {
				t.Fatalf("round %d: %s ran %d times, want once", round, id, n)
			}
		}
	}
	waitQueued(t, clock, s, targets)

	st := s.Stats()
	late := st.Lag.Count - st.Lag.Buckets[1]
	if st.Lag.Count != targets*rounds || late < (targets-workers)*rounds {
		t.Errorf("lag histogram: %d runs, %d of them over 1s late; want %d runs, at least %d late", st.Lag.Count, late, targets*rounds, (targets-workers)*rounds)
	}
	e := exporter.New(exporter.Options{Stats: func() exporter.SchedulerStats {
		st := s.Stats()
		return exporter.SchedulerStats{Targets: st.Targets, InFlight: st.InFlight, LagCount: st.Lag.Count, LagSum: st.Lag.Sum, LagBuckets: st.Lag.Buckets}
	}})
	rec := httptest.NewRecorder()
	e.Handler(exporter.HandlerOptions{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		fmt.Sprintf("flowprobe_scheduler_lag_seconds_count %d\n", st.Lag.Count),
		fmt.Sprintf("flowprobe_scheduler_lag_seconds_bucket{le=\"1\"} %d\n", st.Lag.Buckets[1]),
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	t.Logf("%d workers, %d targets, %d rounds: %d runs, %d over 1s late, lag sum %.0fs", workers, targets, rounds, st.Lag.Count, late, st.Lag.Sum)
}
