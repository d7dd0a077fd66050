package exporter

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/scheduler"
)

// procStatusKiB reads a "Vm..." line of /proc/self/status, in KiB.
func procStatusKiB(b *testing.B, field string) float64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skip("no /proc/self/status")
	}
	for line := range strings.Lines(string(raw)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kib, _ := strconv.ParseFloat(strings.Fields(rest)[0], 64)
			return kib
		}
	}
	b.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// lagP99 returns the upper bound of the bucket holding the 99th
// percentile of the lags observed between two snapshots.
func lagP99(before, after scheduler.Histogram) float64 {
	n := after.Count - before.Count
	for _, ub := range scheduler.LagBuckets {
		if float64(after.Buckets[ub]-before.Buckets[ub]) >= 0.99*float64(n) {
			return ub
		}
	}
	return 10
}

// BenchmarkDaemonScrape is the whole daemon in one process: the scheduler
// runs 1,000, 10,000, 50,000 or 200,000 targets at 1,000 checks a second in total
// (a checker that answers at once) into the exporter's store, and /metrics
// is scraped 3 times (text, no compression). Every target has a result
// before the first scrape, as in steady state. It reports the resident
// memory (VmRSS) before the scrapes and after them, its peak (VmHWM), per
// scrape the wall and CPU time and the body size, and the scheduler lag's
// 99th percentile during the scrapes. Use -benchtime 1x: one op is the
// whole run. The process is the test binary, so run one target count at a
// time (-bench 'DaemonScrape/targets=50000$') for clean peaks.
func BenchmarkDaemonScrape(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 50_000, 200_000} {
		b.Run(fmt.Sprintf("targets=%d", n), func(b *testing.B) {
			for b.Loop() {
				benchDaemonScrape(b, n)
			}
		})
	}
}

func benchDaemonScrape(b *testing.B, n int) {
	ts := make([]probe.Target, n)
	for i := range ts {
		host := fmt.Sprintf("host-%d.example.org", i/10)
		ts[i] = probe.Target{ID: probe.MakeID("bench", fmt.Sprint("flow-", i%10), host, 443, probe.TCP, "tls"), Product: "bench",
			Flow: fmt.Sprint("flow-", i%10), Source: "a", Destination: "b", Host: host, Port: 443, Protocol: probe.TCP, Check: "tls",
			Interval: time.Duration(n) * time.Millisecond, Timeout: time.Second}
	}
	var sched *scheduler.Scheduler
	e := New(Options{Stats: func() SchedulerStats {
		st := sched.Stats()
		return SchedulerStats{Targets: st.Targets, InFlight: st.InFlight, LagCount: st.Lag.Count, LagSum: st.Lag.Sum, LagBuckets: st.Lag.Buckets}
	}})
	if err := e.SetConstLabels("bench", nil); err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := e.Register(reg); err != nil {
		b.Fatal(err)
	}
	res := okResult()
	checker := probe.CheckerFunc(func(context.Context, probe.Target) probe.Result { return res })
	sink := daemonSink{e.Store()}
	sched = scheduler.New(scheduler.Config{MaxInFlight: 256, MaxInFlightPerHost: 4}, checker, scheduler.Options{Sink: sink})
	defer sched.Close()
	sched.Update(ts)
	for _, t := range ts {
		e.Store().Record(Record{Target: t, Result: res, Up: true})
	}
	time.Sleep(2 * time.Second)
	rssBefore := procStatusKiB(b, "VmRSS")
	h := e.Handler(HandlerOptions{Gatherer: reg})
	lag0 := sched.Stats().Lag
	var wall, cpu time.Duration
	var bytes int64
	const scrapes = 3
	for range scrapes {
		w := &countingWriter{header: http.Header{}}
		t0, c0 := time.Now(), cpuTime()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
		wall += time.Since(t0)
		cpu += cpuTime() - c0
		bytes += w.n
		time.Sleep(time.Second)
	}
	lag1 := sched.Stats().Lag
	b.ReportMetric(rssBefore/1024, "rss-before-MiB")
	b.ReportMetric(procStatusKiB(b, "VmRSS")/1024, "rss-after-MiB")
	b.ReportMetric(procStatusKiB(b, "VmHWM")/1024, "rss-peak-MiB")
	b.ReportMetric(wall.Seconds()/scrapes, "s/scrape")
	b.ReportMetric(cpu.Seconds()/scrapes, "cpu-s/scrape")
	b.ReportMetric(float64(bytes)/scrapes/1e6, "MB/scrape")
	b.ReportMetric(lagP99(lag0, lag1)*1e3, "lag-p99-ms")
}

type daemonSink struct{ s *Store }

func (d daemonSink) SetTargets(ts []probe.Target) { d.s.SetTargets(ts) }

func (d daemonSink) Record(st scheduler.Status) {
	d.s.Record(Record{Target: st.Target, Result: st.Result, Up: st.Up, ConsecutiveFailures: st.ConsecutiveFailures})
}
