package exporter

import (
	"bufio"
	"context"
	"fmt"
	"hash/fnv"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/scheduler"
)

// countingSink feeds the store and counts the runs it recorded.
type countingSink struct {
	s    *Store
	n    atomic.Int64
	tick chan struct{}
}

func (c *countingSink) SetTargets(ts []probe.Target) { c.s.SetTargets(ts) }

func (c *countingSink) Record(st scheduler.Status) {
	c.s.Record(Record{Target: st.Target, Result: st.Result, Up: st.Up, ConsecutiveFailures: st.ConsecutiveFailures})
	c.n.Add(1)
	select {
	case c.tick <- struct{}{}:
	default:
	}
}

// wait blocks until n runs were recorded.
func (c *countingSink) wait(t *testing.T, n int64) {
	t.Helper()
	failsafe := time.NewTimer(2 * time.Minute)
	defer failsafe.Stop()
	for c.n.Load() < n {
		select {
		case <-c.tick:
		case <-failsafe.C:
			t.Fatalf("%d runs recorded, want %d", c.n.Load(), n)
		}
	}
}

// seriesKeys returns a hash of every series of a full scrape (name and
// labels, not the value), but for those that contain skip.
func seriesKeys(t *testing.T, e *Exporter, skip string) map[uint64]string {
	t.Helper()
	rec := httptest.NewRecorder()
	e.Handler(HandlerOptions{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	out := map[uint64]string{}
	sc := bufio.NewScanner(rec.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || strings.Contains(line, skip) {
			continue
		}
		key := line[:strings.LastIndexByte(line, ' ')]
		h := fnv.New64a()
		h.Write([]byte(key))
		out[h.Sum64()] = ""
	}
	return out
}

// 10,000 targets whose decoded options never compare equal (a CA pool)
// run through the scheduler into the store, with a reload of the same
// targets every few thousand runs: no target loses its runs, its last
// result or its failure count, and no series leaves /metrics. Skipped with
// -short; ./test.sh runs it.
func TestSoakReloadKeepsTheStateOfTenThousandTargets(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test; runs without -short (./test.sh)")
	}
	const n, reloadEvery, reloads = 10_000, 5_000, 4
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// plan builds the targets as a reload does: options decoded anew, the
	// fingerprint from the raw options and the CA file. The variant adds
	// a target, so the set differs from one reload to the next.
	extraHost := fmt.Sprintf(`"host-%d.example.org`, n/10) // the target only the variant has
	plan := func(variant bool) []probe.Target {
		var fp probe.Fingerprinter
		ts := make([]probe.Target, 0, n+1)
		for i := range n + 1 {
			if i == n && !variant {
				break
			}
			host := fmt.Sprintf("host-%d.example.org", i/10)
			flow := fmt.Sprint("flow-", i%10)
			tg := probe.Target{ID: probe.MakeID("soak", flow, host, 443, probe.TCP, "tls"), Product: "soak", Flow: flow,
				Source: "a", Destination: "b", Host: host, Port: 443, Protocol: probe.TCP, Check: "tls",
				Interval: 2 * time.Second, Timeout: 100 * time.Millisecond, Options: &caOptions{pool: func() {}}}
			tg.Fingerprint = fp.Of(&tg, map[string]any{"ca_file": ca, "server_name": host})
			ts = append(ts, tg)
		}
		return ts
	}
	checker := probe.CheckerFunc(func(_ context.Context, tg probe.Target) probe.Result {
		if strings.HasSuffix(tg.Flow, "-3") {
			return probe.Result{Outcome: probe.OutcomeRefused}
		}
		return okResult()
	})
	e := New(Options{})
	sink := &countingSink{s: e.Store(), tick: make(chan struct{}, 1)}
	sched := scheduler.New(scheduler.Config{FailuresBeforeDown: 3}, checker, scheduler.Options{Sink: sink})
	defer sched.Close()
	sched.Update(plan(false))

	type state struct {
		runs, failures uint64
		consecutive    int
		start          time.Time
	}
	snapshot := func() map[string]state {
		out := make(map[string]state, n)
		for _, en := range e.Store().Snapshot() {
			if en.HasResult {
				out[en.Target.ID] = state{en.Runs, en.Failures[probe.OutcomeRefused], en.ConsecutiveFailures, en.Result.Start}
			}
		}
		return out
	}
	sink.wait(t, n)
	series := seriesKeys(t, e, extraHost)
	for r := range reloads {
		sink.wait(t, int64(n+(r+1)*reloadEvery))
		before := snapshot()
		sched.Update(plan(r%2 == 0))
		after := snapshot()
		for id, b := range before {
			a, ok := after[id]
			switch {
			case !ok && strings.Contains(id, extraHost[1:]):
				// the variant's own target, removed
			case !ok:
				t.Fatalf("reload %d: %s lost its last result", r+1, id)
			case a.runs < b.runs || a.failures < b.failures || a.consecutive < b.consecutive || a.start.Before(b.start):
				t.Fatalf("reload %d: %s went back from %+v to %+v", r+1, id, b, a)
			}
		}
		next := seriesKeys(t, e, extraHost)
		for k := range series {
			if _, ok := next[k]; !ok {
				t.Fatalf("reload %d: a series left /metrics (%d series before, %d after)", r+1, len(series), len(next))
			}
		}
		series = next
	}
	t.Logf("%d targets, %d runs, %d reloads, %d series kept", n, sink.n.Load(), reloads, len(series))
}
