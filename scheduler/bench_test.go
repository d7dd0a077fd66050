package scheduler

import (
	"context"
	"flag"
	"fmt"
	"math"
	"net"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

func benchTargets(n, hosts int, interval time.Duration) []probe.Target {
	ts := make([]probe.Target, n)
	for i := range ts {
		host := fmt.Sprintf("192.0.2.%d", i%hosts)
		ts[i] = probe.Target{
			ID: probe.MakeID("bench", "flow", host, 1000+i, probe.TCP, "tcp"), Product: "bench", Flow: "flow",
			Host: host, Port: 1000 + i, Protocol: probe.TCP, Check: "tcp", Interval: interval, Timeout: interval / 2,
		}
	}
	return ts
}

var okChecker = probe.CheckerFunc(func(context.Context, probe.Target) probe.Result {
	return probe.Result{Outcome: probe.OutcomeOK}
})

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRunOnce measures RunOnce's own overhead: 1,000 targets over 100
// hosts with the default caps and a checker that returns at once.
func BenchmarkRunOnce(b *testing.B) {
	ts := benchTargets(1000, 100, time.Minute)
	s := New(Config{MaxInFlight: 256, MaxInFlightPerHost: 4}, okChecker, Options{})
	b.ReportAllocs()
	for b.Loop() {
		s.RunOnce(context.Background(), ts, nil)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ts)), "ns/check")
}

// loopbackDial starts a loopback listener that accepts and closes, and
// returns a checker that connects to it and closes (the unit of DESIGN.md's
// connect floor).
func loopbackDial(b *testing.B) probe.Checker {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	addr := ln.Addr().String()
	var d net.Dialer
	return probe.CheckerFunc(func(ctx context.Context, _ probe.Target) probe.Result {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return probe.Result{Outcome: probe.OutcomeRefused, Err: err}
		}
		c.Close()
		return probe.Result{Outcome: probe.OutcomeOK}
	})
}

// BenchmarkConnectFloor is the plain loop of dial + close the others are
// compared with.
func BenchmarkConnectFloor(b *testing.B) {
	dial := loopbackDial(b)
	cpu0 := cpuTime()
	for b.Loop() {
		if r := dial.Check(context.Background(), probe.Target{}); r.Outcome != probe.OutcomeOK {
			b.Fatalf("connect: %v", r.Err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/check")
}

// BenchmarkRunOnceTCPConnect runs 1,000 real TCP connects to a loopback
// listener through RunOnce; the last case is `flowprobe check`'s default
// caps on one host (256 in flight, 4 per host).
func BenchmarkRunOnceTCPConnect(b *testing.B) {
	for _, c := range []Config{{MaxInFlight: 1}, {MaxInFlight: 4}, {MaxInFlight: 64}, {MaxInFlight: 256, MaxInFlightPerHost: 4}} {
		name := fmt.Sprintf("max_in_flight=%d", c.MaxInFlight)
		if c.MaxInFlightPerHost > 0 {
			name += fmt.Sprintf(",per_host=%d", c.MaxInFlightPerHost)
		}
		b.Run(name, func(b *testing.B) {
			dial := loopbackDial(b)
			ts := benchTargets(1000, 1, time.Minute)
			s := New(c, dial, Options{})
			cpu0 := cpuTime()
			for b.Loop() {
				for _, r := range s.RunOnce(context.Background(), ts, nil) {
					if r.Outcome != probe.OutcomeOK {
						b.Fatalf("connect: %v", r.Err)
					}
				}
			}
			checks := float64(b.N * len(ts))
			b.ReportMetric(checks/b.Elapsed().Seconds(), "checks/s")
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/checks, "cpu-µs/check")
		})
	}
}

// countingSink counts records and signals when a goal is reached.
type countingSink struct {
	n    atomic.Int64
	goal int64
	done chan struct{}
}

func (c *countingSink) SetTargets([]probe.Target) {}

func (c *countingSink) Record(Status) {
	if c.n.Add(1) == c.goal {
		close(c.done)
	}
}

// BenchmarkDaemon measures the daemon's dispatch: targets on their own
// loops with the wall clock. "fixed" paces 1,000 targets at a 1s interval
// (1,000 checks a second, the rate DESIGN.md compares against), with a
// checker that returns at once or with a real loopback TCP connect;
// "flat-out" gives 1,000 targets a 10ms interval, more than the scheduler
// can dispatch. One op is one check.
func BenchmarkDaemon(b *testing.B) {
	for _, bc := range []struct {
		name     string
		interval time.Duration
		tcp      bool
	}{
		{"fixed-1000-per-second", time.Second, false},
		{"fixed-1000-per-second-tcp-connect", time.Second, true},
		{"flat-out", 10 * time.Millisecond, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			sink := &countingSink{goal: int64(b.N), done: make(chan struct{})}
			var checker probe.Checker = okChecker
			if bc.tcp {
				checker = loopbackDial(b)
			}
			s := New(Config{MaxInFlight: 256, MaxInFlightPerHost: 4}, checker, Options{Sink: sink})
			ts := benchTargets(1000, 250, bc.interval)
			cpu0 := cpuTime()
			b.ResetTimer()
			s.Update(ts)
			<-sink.done
			b.StopTimer()
			cpu := cpuTime() - cpu0
			s.Close()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/check")
			st := s.Stats()
			if st.Lag.Count > 0 {
				b.ReportMetric(st.Lag.Sum/float64(st.Lag.Count)*1e6, "lag-µs/check")
			}
		})
	}
}

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// p99 is the upper bound of the lag bucket that holds the 99th percentile.
func p99(h Histogram) float64 {
	for _, ub := range LagBuckets {
		if float64(h.Buckets[ub]) >= 0.99*float64(h.Count) {
			return ub
		}
	}
	return math.Inf(1)
}

// BenchmarkDaemonScale runs 10,000, 50,000 and 200,000 targets at 1,000
// checks a second in total (interval = targets/1,000 seconds) for
// -scale-seconds of wall time, with a checker that returns at once. It
// reports the heap the daemon holds per target (live heap after GC, the
// targets' own configuration excluded), the CPU time per check and the
// lag's mean and 99th percentile (as the upper bound of its bucket).
// Use -benchtime 1x: one op is the whole run.
func BenchmarkDaemonScale(b *testing.B) {
	for _, n := range []int{10_000, 50_000, 200_000} {
		b.Run(fmt.Sprintf("targets=%d", n), func(b *testing.B) {
			ts := benchTargets(n, n/4, time.Duration(n)*time.Millisecond)
			for b.Loop() {
				sink := &countingSink{goal: -1}
				base := heapInUse()
				s := New(Config{MaxInFlight: 256, MaxInFlightPerHost: 4}, okChecker, Options{Sink: sink})
				s.Update(ts)
				held := heapInUse() - base
				cpu0 := cpuTime()
				time.Sleep(*scaleSeconds)
				cpu := cpuTime() - cpu0
				st := s.Stats()
				s.Close()
				checks := float64(sink.n.Load())
				b.ReportMetric(float64(held)/float64(n), "heap-B/target")
				b.ReportMetric(checks/scaleSeconds.Seconds(), "checks/s")
				b.ReportMetric(float64(cpu.Microseconds())/checks, "cpu-µs/check")
				b.ReportMetric(st.Lag.Sum/float64(st.Lag.Count)*1e3, "lag-mean-ms")
				b.ReportMetric(p99(st.Lag)*1e3, "lag-p99-ms")
			}
		})
	}
}

var scaleSeconds = flag.Duration("scale-seconds", 5*time.Second, "how long BenchmarkDaemonScale runs each target count")
