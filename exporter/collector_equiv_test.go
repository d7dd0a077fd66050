package exporter

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/report"
)

// referenceCollector builds the exporter's metrics the straightforward
// way, with prometheus.MustNewConstMetric for every series: the
// specification the collector's prebuilt label pairs must match.
type referenceCollector struct{ e *Exporter }

func (referenceCollector) Describe(chan<- *prometheus.Desc) {}

func (c referenceCollector) Collect(ch chan<- prometheus.Metric) {
	e := c.e
	d := e.descs.Load()
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	counter := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, v, labels...)
	}
	for _, en := range e.store.Snapshot() {
		if !en.HasResult {
			continue
		}
		t, r := &en.Target, &en.Result
		port := ""
		if t.Port != 0 {
			port = fmt.Sprint(t.Port)
		}
		lv := []string{t.Product, t.Flow, t.Source, t.Destination, t.Address(), string(t.Protocol), port, t.Check}
		with := func(extra string) []string { return append(slices.Clone(lv), extra) }
		gauge(d.success, b2f(en.Up), lv...)
		gauge(d.expectDeny, b2f(t.Expect == probe.ExpectDeny), lv...)
		for _, o := range probe.Outcomes() {
			gauge(d.outcome, b2f(r.Outcome == o), with(o.String())...)
			counter(d.failures, float64(en.Failures[o]), with(o.String())...)
		}
		gauge(d.duration, r.Duration.Seconds(), lv...)
		for p, dur := range r.Phases {
			if dur > 0 {
				gauge(d.phase, dur.Seconds(), with(probe.Phase(p).String())...)
			}
		}
		counter(d.runs, float64(en.Runs), lv...)
		gauge(d.lastRun, unixSeconds(r.Start), lv...)
		gauge(d.consecFailures, float64(en.ConsecutiveFailures), lv...)
		if en.Trace.Traced() {
			gauge(d.blockedHop, float64(en.Trace.Trace.BlockedHop), lv...)
			if hop := en.Trace.Trace.LastHop; hop != "" {
				gauge(d.lastHop, 1, with(hop)...)
			}
		}
		for _, n := range slices.Sorted(maps.Keys(r.Values)) {
			if desc := d.value(n); desc != nil {
				gauge(desc, r.Values[n], lv...)
			}
		}
	}
	e.reloadMu.Lock()
	ok, at := e.reloadOK, e.reloadSuccess
	e.reloadMu.Unlock()
	gauge(d.reloadOK, b2f(ok))
	var ts float64
	if !at.IsZero() {
		ts = unixSeconds(at)
	}
	gauge(d.reloadTime, ts)
	if e.stats != nil {
		st := e.stats()
		ch <- prometheus.MustNewConstHistogram(d.lag, st.LagCount, st.LagSum, st.LagBuckets)
		gauge(d.inFlight, float64(st.InFlight))
		gauge(d.targets, float64(st.Targets))
	}
}

// expositions gathers c through a fresh registry and returns its text,
// OpenMetrics and delimited protobuf expositions.
func expositions(t *testing.T, cs ...prometheus.Collector) map[string]string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			t.Fatal(err)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]string{}
	for name, f := range map[string]expfmt.Format{
		"text":        expfmt.NewFormat(expfmt.TypeTextPlain),
		"openmetrics": expfmt.NewFormat(expfmt.TypeOpenMetrics),
		"protobuf":    expfmt.NewFormat(expfmt.TypeProtoDelim),
	} {
		var buf bytes.Buffer
		enc := expfmt.NewEncoder(&buf, f)
		for _, mf := range mfs {
			if err := enc.Encode(mf); err != nil {
				t.Fatalf("encode %s: %v", name, err)
			}
		}
		if cl, ok := enc.(expfmt.Closer); ok {
			if err := cl.Close(); err != nil {
				t.Fatal(err)
			}
		}
		out[name] = buf.String()
	}
	return out
}

// assertSameAsReference fails unless e exposes byte for byte what
// referenceCollector does, in every exposition format.
func assertSameAsReference(t *testing.T, e *Exporter, wantSeries int) {
	t.Helper()
	want := expositions(t, referenceCollector{e})
	for range 2 { // the second scrape uses the cached label pairs
		got := expositions(t, e)
		for format := range want {
			if got[format] != want[format] {
				t.Fatalf("%s exposition differs from MustNewConstMetric's:\n--- got\n%s\n--- want\n%s", format, got[format], want[format])
			}
		}
	}
	if n := testutil.CollectAndCount(e); n != wantSeries {
		t.Fatalf("%d series, want %d", n, wantSeries)
	}
	assertTextSameAsReference(t, e)
}

// assertTextSameAsReference fails unless the directly written text
// exposition is byte for byte the registry's text exposition of
// referenceCollector and the build info.
func assertTextSameAsReference(t *testing.T, e *Exporter) {
	t.Helper()
	want := expositions(t, referenceCollector{e}, versioncollector.NewCollector(Namespace))["text"]
	for range 2 { // the second scrape uses the cached label blocks
		var got bytes.Buffer
		if err := e.writeText(&got, func(string) bool { return true }); err != nil {
			t.Fatal(err)
		}
		if got.String() != want {
			t.Fatalf("text exposition differs from the registry's:\n--- got\n%s\n--- want\n%s", got.String(), want)
		}
	}
}

// variedTargets returns n targets whose labels share prefixes in every
// way the exposition's sort can see: same check, destination and flow with
// other ports (which sort as strings), products and hosts; ICMP targets
// without a port; IPv6 addresses.
func variedTargets(n int, rng *rand.Rand) []probe.Target {
	pick := func(s ...string) string { return s[rng.IntN(len(s))] }
	seen := map[string]bool{}
	var ts []probe.Target
	for len(ts) < n {
		t := probe.Target{
			Product: pick("sios-lifekeeper", "acme-db", "zeta"), Flow: pick("ldap", "ping", "web", "repl"),
			Source: pick("node", "admin", "a"), Destination: pick("directory", "node", "b"),
			Host:     pick("dc1.example.org", "192.0.2.7", "2001:db8::1", "web.example.com", fmt.Sprintf("h%d.example.org", rng.IntN(5))),
			Protocol: probe.TCP, Port: []int{22, 80, 443, 636, 6910, 8080}[rng.IntN(6)], Check: pick("tcp", "tls", "ldap", "http"),
			Interval: time.Minute,
		}
		if rng.IntN(5) == 0 {
			t.Protocol, t.Port, t.Check = probe.ICMP, 0, "icmp"
		}
		if rng.IntN(4) == 0 {
			t.Expect = probe.ExpectDeny
		}
		t.ID = probe.MakeID(t.Product, t.Flow, t.Host, t.Port, t.Protocol, t.Check)
		if !seen[t.ID] {
			seen[t.ID] = true
			ts = append(ts, t)
		}
	}
	return ts
}

// variedResult returns a result with a random outcome, a random subset of
// phases and of values (one of them not a valid metric name).
func variedResult(rng *rand.Rand) probe.Result {
	o := probe.Outcome(rng.IntN(len(probe.Outcomes())))
	r := probe.Result{Outcome: o, Success: o == probe.OutcomeOK, Start: start.Add(time.Duration(rng.IntN(1e9))),
		Duration: time.Duration(rng.IntN(5e9))}
	for p := range r.Phases {
		if rng.IntN(2) == 0 {
			r.Phases[p] = time.Duration(1 + rng.IntN(1e8))
		}
	}
	for _, n := range []string{"tls_cert_expiry_timestamp_seconds", "http_status_code", "icmp_rtt_seconds", "custom_value", "not-a-name"} {
		if rng.IntN(2) == 0 {
			r.SetValue(n, rng.Float64()*1e9)
		}
	}
	return r
}

// recordRuns records 1 to 4 runs of each target, with consistent
// verdicts and failure counts.
func recordRuns(s *Store, ts []probe.Target, rng *rand.Rand) {
	for _, t := range ts {
		consec := 0
		for range 1 + rng.IntN(4) {
			r := variedResult(rng)
			if r.Success {
				consec = 0
			} else {
				consec++
			}
			s.Record(Record{Target: t, Result: r, Up: consec < 2, ConsecutiveFailures: consec})
		}
		if consec >= 2 {
			s.SetTrace(t, start, variedTrace(rng))
		}
	}
}

// variedTrace returns a trace whose last hop sorts before, between and
// after the target labels' values, or that has no last hop, or that could
// not run.
func variedTrace(rng *rand.Rand) report.Trace {
	hops := []string{"", "10.0.0.1", "10.0.0.9", "2001:db8::1", "zz", "a\"b"}
	switch rng.IntN(5) {
	case 0:
		return report.TraceError("tcp/389", "192.0.2.10", errors.New("no route"))
	case 1:
		return report.Trace{Probe: "tcp/389", Reached: true, Paths: []report.TracePath{{Probe: "tcp/389"}}}
	}
	return report.Trace{Probe: "tcp/389", BlockedHop: 1 + rng.IntN(5), LastHop: hops[rng.IntN(len(hops))], Paths: []report.TracePath{{Probe: "tcp/389"}}}
}

// seriesPerTarget counts the series of targets with results.
func seriesPerTarget(e *Exporter) int {
	n := 0
	for _, en := range e.store.Snapshot() {
		if !en.HasResult {
			continue
		}
		n += 6 + 2*len(probe.Outcomes())
		if en.Trace.Traced() {
			n++
			if en.Trace.Trace.LastHop != "" {
				n++
			}
		}
		for _, d := range en.Result.Phases {
			if d > 0 {
				n++
			}
		}
		for v := range en.Result.Values {
			if v != "not-a-name" {
				n++
			}
		}
	}
	return n
}

func TestCollectMatchesConstMetrics(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	e := New(Options{Stats: func() SchedulerStats {
		return SchedulerStats{Targets: 3, InFlight: 1, LagCount: 2, LagSum: 0.25, LagBuckets: map[float64]uint64{0.1: 2}}
	}})
	e.SetReloadStatus(true, start)
	// Constant labels before, between and after the target labels, and
	// between "outcome" and "phase".
	if err := e.SetConstLabels("berlin", map[string]string{"area": "eu", "owner": "ops", "zone": "z1"}); err != nil {
		t.Fatal(err)
	}
	s := e.Store()
	all := variedTargets(340, rng)
	ts := all[:300]
	s.SetTargets(ts)
	recordRuns(s, ts[:250], rng) // the rest stay pending
	const self = 2 + 3           // reload status, in-flight and targets gauges; the lag histogram counts as one
	assertSameAsReference(t, e, seriesPerTarget(e)+self)
	text := expositions(t, e)["text"]
	for _, want := range []string{`flowprobe_path_blocked_hop{`, `hop_address="a\"b"`, `hop_address="2001:db8::1"`} {
		if !strings.Contains(text, want) {
			t.Fatalf("no %s in the exposition: the trace families are not exercised", want)
		}
	}

	// A reload: other constant labels, a third of the targets gone, one
	// with new options (it starts over), one with another source label
	// (likewise), and new targets.
	if err := e.SetConstLabels("", map[string]string{"team": "net"}); err != nil {
		t.Fatal(err)
	}
	next := slices.Clone(ts[100:])
	next[0].Options = &secretOptions{BindDN: "cn=changed"}
	next[1].Source = "elsewhere"
	next = append(next, all[300:]...)
	s.SetTargets(next)
	assertSameAsReference(t, e, seriesPerTarget(e)+self)
	recordRuns(s, next[len(next)-40:], rng)
	recordRuns(s, next[:2], rng)
	assertSameAsReference(t, e, seriesPerTarget(e)+self)

	if err := e.SetConstLabels("", nil); err != nil {
		t.Fatal(err)
	}
	assertSameAsReference(t, e, seriesPerTarget(e)+self)
}

func TestCollectLint(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	e := New(Options{})
	if err := e.SetConstLabels("berlin", map[string]string{"owner": "ops"}); err != nil {
		t.Fatal(err)
	}
	ts := variedTargets(30, rng) // the linter's duplicate check is quadratic
	e.Store().SetTargets(ts)
	recordRuns(e.Store(), ts, rng)
	problems, err := testutil.CollectAndLint(e)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// TestCollectConcurrentWithUpdates scrapes while results are recorded and
// targets and constant labels are reloaded; run it with -race. Every
// scrape must be consistent, and the final one must match the reference.
func TestCollectConcurrentWithUpdates(t *testing.T) {
	e := New(Options{})
	s := e.Store()
	ts := variedTargets(200, rand.New(rand.NewPCG(3, 4)))
	s.SetTargets(ts)
	reg := prometheus.NewRegistry()
	if err := reg.Register(e); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 2 { // concurrent scrapes
		wg.Go(func() {
			for range 20 {
				if _, err := reg.Gather(); err != nil {
					errs <- fmt.Errorf("scraper %d: %w", g, err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(5, 6))
		for range 5 {
			recordRuns(s, ts, rng)
		}
	})
	wg.Go(func() {
		for i := range 20 {
			if err := e.SetConstLabels(fmt.Sprint("site-", i%3), nil); err != nil {
				errs <- err
				return
			}
			if i%2 == 0 {
				s.SetTargets(ts[:150])
			} else {
				s.SetTargets(ts)
			}
		}
	})
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	if err := errors.Join(all...); err != nil {
		t.Fatal(err)
	}
	assertSameAsReference(t, e, seriesPerTarget(e)+2)
}

// TestCollectSendsSeriesSorted checks what keeps large scrapes cheap: every
// series carries its labels sorted by name (else the registry copies and
// sorts them), and each family's series arrive in the order the registry
// sorts them into (so its sort is a single pass).
func TestCollectSendsSeriesSorted(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	e := New(Options{})
	if err := e.SetConstLabels("berlin", map[string]string{"area": "eu", "owner": "ops"}); err != nil {
		t.Fatal(err)
	}
	ts := variedTargets(300, rng)
	e.Store().SetTargets(ts)
	recordRuns(e.Store(), ts, rng)

	ch := make(chan prometheus.Metric)
	go func() { e.Collect(ch); close(ch) }()
	last := map[*prometheus.Desc][]*dto.LabelPair{}
	n := 0
	for m := range ch {
		var out dto.Metric
		if err := m.Write(&out); err != nil {
			t.Fatal(err)
		}
		if !slices.IsSortedFunc(out.Label, func(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) }) {
			t.Fatalf("%s: labels not sorted by name: %v", m.Desc(), out.Label)
		}
		if prev, ok := last[m.Desc()]; ok {
			if slices.CompareFunc(prev, out.Label, func(a, b *dto.LabelPair) int { return strings.Compare(a.GetValue(), b.GetValue()) }) >= 0 {
				t.Fatalf("%s: series %v sent after %v", m.Desc(), out.Label, prev)
			}
		}
		last[m.Desc()] = out.Label
		n++
	}
	if want := seriesPerTarget(e) + 2; n != want {
		t.Fatalf("collected %d series, want %d", n, want)
	}
}

// TestFilteredScrapeServesOnlyTheRequestedFamilies asks /metrics for some
// families by name[] and gets exactly those families of the full text
// exposition; the protobuf format, served by the registry, has them too.
func TestFilteredScrapeServesOnlyTheRequestedFamilies(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	e := New(Options{Stats: func() SchedulerStats { return SchedulerStats{Targets: 3, LagBuckets: map[float64]uint64{}} }})
	reg := prometheus.NewRegistry()
	if err := e.Register(reg); err != nil {
		t.Fatal(err)
	}
	ts := variedTargets(50, rng)
	e.Store().SetTargets(ts)
	recordRuns(e.Store(), ts, rng)
	h := e.Handler(HandlerOptions{Gatherer: reg})

	_, full, _ := get(t, h, "GET", "/metrics")
	families := map[string]string{} // name -> its block of the full exposition
	for _, block := range strings.SplitAfter(full, "# HELP ")[1:] {
		name, _, _ := strings.Cut(block, " ")
		families[name] += "# HELP " + strings.TrimSuffix(block, "# HELP ")
	}
	for _, want := range []string{"flowprobe_check_success", "flowprobe_check_outcome", "flowprobe_targets", "flowprobe_check_phase_duration_seconds"} {
		if families[want] == "" {
			t.Fatalf("the full exposition lacks %s", want)
		}
	}
	names := []string{"flowprobe_check_success", "flowprobe_targets", "flowprobe_check_outcome", "flowprobe_no_such_metric"}
	code, got, hdr := get(t, h, "GET", "/metrics?name[]="+strings.Join(names, "&name[]="))
	want := families["flowprobe_check_outcome"] + families["flowprobe_check_success"] + families["flowprobe_targets"]
	if code != 200 || got != want {
		t.Fatalf("filtered scrape: %d\n%s\nwant\n%s", code, got, want)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q, want the text format", ct)
	}
}
