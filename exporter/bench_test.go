package exporter

import (
	"fmt"
	"io"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowprobe/flowprobe/probe"
)

// BenchmarkScrape serves /metrics for 10,000 targets with TLS values (a
// scrape of about 290,000 series).
func BenchmarkScrape(b *testing.B) {
	e := New(Options{Stats: func() SchedulerStats { return SchedulerStats{LagBuckets: map[float64]uint64{}} }})
	if err := e.SetConstLabels("bench", nil); err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := e.Register(reg); err != nil {
		b.Fatal(err)
	}
	ts := make([]probe.Target, 10000)
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
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
		b.SetBytes(int64(rec.Body.Len()))
		_, _ = io.Copy(io.Discard, rec.Body)
	}
}
