package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteText writes the report for a terminal: one block per product and
// destination, the flows not checked, and the summary.
func (r *Check) WriteText(w io.Writer) error {
	tw := &errWriter{w: w}
	for _, g := range r.groups() {
		tw.printf("%s → %s\n", r.title(g.product), g.destination)
		width := 0
		for _, i := range g.idx {
			width = max(width, len(r.targets[i].Flow))
		}
		for _, i := range g.idx {
			t, res := r.targets[i], r.results[i]
			opt := ""
			if !res.Success && !r.counts(t) {
				opt = " (optional)"
			}
			tw.printf("  %s %-*s  %-28s %-9s %-6s %-14s %9s%s\n", mark(res), width, t.Flow,
				t.Address(), portProto(t), t.Check, res.Outcome, latency(res.Duration), opt)
			if e := note(t, res); e != "" {
				tw.printf("      %s\n", Sanitize(e))
			}
			if !res.Success && res.Err != nil {
				tw.printf("      error: %s\n", Sanitize(res.Err.Error()))
			}
		}
		tw.printf("\n")
	}
	if len(r.skipped) > 0 {
		tw.printf("Not checked from here:\n")
		for _, s := range r.skipped {
			what := s.Flow
			if s.Host != "" {
				what += " " + s.Host
			}
			if s.Port != "" {
				what += " port " + s.Port
			}
			tw.printf("  - %s %s: %s\n", s.Product, what, s.Reason)
		}
		tw.printf("\n")
	}
	tw.printf("%s\n", r.Summary())
	if tw.err != nil {
		return tw.err
	}
	return writeTraces(w, r.traces, r.traceOrder())
}

// writeTable writes a header and rows as aligned columns, "-" for an
// empty cell.
func writeTable(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			if c == "" {
				c = "-"
			}
			cells[i] = c
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}
