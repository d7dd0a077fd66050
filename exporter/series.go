package exporter

import (
	"cmp"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/flowprobe/flowprobe/probe"
)

// A scrape of a large instance carries hundreds of thousands of per-target
// series. prometheus.NewConstMetric builds and sorts the label pairs of
// every series anew and allocates several objects per series; the types
// here build the label pairs of a target once (per set of constant labels)
// and hand them to the registry as they are: it treats them as immutable.

// sortedLabelNames are TargetLabels in the order the exposition lists them:
// sorted by name.
var sortedLabelNames = func() []string { return slices.Sorted(slices.Values(TargetLabels)) }()

// sortedIndex maps a position in TargetLabels to one in sortedLabelNames.
var sortedIndex = func() []int {
	idx := make([]int, len(TargetLabels))
	for i, n := range TargetLabels {
		idx[i] = slices.Index(sortedLabelNames, n)
	}
	return idx
}()

var (
	outcomeLabel = labelPairs("outcome", len(probe.Outcomes()), func(i int) string { return probe.Outcome(i).String() })
	phaseLabel   = labelPairs("phase", int(probe.NumPhases), func(i int) string { return probe.Phase(i).String() })

	// outcomeOrder and phaseOrder list the indices of outcomeLabel and
	// phaseLabel in the order of their values.
	outcomeOrder = valueOrder(outcomeLabel)
	phaseOrder   = valueOrder(phaseLabel)

	// outcomePrefix and phasePrefix count the target labels that sort
	// before "outcome" and "phase": the series of one target with another
	// outcome or phase come between those of targets that differ only in
	// a later label.
	outcomePrefix = labelsBefore("outcome")
	phasePrefix   = labelsBefore("phase")
	hopPrefix     = labelsBefore(hopLabel)
)

// hopLabel names the address label of flowprobe_path_last_hop_info.
const hopLabel = "hop_address"

// lastHop returns the address of the last answering hop of an entry's
// trace, "" when it has none.
func lastHop(en *Entry) string {
	if !en.Trace.Traced() {
		return ""
	}
	return en.Trace.Trace.LastHop
}

// sortByHop sorts rows whose series carry a hop_address as the exposition
// orders them: that label comes between the target labels.
func sortByHop[R any](rows []R, values func(R) []string, en func(R) *Entry) {
	k := hopPrefix
	slices.SortFunc(rows, func(a, b R) int {
		va, vb := values(a), values(b)
		return cmp.Or(slices.Compare(va[:k], vb[:k]), strings.Compare(lastHop(en(a)), lastHop(en(b))),
			slices.Compare(va[k:], vb[k:]), strings.Compare(en(a).Target.ID, en(b).Target.ID))
	})
}

func labelPairs(name string, n int, value func(int) string) []*dto.LabelPair {
	out := make([]*dto.LabelPair, n)
	for i := range out {
		out[i] = &dto.LabelPair{Name: new(name), Value: new(value(i))}
	}
	return out
}

func valueOrder(ps []*dto.LabelPair) []int {
	order := make([]int, len(ps))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(ps[a].GetValue(), ps[b].GetValue()) })
	return order
}

func labelsBefore(name string) int {
	n, _ := slices.BinarySearch(sortedLabelNames, name)
	return n
}

// sortedConstPairs returns the label pairs of constant labels, sorted by
// name.
func sortedConstPairs(l prometheus.Labels) []*dto.LabelPair {
	out := make([]*dto.LabelPair, 0, len(l))
	for _, k := range slices.Sorted(maps.Keys(l)) {
		out = append(out, &dto.LabelPair{Name: new(k), Value: new(l[k])})
	}
	return out
}

// targetLabels are the label pairs of one target's series for one set of
// constant labels. They are never modified once built: every scrape that
// uses them shares them.
type targetLabels struct {
	descs *descSet
	// values are the target label values in the order of
	// sortedLabelNames: the order in which the exposition sorts the
	// target's series.
	values []string
	// pairs are the target's and the constant label pairs, sorted by
	// name.
	pairs []*dto.LabelPair
	// outcomeAt, phaseAt and hopAt are where the outcome, phase and
	// hop_address labels go in pairs.
	outcomeAt, phaseAt, hopAt int
}

func newTargetLabels(d *descSet, t *probe.Target) *targetLabels {
	port := ""
	if t.Port != 0 {
		port = strconv.Itoa(t.Port)
	}
	tl := &targetLabels{descs: d, values: make([]string, len(sortedLabelNames))}
	for i, v := range [...]string{t.Product, t.Flow, t.Source, t.Destination, t.Address(), string(t.Protocol), port, t.Check} {
		tl.values[sortedIndex[i]] = v
	}
	own := make([]dto.LabelPair, len(sortedLabelNames))
	tl.pairs = make([]*dto.LabelPair, 0, len(own)+len(d.constPairs))
	for i := range own {
		own[i].Name, own[i].Value = &sortedLabelNames[i], &tl.values[i]
		tl.pairs = append(tl.pairs, &own[i])
	}
	tl.pairs = append(tl.pairs, d.constPairs...)
	slices.SortFunc(tl.pairs, func(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) })
	at := func(name string) int {
		n, _ := slices.BinarySearchFunc(tl.pairs, name, func(p *dto.LabelPair, name string) int { return strings.Compare(p.GetName(), name) })
		return n
	}
	tl.outcomeAt, tl.phaseAt, tl.hopAt = at("outcome"), at("phase"), at(hopLabel)
	return tl
}

// appendWith appends the target's label pairs with extra inserted at at.
func (tl *targetLabels) appendWith(dst []*dto.LabelPair, extra *dto.LabelPair, at int) []*dto.LabelPair {
	dst = append(dst, tl.pairs[:at]...)
	dst = append(dst, extra)
	return append(dst, tl.pairs[at:]...)
}

// compare orders targets as the exposition orders their series.
func (tl *targetLabels) compare(o *targetLabels) int {
	return slices.Compare(tl.values, o.values)
}

// labelCache holds an entry's targetLabels for the latest constant labels
// it was scraped with. An entry whose target changes is replaced by the
// store, cache and all; a change of constant labels replaces the descSet,
// which the cache compares against.
type labelCache struct {
	p atomic.Pointer[targetLabels]
}

func (c *labelCache) get(d *descSet, t *probe.Target) *targetLabels {
	if c == nil {
		return newTargetLabels(d, t)
	}
	if tl := c.p.Load(); tl != nil && tl.descs == d {
		return tl
	}
	tl := newTargetLabels(d, t)
	c.p.Store(tl)
	return tl
}

// gaugeSeries and counterSeries are prometheus.Metrics with a value and
// prebuilt, sorted label pairs; they live until the end of one scrape.
type gaugeSeries struct {
	desc   *prometheus.Desc
	labels []*dto.LabelPair
	value  float64
	m      dto.Gauge
}

func (s *gaugeSeries) Desc() *prometheus.Desc { return s.desc }

func (s *gaugeSeries) Write(out *dto.Metric) error {
	out.Label, out.Gauge = s.labels, &s.m
	return nil
}

type counterSeries struct {
	desc   *prometheus.Desc
	labels []*dto.LabelPair
	value  float64
	m      dto.Counter
}

func (s *counterSeries) Desc() *prometheus.Desc { return s.desc }

func (s *counterSeries) Write(out *dto.Metric) error {
	out.Label, out.Counter = s.labels, &s.m
	return nil
}

// slab hands out values from chunks, so that a scrape allocates its series
// a thousand at a time. A chunk never grows, so the pointers stay valid.
type slab[T any] struct{ free []T }

func (s *slab[T]) next() *T {
	if len(s.free) == 0 {
		s.free = make([]T, 1024)
	}
	p := &s.free[0]
	s.free = s.free[1:]
	return p
}

// seriesWriter sends per-target series to a Collect channel.
type seriesWriter struct {
	ch       chan<- prometheus.Metric
	gauges   slab[gaugeSeries]
	counters slab[counterSeries]
}

func (w *seriesWriter) gauge(desc *prometheus.Desc, v float64, labels []*dto.LabelPair) {
	s := w.gauges.next()
	s.desc, s.labels, s.value = desc, labels, v
	s.m.Value = &s.value
	w.ch <- s
}

func (w *seriesWriter) counter(desc *prometheus.Desc, v float64, labels []*dto.LabelPair) {
	s := w.counters.next()
	s.desc, s.labels, s.value = desc, labels, v
	s.m.Value = &s.value
	w.ch <- s
}

// row is one entry with a result, as a scrape sees it.
type row struct {
	e      *Entry
	labels *targetLabels
}

func compareRows(a, b row) int {
	return cmp.Or(a.labels.compare(b.labels), cmp.Compare(a.e.Target.ID, b.e.Target.ID))
}

// groups calls f for each run of rows (sorted by compareRows) whose first
// prefix label values are equal.
func groups(rows []row, prefix int, f func([]row)) {
	for i := 0; i < len(rows); {
		j := i + 1
		for j < len(rows) && slices.Equal(rows[j].labels.values[:prefix], rows[i].labels.values[:prefix]) {
			j++
		}
		f(rows[i:j])
		i = j
	}
}
