package exporter

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"

	"github.com/flowprobe/flowprobe/probe"
)

// Namespace prefixes every metric name.
const Namespace = "flowprobe"

// TargetLabels are the per-target label names, in order.
var TargetLabels = []string{"product", "flow", "source", "destination", "target", "protocol", "port", "check"}

// SchedulerStats is the scheduler's self-metric view, read at scrape time.
type SchedulerStats struct {
	Targets  int
	InFlight int
	// Lag is a cumulative histogram of run start lags in seconds.
	LagCount   uint64
	LagSum     float64
	LagBuckets map[float64]uint64
}

// Options are the collaborators of an Exporter.
type Options struct {
	// Stats returns the scheduler's figures; nil leaves the scheduler
	// metrics out.
	Stats func() SchedulerStats
	// Logger receives errors of the HTTP endpoints; nil discards them.
	Logger *slog.Logger
	// ValueHelp is the HELP text of the value metrics (Result.Values) by
	// value name, from the check registry; a value not in it gets a
	// generic HELP.
	ValueHelp map[string]string
	// ShardIndex and ShardCount, when ShardCount > 0, are exported as
	// flowprobe_shard_info{shard="i",shards="n"} 1: this replica runs
	// the targets whose ID hashes to shard i of n.
	ShardIndex, ShardCount int
}

// Exporter is the prometheus.Collector of flowprobe's metrics and the
// owner of the result store and the HTTP routes.
type Exporter struct {
	store     *Store
	stats     func() SchedulerStats
	shard     []string // label values of flowprobe_shard_info; nil without
	log       *slog.Logger
	valueHelp map[string]string

	descs atomic.Pointer[descSet]
	// self gathers build info and collectSelf for the text exposition,
	// which writes the per-target families itself.
	self *prometheus.Registry

	reloadMu      sync.Mutex
	reloadOK      bool
	reloadSuccess time.Time

	page pageState // the status page's reload errors (http.go)
}

// New returns an exporter with an empty store and no constant labels.
func New(opts Options) *Exporter {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Exporter{store: NewStore(), stats: opts.Stats, log: opts.Logger, valueHelp: opts.ValueHelp}
	if opts.ShardCount > 0 {
		e.shard = []string{strconv.Itoa(opts.ShardIndex), strconv.Itoa(opts.ShardCount)}
	}
	e.descs.Store(newDescSet(nil, e.valueHelp))
	e.self = prometheus.NewRegistry()
	e.self.MustRegister(versioncollector.NewCollector(Namespace), selfCollector{e})
	return e
}

// Store returns the exporter's result store: the scheduler's sink.
func (e *Exporter) Store() *Store { return e.store }

// SetConstLabels sets the labels every metric built by the collector
// carries: site (when not empty) and the config's extra labels. They apply
// from the next scrape on. Label names must be valid and must not reuse a
// per-target label or "outcome", "phase" or "site".
func (e *Exporter) SetConstLabels(site string, extra map[string]string) error {
	labels := prometheus.Labels{}
	reserved := append(slices.Clone(TargetLabels), "outcome", "phase", "site")
	for _, k := range slices.Sorted(maps.Keys(extra)) {
		if !model.LegacyValidation.IsValidLabelName(k) || strings.HasPrefix(k, "__") {
			return fmt.Errorf("set constant labels: %q is not a valid label name", k)
		}
		if slices.Contains(reserved, k) {
			return fmt.Errorf("set constant labels: %q is a label flowprobe sets itself", k)
		}
		labels[k] = extra[k]
	}
	if site != "" {
		labels["site"] = site
	}
	e.descs.Store(newDescSet(labels, e.valueHelp))
	return nil
}

// SetReloadStatus records the outcome of a configuration (re)load for
// flowprobe_config_last_reload_successful and its success timestamp. The
// errors of a failed one (errs) are shown on the status page until a
// reload succeeds.
func (e *Exporter) SetReloadStatus(ok bool, at time.Time, errs ...error) {
	e.page.setReload(ok, at, errs)
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	e.reloadOK = ok
	if ok {
		e.reloadSuccess = at
	}
}

// Register registers the exporter and flowprobe_build_info with reg.
func (e *Exporter) Register(reg prometheus.Registerer) error {
	if err := reg.Register(versioncollector.NewCollector(Namespace)); err != nil {
		return fmt.Errorf("register build info: %w", err)
	}
	if err := reg.Register(e); err != nil {
		return fmt.Errorf("register flowprobe collector: %w", err)
	}
	return nil
}

// metricFamily names and describes a per-target family.
type metricFamily struct {
	name, help, typ string
}

func (f metricFamily) fqName() string { return prometheus.BuildFQName(Namespace, "", f.name) }

// desc returns the family's descriptor: the target labels, then extra.
func (f metricFamily) desc(constLabels prometheus.Labels, extra ...string) *prometheus.Desc {
	return prometheus.NewDesc(f.fqName(), f.help, append(slices.Clone(TargetLabels), extra...), constLabels)
}

// The per-target families.
var (
	famSuccess        = metricFamily{"check_success", "1 if the flow passes (judged against its expectation, after the failure threshold), else 0.", "gauge"}
	famExpectDeny     = metricFamily{"check_expect_deny", "1 if the flow must be blocked (expect: deny), else 0.", "gauge"}
	famOutcome        = metricFamily{"check_outcome", "Outcome of the latest run, one-hot over every outcome (not debounced).", "gauge"}
	famDuration       = metricFamily{"check_duration_seconds", "Duration of the latest run in seconds.", "gauge"}
	famPhase          = metricFamily{"check_phase_duration_seconds", "Duration of each phase of the latest run that went through it, in seconds.", "gauge"}
	famRuns           = metricFamily{"checks_total", "Runs of the check since the target was configured.", "counter"}
	famFailures       = metricFamily{"check_failures_total", "Failed runs (verdict false) of the check since the target was configured, by outcome.", "counter"}
	famLastRun        = metricFamily{"check_last_run_timestamp_seconds", "Start of the latest run as a Unix timestamp.", "gauge"}
	famConsecFailures = metricFamily{"check_consecutive_failures", "Failed runs since the last passing one.", "gauge"}
	famBlockedHop     = metricFamily{"path_blocked_hop", "Hop (TTL) at which the latest automatic path trace of the failed flow stops: the first silent or rejecting hop; 0 when the flow's packet reached the destination. Only for failed targets with a trace.", "gauge"}
	famLastHop        = metricFamily{"path_last_hop_info", "Always 1: hop_address is the last router that answered the latest automatic path trace of the failed flow with Time Exceeded. Only for failed targets whose trace got such an answer.", "gauge"}
)

// descSet holds the descriptors for one set of constant labels; a reload
// that changes the labels swaps the whole set.
type descSet struct {
	constLabels prometheus.Labels
	constPairs  []*dto.LabelPair // constLabels sorted by name

	success, expectDeny, outcome, duration, phase, runs, failures, lastRun, consecFailures *prometheus.Desc
	blockedHop, lastHop                                                                    *prometheus.Desc
	reloadOK, reloadTime, lag, inFlight, targets, shard                                    *prometheus.Desc

	valueHelp map[string]string
	valuesMu  sync.Mutex
	values    map[string]*prometheus.Desc
}

func newDescSet(constLabels prometheus.Labels, valueHelp map[string]string) *descSet {
	name := func(n string) string { return prometheus.BuildFQName(Namespace, "", n) }
	self := func(n, help string) *prometheus.Desc { return prometheus.NewDesc(name(n), help, nil, constLabels) }
	return &descSet{
		constLabels:    constLabels,
		constPairs:     sortedConstPairs(constLabels),
		success:        famSuccess.desc(constLabels),
		expectDeny:     famExpectDeny.desc(constLabels),
		outcome:        famOutcome.desc(constLabels, "outcome"),
		duration:       famDuration.desc(constLabels),
		phase:          famPhase.desc(constLabels, "phase"),
		runs:           famRuns.desc(constLabels),
		failures:       famFailures.desc(constLabels, "outcome"),
		lastRun:        famLastRun.desc(constLabels),
		consecFailures: famConsecFailures.desc(constLabels),
		blockedHop:     famBlockedHop.desc(constLabels),
		lastHop:        famLastHop.desc(constLabels, hopLabel),
		reloadOK:       self("config_last_reload_successful", "1 if the last configuration load or reload succeeded, else 0."),
		reloadTime:     self("config_last_reload_success_timestamp_seconds", "Time of the last successful configuration load or reload, as a Unix timestamp."),
		lag:            self("scheduler_lag_seconds", "How late runs started against their planned time, including the wait for a concurrency slot."),
		inFlight:       self("checks_in_flight", "Checks running right now."),
		targets:        self("targets", "Targets configured."),
		shard: prometheus.NewDesc(name("shard_info"), "Always 1: this replica runs the targets whose ID hashes to shard (of shards), see --shard.",
			[]string{"shard", "shards"}, constLabels),
		values:    map[string]*prometheus.Desc{},
		valueHelp: valueHelp,
	}
}

// value returns the descriptor of a Result.Values metric, or nil if the
// name cannot be a metric name.
func (d *descSet) value(n string) *prometheus.Desc {
	d.valuesMu.Lock()
	defer d.valuesMu.Unlock()
	if desc, ok := d.values[n]; ok {
		return desc
	}
	fq := prometheus.BuildFQName(Namespace, "", n)
	var desc *prometheus.Desc
	if model.UTF8Validation.IsValidMetricName(fq) && model.LegacyValidation.IsValidMetricName(fq) {
		desc = prometheus.NewDesc(fq, d.help(n), TargetLabels, d.constLabels)
	}
	d.values[n] = desc
	return desc
}

// help is the HELP text of a Result.Values metric.
func (d *descSet) help(n string) string {
	if help, ok := d.valueHelp[n]; ok {
		return help
	}
	return "Value " + n + " reported by the check."
}

// Describe sends nothing: the metric set depends on the checks' values and
// on reloadable constant labels, so the exporter is an unchecked collector.
func (e *Exporter) Describe(chan<- *prometheus.Desc) {}

// Collect builds every metric from a snapshot of the store.
//
// The registry sorts each family's series by label values; Collect sends
// them already in that order, which makes the sort a linear pass.
func (e *Exporter) Collect(ch chan<- prometheus.Metric) {
	d := e.descs.Load()

	entries := e.store.results() // no series until the first run: a pending flow is not a failed one
	rows := make([]row, len(entries))
	for i := range entries {
		en := &entries[i]
		rows[i] = row{e: en, labels: en.labels.get(d, &en.Target)}
	}
	slices.SortFunc(rows, compareRows)

	w := &seriesWriter{ch: ch}
	for _, rw := range rows {
		en, r, lp := rw.e, &rw.e.Result, rw.labels.pairs
		w.gauge(d.success, b2f(en.Up), lp)
		w.gauge(d.expectDeny, b2f(en.Target.Expect == probe.ExpectDeny), lp)
		w.gauge(d.duration, r.Duration.Seconds(), lp)
		w.counter(d.runs, float64(en.Runs), lp)
		w.gauge(d.lastRun, unixSeconds(r.Start), lp)
		w.gauge(d.consecFailures, float64(en.ConsecutiveFailures), lp)
	}

	// Series with an outcome or phase label: in label order the extra
	// label comes before some target labels, so within a run of targets
	// that agree up to it, the extra label's value varies slowest.
	groups(rows, outcomePrefix, func(g []row) {
		n := len(outcomeLabel)
		width := len(g[0].labels.pairs) + 1
		buf := make([]*dto.LabelPair, 0, len(g)*n*width)
		for _, rw := range g {
			for _, p := range outcomeLabel {
				buf = rw.labels.appendWith(buf, p, rw.labels.outcomeAt)
			}
		}
		for _, o := range outcomeOrder {
			for i, rw := range g {
				at := (i*n + o) * width
				lp := buf[at : at+width : at+width]
				w.gauge(d.outcome, b2f(int(rw.e.Result.Outcome) == o), lp)
				w.counter(d.failures, float64(rw.e.Failures[o]), lp)
			}
		}
	})
	groups(rows, phasePrefix, func(g []row) {
		var buf []*dto.LabelPair
		for _, p := range phaseOrder {
			for _, rw := range g {
				dur := rw.e.Result.Phases[p]
				if dur <= 0 {
					continue
				}
				if buf == nil {
					buf = make([]*dto.LabelPair, 0, len(g)*len(phaseLabel)*(len(rw.labels.pairs)+1))
				}
				n := len(buf)
				buf = rw.labels.appendWith(buf, phaseLabel[p], rw.labels.phaseAt)
				w.gauge(d.phase, dur.Seconds(), buf[n:len(buf):len(buf)])
			}
		}
	})
	var hops []row
	for _, rw := range rows {
		if rw.e.Trace.Traced() {
			w.gauge(d.blockedHop, float64(rw.e.Trace.Trace.BlockedHop), rw.labels.pairs)
		}
		if lastHop(rw.e) != "" {
			hops = append(hops, rw)
		}
	}
	sortByHop(hops, func(r row) []string { return r.labels.values }, func(r row) *Entry { return r.e })
	for _, rw := range hops {
		pair := &dto.LabelPair{Name: new(hopLabel), Value: new(lastHop(rw.e))}
		w.gauge(d.lastHop, 1, rw.labels.appendWith(nil, pair, rw.labels.hopAt))
	}
	// Values last: should a check report a value under the name of one of
	// the metrics above, the registry keeps the first family it saw.
	for _, rw := range rows {
		for n, v := range rw.e.Result.Values {
			if desc := d.value(n); desc != nil {
				w.gauge(desc, v, rw.labels.pairs)
			}
		}
	}

	e.collectSelf(ch, d)
}

// selfCollector collects the exporter's metrics that are not per target.
type selfCollector struct{ e *Exporter }

func (selfCollector) Describe(chan<- *prometheus.Desc) {}

func (c selfCollector) Collect(ch chan<- prometheus.Metric) { c.e.collectSelf(ch, c.e.descs.Load()) }

// collectSelf sends the metrics about flowprobe itself: reload status and
// scheduler figures.
func (e *Exporter) collectSelf(ch chan<- prometheus.Metric, d *descSet) {
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
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
	if e.shard != nil {
		gauge(d.shard, 1, e.shard...)
	}

	if e.stats != nil {
		st := e.stats()
		ch <- prometheus.MustNewConstHistogram(d.lag, st.LagCount, st.LagSum, st.LagBuckets)
		gauge(d.inFlight, float64(st.InFlight))
		gauge(d.targets, float64(st.Targets))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// unixSeconds converts t to Unix seconds without the rounding error of
// dividing nanoseconds.
func unixSeconds(t time.Time) float64 {
	return float64(t.Unix()) + float64(t.Nanosecond())/1e9
}
