package report

import (
	"io"
	"strconv"
	"strings"
	"time"
)

// WriteMarkdown writes the report as Markdown: a table per product and
// destination, the flows not checked, and the summary.
func (r *Check) WriteMarkdown(w io.Writer) error {
	mw := &errWriter{w: w}
	if h := r.Header; h.Host != "" || !h.Time.IsZero() || h.Config != "" {
		mw.printf("## flowprobe check from %s\n\n", mdCell(h.Host))
		mw.printf("- Run at %s\n- Config: %s\n\n", h.Time.UTC().Format(time.RFC3339), mdCell(h.Config))
	}
	for _, g := range r.groups() {
		mw.printf("### %s → %s\n\n", mdCell(r.title(g.product)), mdCell(g.destination))
		mw.printf("| | flow | source | target | protocol | check | outcome | latency | what it means |\n")
		mw.printf("|---|---|---|---|---|---|---|---|---|\n")
		for _, i := range g.idx {
			t, res := r.targets[i], r.results[i]
			why := mdCell(Sanitize(note(t, res)))
			if !res.Success && res.Err != nil {
				why += " (`" + strings.ReplaceAll(mdCell(Sanitize(res.Err.Error())), "`", "'") + "`)"
			}
			mw.printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", mark(res), mdCell(t.Flow),
				mdCell(t.Source), mdCell(t.Address()), portProto(t), t.Check, res.Outcome,
				latency(res.Duration), why)
		}
		mw.printf("\n")
	}
	if len(r.skipped) > 0 {
		mw.printf("**Not checked from here**\n\n")
		for _, s := range r.skipped {
			mw.printf("- %s `%s`: %s\n", mdCell(s.Product), mdCell(s.Flow), mdCell(s.Reason))
		}
		mw.printf("\n")
	}
	mw.printf("**%s**\n", r.Summary())
	if len(r.traceOrder()) > 0 {
		mw.printf("\n**Where the failing flows stop**\n\n")
		mw.printf("| flow | target | blocked at hop | last hop that answered | verdict |\n|---|---|---|---|---|\n")
		for _, t := range r.targets {
			tr, ok := r.traces[t.ID]
			if !ok {
				continue
			}
			hop := "–"
			if tr.BlockedHop > 0 {
				hop = strconv.Itoa(tr.BlockedHop)
			}
			last := tr.LastHop
			if last == "" {
				last = "–"
			}
			mw.printf("| %s | %s | %s | %s | %s |\n", mdCell(t.Flow), mdCell(t.Address()), hop,
				mdCell(Sanitize(last)), mdCell(Sanitize(tr.Verdict)))
		}
	}
	return mw.err
}

// writeMarkdownTable writes a header and rows as a Markdown table.
func writeMarkdownTable(w io.Writer, header []string, rows [][]string) error {
	var b strings.Builder
	b.WriteString("| " + strings.Join(header, " | ") + " |\n|")
	for range header {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range rows {
		b.WriteString("|")
		for _, c := range r {
			b.WriteString(" " + mdCell(c) + " |")
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
