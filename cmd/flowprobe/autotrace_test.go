package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/exporter"
	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/report"
	"github.com/flowprobe/flowprobe/probe/site"
	"github.com/flowprobe/flowprobe/scheduler"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// countingSink counts what reaches the sink behind the tracer.
type countingSink struct {
	mu      sync.Mutex
	records int
	sets    int
}

func (k *countingSink) SetTargets([]probe.Target) { k.mu.Lock(); k.sets++; k.mu.Unlock() }
func (k *countingSink) Record(scheduler.Status)   { k.mu.Lock(); k.records++; k.mu.Unlock() }

// traceRig is an autoTracer with one worker and a fake trace engine that
// reports each target it traces on traced.
type traceRig struct {
	a      *autoTracer
	clock  *fakeClock
	inner  *countingSink
	traced chan string
}

func newTraceRig(t *testing.T, store func(probe.Target, time.Time, report.Trace) bool) *traceRig {
	rig := &traceRig{clock: &fakeClock{t: time.Unix(1_800_000_000, 0)}, inner: &countingSink{}, traced: make(chan string, 64)}
	if store == nil {
		store = func(probe.Target, time.Time, report.Trace) bool { return true }
	}
	fake := func(_ context.Context, t probe.Target, _ probe.Result) report.Trace {
		rig.traced <- t.ID
		return report.Trace{Probe: "tcp/389", BlockedHop: 3, LastHop: "10.0.0.2", Paths: []report.TracePath{{}}}
	}
	rig.a = newAutoTracer(rig.inner, autoTraceFlags{enabled: true, minInterval: 10 * time.Minute, maxInFlight: 1}, fake, store, rig.clock.now, slog.New(slog.DiscardHandler))
	t.Cleanup(rig.a.Close)
	return rig
}

func tracedTarget(id string) probe.Target {
	return probe.Target{ID: id, Flow: "ldap", Host: "192.0.2.10", Port: 389, Protocol: probe.TCP, Check: "ldap"}
}

func failed(t probe.Target, changed bool) scheduler.Status {
	return scheduler.Status{Target: t, Result: probe.Result{Outcome: probe.OutcomeTimeout}, Changed: changed, ConsecutiveFailures: 1}
}

func passed(t probe.Target, changed bool) scheduler.Status {
	return scheduler.Status{Target: t, Result: probe.Result{Outcome: probe.OutcomeOK, Success: true}, Up: true, Changed: changed}
}

// tracedSoFar returns the targets traced before a sentinel target's trace:
// with one worker and a FIFO queue, every trace queued before it.
func (rig *traceRig) tracedSoFar(t *testing.T) []string {
	t.Helper()
	rig.clock.advance(autoTraceRefill) // a token for the sentinel
	sentinel := fmt.Sprintf("sentinel-%d", rig.clock.now().UnixNano())
	rig.a.Record(failed(tracedTarget(sentinel), true))
	var got []string
	for id := range rig.traced {
		if id == sentinel {
			return got
		}
		got = append(got, id)
	}
	return got
}

func TestAutoTraceFiresOnceOnTheTransitionToDown(t *testing.T) {
	rig := newTraceRig(t, nil)
	tg := tracedTarget("a")
	rig.a.Record(passed(tg, true))  // first result: up
	rig.a.Record(failed(tg, false)) // a failure below the threshold
	rig.a.Record(failed(tg, true))  // the debounced transition to down
	rig.a.Record(failed(tg, false)) // still down
	rig.a.Record(failed(tg, false))
	if got := rig.tracedSoFar(t); !slices.Equal(got, []string{"a"}) {
		t.Errorf("traced %v, want one trace of a", got)
	}
	if rig.inner.records != 6 {
		t.Errorf("%d records reached the store, want every one (6)", rig.inner.records)
	}
}

func TestAutoTraceRateLimits(t *testing.T) {
	rig := newTraceRig(t, nil)
	tg := tracedTarget("a")
	rig.a.Record(failed(tg, true))
	rig.a.Record(passed(tg, true))
	rig.a.Record(failed(tg, true)) // flapping within the minimum interval
	if got := rig.tracedSoFar(t); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("traced %v, want one trace of a flapping target", got)
	}
	rig.clock.advance(10 * time.Minute)
	rig.a.Record(passed(tg, true))
	rig.a.Record(failed(tg, true))
	if got := rig.tracedSoFar(t); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("traced %v after the minimum interval, want a again", got)
	}

	// Many flows failing at once: the bucket lets a burst through, then
	// one trace per refill.
	rig.clock.advance(autoTraceBurst * autoTraceRefill)
	var want []string
	for i := range autoTraceBurst + 5 {
		id := fmt.Sprintf("t%02d", i)
		rig.a.Record(failed(tracedTarget(id), true))
		if i < autoTraceBurst {
			want = append(want, id)
		}
	}
	if got := rig.tracedSoFar(t); !slices.Equal(got, want) {
		t.Fatalf("traced %v, want the first %d: %v", got, autoTraceBurst, want)
	}
	rig.a.Record(failed(tracedTarget("late"), true)) // the sentinel took the refill
	if got := rig.tracedSoFar(t); len(got) != 0 {
		t.Errorf("traced %v with an empty bucket, want none", got)
	}
}

func TestAutoTraceLeavesDenyFlowsAndOptOutAlone(t *testing.T) {
	rig := newTraceRig(t, nil)
	deny := tracedTarget("deny")
	deny.Expect = probe.ExpectDeny
	local := tracedTarget("local")
	rig.a.Record(failed(deny, true))
	rig.a.Record(scheduler.Status{Target: local, Result: probe.Result{Outcome: probe.OutcomeLocalError}, Changed: true})
	if got := rig.tracedSoFar(t); len(got) != 0 {
		t.Fatalf("traced %v, want no trace of a deny flow or a local error", got)
	}
	rig.a.configure(site.TraceConfig{DenyFlows: true})
	rig.a.Record(failed(deny, true))
	if got := rig.tracedSoFar(t); !slices.Equal(got, []string{"deny"}) {
		t.Fatalf("traced %v, want the deny flow when the config asks for it", got)
	}
	rig.a.configure(site.TraceConfig{NoAuto: true})
	rig.a.Record(failed(tracedTarget("b"), true))
	rig.a.configure(site.TraceConfig{})
	if got := rig.tracedSoFar(t); len(got) != 0 {
		t.Errorf("traced %v with trace: {auto: false}, want none", got)
	}
}

// Record returns at once while every worker is busy and the queue is
// full: the surplus is dropped, the store still gets every status.
func TestAutoTraceNeverBlocksRecord(t *testing.T) {
	release := make(chan struct{})
	started := make(chan string, 64)
	inner := &countingSink{}
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	var traced []string
	var mu sync.Mutex
	fake := func(_ context.Context, t probe.Target, _ probe.Result) report.Trace {
		started <- t.ID
		<-release
		mu.Lock()
		traced = append(traced, t.ID)
		mu.Unlock()
		return report.Trace{}
	}
	a := newAutoTracer(inner, autoTraceFlags{enabled: true, minInterval: time.Hour, maxInFlight: 1}, fake,
		func(probe.Target, time.Time, report.Trace) bool { return true }, clock.now, slog.New(slog.DiscardHandler))
	a.Record(failed(tracedTarget("first"), true))
	<-started // the one worker is busy from here on
	const n = 40
	for i := range n {
		clock.advance(autoTraceRefill) // tokens enough: only the queue limits
		a.Record(failed(tracedTarget(fmt.Sprint(i)), true))
	}
	if inner.records != n+1 {
		t.Fatalf("%d records reached the store, want %d", inner.records, n+1)
	}
	close(release)
	a.Close()
	if len(traced) > 1+autoTraceBurst {
		t.Errorf("%d traces ran, want at most the busy one and a full queue (%d)", len(traced), 1+autoTraceBurst)
	}
}

// A trace that finishes after its target was removed is not stored, and
// the rate limit forgets removed targets.
func TestAutoTraceDropsResultsOfRemovedTargets(t *testing.T) {
	store := exporter.NewStore()
	tg := tracedTarget("a")
	store.SetTargets([]probe.Target{tg})
	stored := make(chan bool, 4)
	rig := newTraceRig(t, func(t probe.Target, at time.Time, tr report.Trace) bool {
		ok := store.SetTrace(t, at, tr)
		stored <- ok
		return ok
	})
	st := failed(tg, true)
	store.Record(exporter.Record{Target: tg, Result: st.Result})
	rig.a.Record(st)
	<-rig.traced
	if !<-stored {
		t.Fatal("the trace of a configured failed target was not stored")
	}

	rig.clock.advance(time.Minute)
	rig.a.SetTargets(nil)
	store.SetTargets(nil)
	rig.a.mu.Lock()
	left := len(rig.a.last)
	rig.a.mu.Unlock()
	if left != 0 {
		t.Errorf("%d targets in the rate limit after all were removed", left)
	}
	rig.a.Record(st) // a late status of the removed target: traced, not stored
	<-rig.traced
	if <-stored {
		t.Error("the trace of a removed target was stored")
	}
	for _, en := range store.Snapshot() {
		t.Errorf("entry %s left after removal", en.Target.ID)
	}
}

// serve traces a flow that turns failed and exports where it stops;
// with --no-trace.auto, or trace: {auto: false}, it does not.
func TestServeTracesAFailedFlow(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // refused from now on
	for _, tc := range []struct {
		name   string
		flag   bool
		config string
		want   bool
	}{
		{"default", true, "", true},
		{"--no-trace.auto", false, "", false},
		{"trace: {auto: false}", true, "trace: {auto: false}\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "site.yml")
			site := strings.Replace(fmt.Sprintf(goodSite, port), "interval: 1h\n    timeout: 2s", "interval: 2s\n    timeout: 1s", 1)
			if err := os.WriteFile(path, []byte(tc.config+site), 0o600); err != nil {
				t.Fatal(err)
			}
			traced, calls := make(chan bool, 1), make(chan string, 8)
			o := &serveOptions{configFile: path, autoTrace: autoTraceFlags{enabled: tc.flag, minInterval: time.Hour, maxInFlight: 1},
				trace: func(_ context.Context, t probe.Target, _ probe.Result) report.Trace {
					calls <- t.ID
					return report.Trace{Probe: "tcp", BlockedHop: 3, LastHop: "192.0.2.1", Verdict: "answered up to hop 2 (192.0.2.1); hop 3 silent",
						Paths: []report.TracePath{{Probe: "tcp"}}}
				},
				traced: func(_ probe.Target, stored bool) { traced <- stored },
			}
			s := startServe(t, o, nil)
			if st := <-s.recorded; st.Up || !st.Changed {
				t.Fatalf("status %+v, want the flow failed", st)
			}
			if !tc.want {
				s.cancel()
				if code := <-s.exit; code != exitOK {
					t.Errorf("exit %d", code)
				}
				s.exit <- exitOK // for the cleanup
				select {
				case <-calls:
					t.Error("traced, want no automatic trace")
				default:
				}
				return
			}
			if !<-traced {
				t.Fatal("the trace of the failed flow was not stored")
			}
			_, metrics := httpDo(t, "GET", s.base+"/metrics")
			if !strings.Contains(metrics, `flowprobe_path_blocked_hop{check="tcp"`) || !strings.Contains(metrics, `hop_address="192.0.2.1"`) {
				t.Errorf("/metrics lacks the trace:\n%s", metrics)
			}
			_, page := httpDo(t, "GET", s.base+"/")
			if !strings.Contains(page, "answered up to hop 2 (192.0.2.1); hop 3 silent") {
				t.Errorf("the status page lacks the trace verdict")
			}
		})
	}
}
