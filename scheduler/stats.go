package scheduler

import (
	"math"
	"sync/atomic"
	"time"
)

// LagBuckets are the upper bounds, in seconds, of the scheduler lag
// histogram: how late a run started against its planned time, including
// the wait for a concurrency slot.
var LagBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Stats is a point-in-time view of the scheduler for its self metrics.
type Stats struct {
	// Targets is the number of configured targets (running loops).
	Targets int
	// InFlight is the number of checks running right now.
	InFlight int
	// Lag is the histogram of start lags since the scheduler was created.
	Lag Histogram
}

// Histogram is a cumulative histogram in Prometheus' shape.
type Histogram struct {
	Count uint64
	Sum   float64 // seconds
	// Buckets maps each upper bound of LagBuckets to the cumulative count
	// of observations at or below it.
	Buckets map[float64]uint64
}

// lagHistogram counts observations lock-free; it is read at scrape time.
type lagHistogram struct {
	counts [len(lagBucketsNanos) + 1]atomic.Uint64 // last: above the largest bound
	sumNs  atomic.Int64
}

var lagBucketsNanos = func() [14]int64 {
	var b [14]int64
	for i, s := range LagBuckets {
		b[i] = int64(math.Round(s * 1e9))
	}
	return b
}()

func (h *lagHistogram) observe(d time.Duration) {
	if d < 0 {
		d = 0
	}
	i := 0
	for i < len(lagBucketsNanos) && int64(d) > lagBucketsNanos[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNs.Add(int64(d))
}

func (h *lagHistogram) snapshot() Histogram {
	out := Histogram{Buckets: make(map[float64]uint64, len(LagBuckets))}
	var cum uint64
	for i, ub := range LagBuckets {
		cum += h.counts[i].Load()
		out.Buckets[ub] = cum
	}
	out.Count = cum + h.counts[len(LagBuckets)].Load()
	out.Sum = float64(h.sumNs.Load()) / 1e9
	return out
}
