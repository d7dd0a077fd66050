package exporter

import (
	"sync"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

// HistoryLength is how many recent runs the status page and the JSON API
// show per target.
const HistoryLength = 30

// HistoryPoint is one past run of a target, as /api/v1/results lists it.
type HistoryPoint struct {
	Time    time.Time     `json:"time"`
	Outcome probe.Outcome `json:"outcome"`
	// Success is the run's own verdict (before the failure threshold).
	Success bool `json:"success"`
	// Duration is the run's duration in seconds.
	Duration float64 `json:"duration"`
}

// point is a compact HistoryPoint: 24 bytes, so 30 runs of 50,000
// targets cost about 36 MB.
type point struct {
	unixNano int64
	dur      time.Duration
	outcome  probe.Outcome
	success  bool
}

// ring is a fixed-size ring of one target's recent runs, oldest first
// from next once full.
type ring struct {
	pts  []point
	next int // the oldest point once the ring is full
}

// history keeps the last HistoryLength runs of every configured target,
// keyed by target ID, in memory only. It has its own lock, taken inside the
// store's (never the other way round), so readers of the history do not
// wait for scrapes.
type history struct {
	mu    sync.Mutex
	rings map[string]*ring
}

// add appends a run to the target's ring.
func (h *history) add(r Record) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.rings == nil {
		h.rings = map[string]*ring{}
	}
	rg := h.rings[r.Target.ID]
	if rg == nil {
		rg = &ring{pts: make([]point, 0, HistoryLength)}
		h.rings[r.Target.ID] = rg
	}
	p := point{unixNano: r.Result.Start.UnixNano(), dur: r.Result.Duration, outcome: r.Result.Outcome, success: r.Result.Success}
	if len(rg.pts) < HistoryLength {
		rg.pts = append(rg.pts, p)
		return
	}
	rg.pts[rg.next] = p
	rg.next = (rg.next + 1) % HistoryLength
}

// keep drops the rings of targets that are no longer configured, and of
// targets whose settings changed: the store starts those over with a new
// entry without runs, and their old runs judged other settings.
func (h *history) keep(entries map[string]*Entry) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id := range h.rings {
		if e := entries[id]; e == nil || e.Runs == 0 {
			delete(h.rings, id)
		}
	}
}

// get returns the runs of one target, oldest first.
func (h *history) get(id string) []HistoryPoint {
	h.mu.Lock()
	defer h.mu.Unlock()
	rg := h.rings[id]
	if rg == nil {
		return nil
	}
	out := make([]HistoryPoint, 0, len(rg.pts))
	for i := range rg.pts {
		p := rg.pts[(rg.next+i)%len(rg.pts)]
		out = append(out, HistoryPoint{Time: time.Unix(0, p.unixNano).UTC(), Outcome: p.outcome, Success: p.success, Duration: p.dur.Seconds()})
	}
	return out
}

// History returns the recent runs of a target, oldest first: at most
// HistoryLength of them.
func (s *Store) History(id string) []HistoryPoint { return s.hist.get(id) }
