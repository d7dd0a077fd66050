package exporter

import (
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowprobe/flowprobe/probe"
)

var scrapeTargets = flag.Int("scrape-targets", 10000, "targets of BenchmarkScrape")

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

// BenchmarkScrape serves /metrics for 10,000 targets with TLS values (a
// scrape of about 290,000 series); -args -scrape-targets N sets another
// count.
func BenchmarkScrape(b *testing.B) {
	e := New(Options{Stats: func() SchedulerStats { return SchedulerStats{LagBuckets: map[float64]uint64{}} }})
	if err := e.SetConstLabels("bench", nil); err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := e.Register(reg); err != nil {
		b.Fatal(err)
	}
	ts := make([]probe.Target, *scrapeTargets)
	for i := range ts {
		host := fmt.Sprintf("host-%d.example.org", i/10)
		ts[i] = probe.Target{ID: probe.MakeID("bench", fmt.Sprint("flow-", i%10), host, 443, probe.TCP, "tls"), Product: "bench",
			Flow: fmt.Sprint("flow-", i%10), Source: "a", Destination: "b", Host: host, Port: 443, Protocol: probe.TCP, Check: "tls", Interval: time.Minute}
	}
	e.Store().SetTargets(ts)
	for _, t := range ts {
		e.Store().Record(Record{Target: t, Result: okResult(), Up: true})
	}
	h := e.Handler(HandlerOptions{Gatherer: reg})
	req := httptest.NewRequest("GET", "/metrics", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := &countingWriter{header: http.Header{}}
		h.ServeHTTP(w, req)
		if w.code != http.StatusOK {
			b.Fatal(w.code)
		}
		b.SetBytes(w.n)
	}
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
