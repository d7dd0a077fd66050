package exporter

import (
	"bufio"
	"cmp"
	"compress/gzip"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/flowprobe/flowprobe/probe"
)

// The text exposition of a large instance is written here directly, not
// through the registry: client_golang turns every series into a dto.Metric,
// hashes and checks it, and encodes it again, which at 50,000 targets costs
// seconds. Each target's label block is rendered once (per set of constant
// labels) and cached on its store entry; a scrape sorts the targets, then
// writes every family's lines from the cached blocks and the latest values
// straight into the response. The result is byte for byte what the
// registry's text encoder writes from Collect (collector_equiv_test.go
// compares them). Other formats (protobuf) go through the registry.

// targetText is a target's rendered label block for one set of constant
// labels: `name="value",...` sorted by name, without braces. It is never
// modified once built.
type targetText struct {
	descs *descSet
	// values are the target label values in the order of
	// sortedLabelNames, for sorting.
	values []string
	text   string
	// outcomeOff, phaseOff and hopOff are the byte offsets at which the
	// outcome, phase and hop_address pairs go; len(text) means at the end.
	outcomeOff, phaseOff, hopOff int
}

var labelValueEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
var helpEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`)

func newTargetText(d *descSet, t *probe.Target) *targetText {
	tl := newTargetLabels(d, t) // the one place that orders the pairs
	tt := &targetText{descs: d, values: tl.values}
	var b strings.Builder
	offsets := make([]int, 0, len(tl.pairs)+1)
	for i, p := range tl.pairs {
		if i > 0 {
			b.WriteByte(',')
		}
		offsets = append(offsets, b.Len())
		b.WriteString(p.GetName())
		b.WriteString(`="`)
		labelValueEscaper.WriteString(&b, p.GetValue())
		b.WriteByte('"')
	}
	offsets = append(offsets, b.Len())
	tt.text = b.String()
	tt.outcomeOff, tt.phaseOff, tt.hopOff = offsets[tl.outcomeAt], offsets[tl.phaseAt], offsets[tl.hopAt]
	return tt
}

// textCache holds an entry's targetText like labelCache holds its pairs.
type textCache struct {
	p atomic.Pointer[targetText]
}

func (c *textCache) get(d *descSet, t *probe.Target) *targetText {
	if c == nil {
		return newTargetText(d, t)
	}
	if tt := c.p.Load(); tt != nil && tt.descs == d {
		return tt
	}
	tt := newTargetText(d, t)
	c.p.Store(tt)
	return tt
}

// textRow is one entry with a result, as a text scrape sees it.
type textRow struct {
	e  *Entry
	tt *targetText
}

// textWriter writes text exposition lines.
type textWriter struct {
	*bufio.Writer
	num []byte
}

func (w *textWriter) family(name, help, typ string) {
	w.WriteString("# HELP ")
	w.WriteString(name)
	w.WriteByte(' ')
	helpEscaper.WriteString(w, help)
	w.WriteString("\n# TYPE ")
	w.WriteString(name)
	w.WriteByte(' ')
	w.WriteString(typ)
	w.WriteByte('\n')
}

// sample writes one series; extra, when not empty, is a rendered pair
// inserted at byte offset at of the label block.
func (w *textWriter) sample(name string, tt *targetText, extra string, at int, v float64) {
	w.WriteString(name)
	w.WriteByte('{')
	switch {
	case extra == "":
		w.WriteString(tt.text)
	case at >= len(tt.text):
		w.WriteString(tt.text)
		w.WriteByte(',')
		w.WriteString(extra)
	default:
		w.WriteString(tt.text[:at])
		w.WriteString(extra)
		w.WriteByte(',')
		w.WriteString(tt.text[at:])
	}
	w.WriteString("} ")
	w.num = strconv.AppendFloat(w.num[:0], v, 'g', -1, 64)
	w.Write(w.num)
	w.WriteByte('\n')
}

// renderedPairs renders pairs as `name="value"`.
func renderedPairs(ps []*dto.LabelPair) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.GetName() + `="` + labelValueEscaper.Replace(p.GetValue()) + `"`
	}
	return out
}

var (
	outcomeText = renderedPairs(outcomeLabel)
	phaseText   = renderedPairs(phaseLabel)
)

// textFamily is one family of the text exposition: its name and how to
// write it.
type textFamily struct {
	name  string
	write func(w *textWriter)
}

// targetFamilies returns the per-target families of rows (sorted) whose
// names want admits.
func (e *Exporter) targetFamilies(d *descSet, rows []textRow, want func(string) bool) []textFamily {
	var out []textFamily
	add := func(f metricFamily, write func(w *textWriter, name string)) {
		if name := f.fqName(); want(name) {
			out = append(out, textFamily{name, func(w *textWriter) {
				w.family(name, f.help, f.typ)
				write(w, name)
			}})
		}
	}
	each := func(v func(en *Entry) float64) func(*textWriter, string) {
		return func(w *textWriter, name string) {
			for _, rw := range rows {
				w.sample(name, rw.tt, "", 0, v(rw.e))
			}
		}
	}
	add(famSuccess, each(func(en *Entry) float64 { return b2f(en.Up) }))
	add(famExpectDeny, each(func(en *Entry) float64 { return b2f(en.Target.Expect == probe.ExpectDeny) }))
	add(famDuration, each(func(en *Entry) float64 { return en.Result.Duration.Seconds() }))
	add(famRuns, each(func(en *Entry) float64 { return float64(en.Runs) }))
	add(famLastRun, each(func(en *Entry) float64 { return unixSeconds(en.Result.Start) }))
	add(famConsecFailures, each(func(en *Entry) float64 { return float64(en.ConsecutiveFailures) }))
	byOutcome := func(v func(en *Entry, o int) float64) func(*textWriter, string) {
		return func(w *textWriter, name string) {
			textGroups(rows, outcomePrefix, func(g []textRow) {
				for _, o := range outcomeOrder {
					for _, rw := range g {
						w.sample(name, rw.tt, outcomeText[o], rw.tt.outcomeOff, v(rw.e, o))
					}
				}
			})
		}
	}
	add(famOutcome, byOutcome(func(en *Entry, o int) float64 { return b2f(int(en.Result.Outcome) == o) }))
	add(famFailures, byOutcome(func(en *Entry, o int) float64 { return float64(en.Failures[o]) }))
	add(famPhase, func(w *textWriter, name string) {
		textGroups(rows, phasePrefix, func(g []textRow) {
			for _, p := range phaseOrder {
				for _, rw := range g {
					if dur := rw.e.Result.Phases[p]; dur > 0 {
						w.sample(name, rw.tt, phaseText[p], rw.tt.phaseOff, dur.Seconds())
					}
				}
			}
		})
	})
	add(famBlockedHop, func(w *textWriter, name string) {
		for _, rw := range rows {
			if rw.e.Trace.Traced() {
				w.sample(name, rw.tt, "", 0, float64(rw.e.Trace.Trace.BlockedHop))
			}
		}
	})
	add(famLastHop, func(w *textWriter, name string) {
		var hops []textRow
		for _, rw := range rows {
			if lastHop(rw.e) != "" {
				hops = append(hops, rw)
			}
		}
		sortByHop(hops, func(r textRow) []string { return r.tt.values }, func(r textRow) *Entry { return r.e })
		for _, rw := range hops {
			w.sample(name, rw.tt, hopLabel+`="`+labelValueEscaper.Replace(lastHop(rw.e))+`"`, rw.tt.hopOff, 1)
		}
	})

	taken := map[string]bool{}
	for _, f := range out {
		taken[f.name] = true
	}
	values := map[string]bool{}
	for _, rw := range rows {
		for n := range rw.e.Result.Values {
			values[n] = true
		}
	}
	for _, n := range slices.Sorted(maps.Keys(values)) {
		if d.value(n) == nil {
			continue
		}
		f := metricFamily{name: n, help: d.help(n), typ: "gauge"}
		if taken[f.fqName()] { // the registry keeps the first family of a name
			continue
		}
		add(f, func(w *textWriter, name string) {
			for _, rw := range rows {
				if v, ok := rw.e.Result.Values[n]; ok {
					w.sample(name, rw.tt, "", 0, v)
				}
			}
		})
	}
	return out
}

// textGroups is groups for textRows.
func textGroups(rows []textRow, prefix int, f func([]textRow)) {
	for i := 0; i < len(rows); {
		j := i + 1
		for j < len(rows) && slices.Equal(rows[j].tt.values[:prefix], rows[i].tt.values[:prefix]) {
			j++
		}
		f(rows[i:j])
		i = j
	}
}

// writeText writes the text exposition of the families want admits: the
// exporter's self metrics gathered from its own registry and the
// per-target families, merged in name order as the registry orders them.
func (e *Exporter) writeText(out io.Writer, want func(string) bool) error {
	d := e.descs.Load()
	entries := e.store.results()
	rows := make([]textRow, len(entries))
	for i := range entries {
		en := &entries[i]
		rows[i] = textRow{e: en, tt: en.text.get(d, &en.Target)}
	}
	slices.SortFunc(rows, func(a, b textRow) int {
		return cmp.Or(slices.Compare(a.tt.values, b.tt.values), cmp.Compare(a.e.Target.ID, b.e.Target.ID))
	})
	fams := e.targetFamilies(d, rows, want)
	self, err := e.self.Gather()
	if err != nil {
		return err
	}
	for _, mf := range self {
		if want(mf.GetName()) {
			fams = append(fams, textFamily{mf.GetName(), func(w *textWriter) { _, _ = expfmt.MetricFamilyToText(w, mf) }})
		}
	}
	slices.SortStableFunc(fams, func(a, b textFamily) int { return strings.Compare(a.name, b.name) })
	w := &textWriter{Writer: bufio.NewWriterSize(out, 64<<10)}
	for _, f := range fams {
		f.write(w)
	}
	return w.Flush()
}

// metricsHandler serves /metrics: the text format written directly, any
// other negotiated format through gatherer. name[] parameters select
// families, and only those are built.
func (e *Exporter) metricsHandler(gatherer prometheus.Gatherer, opts promhttp.HandlerOpts) http.Handler {
	viaRegistry := promhttp.HandlerFor(gatherer, opts)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		format := expfmt.NegotiateAccept(r.Header, expfmt.DefaultAcceptedFormats()...)
		if format.FormatType() != expfmt.TypeTextPlain {
			viaRegistry.ServeHTTP(w, r)
			return
		}
		want := func(string) bool { return true }
		if names := r.URL.Query()["name[]"]; len(names) > 0 {
			want = func(n string) bool { return slices.Contains(names, n) }
		}
		w.Header().Add("Vary", "Accept")
		w.Header().Add("Vary", "Accept-Encoding")
		w.Header().Set("Content-Type", string(format))
		var body io.Writer = w
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			w.Header().Set("Content-Encoding", "gzip")
			gz := gzipWriters.Get().(*gzip.Writer)
			gz.Reset(w)
			defer func() {
				_ = gz.Close()
				gzipWriters.Put(gz)
			}()
			body = gz
		}
		if err := e.writeText(body, want); err != nil {
			e.log.Error("Writing metrics failed", "err", err)
		}
	})
}

// gzipWriters compress scrapes at gzip's best speed: the exposition is
// highly repetitive, so level 1 still shrinks it about twentyfold, at a
// third of the default level's CPU (the largest part of a big scrape's
// cost before this).
var gzipWriters = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	return w
}}

// acceptsGzip reports whether an Accept-Encoding header offers gzip.
func acceptsGzip(h string) bool {
	for part := range strings.SplitSeq(h, ",") {
		enc, params, _ := strings.Cut(part, ";")
		if strings.TrimSpace(enc) == "gzip" && strings.ReplaceAll(strings.TrimSpace(params), " ", "") != "q=0" {
			return true
		}
	}
	return false
}
