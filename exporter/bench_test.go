package exporter

import (
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowprobe/flowprobe/probe"
)

var scrapeTargets = flag.Int("scrape-targets", 0, "run BenchmarkScrape for this many targets only")

// countingWriter is a ResponseWriter that counts and discards the body,
// so that the benchmark measures the exporter, not a growing buffer.
type countingWriter struct {
	header http.Header
	code   int
	n      int64
}

func (w *countingWriter) Header() http.Header { return w.header }

func (w *countingWriter) WriteHeader(code int) { w.code = code }

func (w *countingWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	w.n += int64(len(p))
	return len(p), nil
}

// BenchmarkScrape serves /metrics (the text format) for 10,000, 50,000
// and 200,000 targets with TLS values, 29 series a target; -args
// -scrape-targets N runs N targets only. "filtered" asks for one family
// (name[]=flowprobe_check_success). Besides time, bytes and allocations
// per scrape it reports the process CPU time per scrape and the heap the
// store holds per target after a scrape (live heap after GC, the targets'
// configuration included).
func BenchmarkScrape(b *testing.B) {
	counts := []int{10_000, 50_000, 200_000}
	if *scrapeTargets > 0 {
		counts = []int{*scrapeTargets}
	}
	for _, n := range counts {
		for _, path := range []string{"/metrics", "/metrics?name[]=flowprobe_check_success"} {
			name := fmt.Sprintf("targets=%d", n)
			if path != "/metrics" {
				name += "/filtered"
			}
			b.Run(name, func(b *testing.B) { benchScrape(b, n, path) })
		}
	}
}

func benchScrape(b *testing.B, n int, path string) {
	base := heapInUse()
	e := New(Options{Stats: func() SchedulerStats { return SchedulerStats{LagBuckets: map[float64]uint64{}} }})
	if err := e.SetConstLabels("bench", nil); err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := e.Register(reg); err != nil {
		b.Fatal(err)
	}
	ts := make([]probe.Target, n)
	for i := range ts {
		host := fmt.Sprintf("host-%d.example.org", i/10)
		ts[i] = probe.Target{ID: probe.MakeID("bench", fmt.Sprint("flow-", i%10), host, 443, probe.TCP, "tls"), Product: "bench",
			Flow: fmt.Sprint("flow-", i%10), Source: "a", Destination: "b", Host: host, Port: 443, Protocol: probe.TCP, Check: "tls", Interval: time.Minute}
	}
	e.Store().SetTargets(ts)
	for _, t := range ts {
		e.Store().Record(Record{Target: t, Result: okResult(), Up: true})
	}
	ts = nil
	h := e.Handler(HandlerOptions{Gatherer: reg})
	req := httptest.NewRequest("GET", path, nil)
	h.ServeHTTP(&countingWriter{header: http.Header{}}, req) // fills the label caches
	held := float64(heapInUse()-base) / float64(n)
	cpu0 := cpuTime()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w := &countingWriter{header: http.Header{}}
		h.ServeHTTP(w, req)
		if w.code != http.StatusOK {
			b.Fatal(w.code)
		}
		b.SetBytes(w.n)
	}
	b.ReportMetric(float64((cpuTime()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/scrape")
	b.ReportMetric(held, "heap-B/target")
}

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkStatusPage renders the status page for -scrape-targets targets
// (10,000 by default) in 100 products of 10 flows between 4 roles, each
// with a full history strip and one target in ten failing; it reports the
// page's size as bytes/op.
func BenchmarkStatusPage(b *testing.B) {
	e := New(Options{})
	ts := make([]probe.Target, *scrapeTargets)
	for i := range ts {
		product, flow := fmt.Sprint("product-", i/100), fmt.Sprint("flow-", i%10)
		host := fmt.Sprintf("host-%d.example.org", i%100)
		ts[i] = probe.Target{ID: probe.MakeID(product, flow, host, 443, probe.TCP, "tcp"), Product: product,
			Flow: flow, Source: fmt.Sprint("role-", i%2), Destination: fmt.Sprint("role-", 2+i%3), Host: host, Port: 443, Protocol: probe.TCP, Check: "tcp", Interval: time.Minute}
	}
	e.Store().SetTargets(ts)
	for run := range HistoryLength {
		for i, t := range ts {
			r := probe.Result{Outcome: probe.OutcomeOK, Success: true, Start: start.Add(time.Duration(run) * time.Minute), Duration: time.Millisecond}
			if i%10 == 0 && run%3 == 0 {
				r = probe.Result{Outcome: probe.OutcomeRefused, Start: r.Start, Duration: time.Millisecond, Err: fmt.Errorf("dial tcp %s: connect: connection refused", t.Address())}
			}
			e.Store().Record(Record{Target: t, Result: r, Up: r.Success})
		}
	}
	h := e.Handler(HandlerOptions{Gatherer: prometheus.NewRegistry()})
	req := httptest.NewRequest("GET", "/", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := &countingWriter{header: http.Header{}}
		h.ServeHTTP(w, req)
		if w.code != http.StatusOK {
			b.Fatal(w.code)
		}
		b.SetBytes(w.n)
		b.ReportMetric(float64(w.n), "html-bytes")
	}
}
