package report

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

// Check is the outcome of one `flowprobe check` run.
type Check struct {
	targets      []probe.Target
	results      []probe.Result
	skipped      []skip
	traces       map[string]Trace // by target ID, for --trace
	titles       map[string]string
	failOptional bool
	// Header says where, when and from what the run was made; the
	// Markdown and JUnit reports carry it when set.
	Header RunHeader

	passed, failed, optionalFailed int
}

// RunHeader says where, when and from which config a check ran.
type RunHeader struct {
	Host   string
	Time   time.Time
	Config string // the config file, or "command line"
}

// NewCheck builds the report of a run from the catalog (for product
// titles), the plan and the results, one per planned target in order.
// With failOptional a failing optional flow fails the run too.
func NewCheck(cat *catalog, plan *planResult, results []probe.Result, failOptional bool) *Check {
	r := &Check{targets: plan.Targets, results: results, skipped: plan.Skipped,
		titles: map[string]string{}, failOptional: failOptional}
	for _, p := range cat.Products {
		r.titles[p.Name] = p.Title
	}
	for i, t := range r.targets {
		switch {
		case results[i].Success:
			r.passed++
		case r.counts(t):
			r.failed++
		default:
			r.optionalFailed++
		}
	}
	return r
}

// SetTraces adds the path traces of failed flows, by target ID: every
// format shows them (text after the summary, JSON in each result's trace,
// Markdown in a section of its own, JUnit in the failing case's output).
func (r *Check) SetTraces(traces map[string]Trace) { r.traces = traces }

// traceOrder lists the IDs of the traced targets in report order.
func (r *Check) traceOrder() []string {
	var ids []string
	for _, t := range r.targets {
		if _, ok := r.traces[t.ID]; ok {
			ids = append(ids, t.ID)
		}
	}
	return ids
}

// Failed reports whether the run failed: some flow failed that counts.
func (r *Check) Failed() bool { return r.failed > 0 }

// Write writes the report in a format: text, json, markdown or junit.
func (r *Check) Write(w io.Writer, format string) error {
	switch format {
	case "text":
		return r.WriteText(w)
	case "json":
		return r.WriteJSON(w)
	case "markdown":
		return r.WriteMarkdown(w)
	case "junit":
		return r.WriteJUnit(w)
	}
	return fmt.Errorf("unknown report format %q (known: text, json, markdown, junit)", format)
}

// WriteJSON writes the list of results, one per target (see Result).
func (r *Check) WriteJSON(w io.Writer) error {
	return writeJSONList(w, len(r.targets), func(i int) any {
		rep := NewResult(r.targets[i], r.results[i])
		if tr, ok := r.traces[r.targets[i].ID]; ok {
			rep.Trace = &tr
		}
		return rep
	})
}

// counts reports whether a failure of t fails the run: required and
// conditional flows do (a conditional flow is planned because the site
// configured its condition's role), optional ones only when asked.
func (r *Check) counts(t probe.Target) bool {
	return t.Required != probe.Optional || r.failOptional
}

// Summary is the last line of the report: passed, failed and skipped.
func (r *Check) Summary() string {
	s := fmt.Sprintf("%d passed, %d failed, %d skipped", r.passed, r.failed+r.optionalFailed, len(r.skipped))
	if r.optionalFailed > 0 {
		s += fmt.Sprintf(" (%d of the failures are optional flows and do not fail the run)", r.optionalFailed)
	}
	return s
}

// group is the targets of one product and destination, in report order.
type group struct {
	product, destination string
	idx                  []int
}

func (r *Check) groups() []group {
	var gs []group
	at := map[string]int{}
	for i, t := range r.targets {
		k := t.Product + "\x00" + t.Destination
		g, ok := at[k]
		if !ok {
			g = len(gs)
			at[k] = g
			gs = append(gs, group{product: t.Product, destination: t.Destination})
		}
		gs[g].idx = append(gs[g].idx, i)
	}
	slices.SortStableFunc(gs, func(a, b group) int {
		return strings.Compare(a.product+"\x00"+a.destination, b.product+"\x00"+b.destination)
	})
	return gs
}

// title is a product's title from the catalog, else its name.
func (r *Check) title(product string) string {
	if t := r.titles[product]; t != "" {
		return t
	}
	return product
}

func portProto(t probe.Target) string {
	if t.Port == 0 {
		return string(t.Protocol)
	}
	return fmt.Sprintf("%s/%d", t.Protocol, t.Port)
}

func latency(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	default:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
}

func mark(res probe.Result) string {
	if res.Success {
		return "✓"
	}
	return "✗"
}
