package report

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/site"
)

// planTarget is the JSON form of a planned target.
type planTarget struct {
	ID              string            `json:"id"`
	Product         string            `json:"product"`
	Flow            string            `json:"flow"`
	Source          string            `json:"source"`
	Destination     string            `json:"destination"`
	Host            string            `json:"host"`
	Port            int               `json:"port,omitempty"`
	Protocol        probe.Protocol    `json:"protocol"`
	Check           string            `json:"check"`
	IntervalSeconds float64           `json:"interval_seconds"`
	TimeoutSeconds  float64           `json:"timeout_seconds"`
	Expect          probe.Expect      `json:"expect"`
	Required        probe.Requirement `json:"required"`
}

var targetHeader = []string{"PRODUCT", "FLOW", "SOURCE", "DESTINATION", "ADDRESS", "PORT", "PROTOCOL", "CHECK", "INTERVAL", "TIMEOUT", "EXPECT", "REQUIRED"}

var skipHeader = []string{"PRODUCT", "FLOW", "SOURCE", "DESTINATION", "HOST", "PORT", "CODE", "REASON"}

var ruleHeader = []string{"ACTION", "SOURCE", "DESTINATION", "PROTOCOL", "PORTS", "PRODUCT", "FLOW", "SOURCE_ROLE", "DESTINATION_ROLE", "REQUIRED", "CONDITION", "PURPOSE", "NOTE"}

func targetRows(ts []probe.Target) [][]string {
	rows := make([][]string, 0, len(ts))
	for _, t := range ts {
		port := ""
		if t.Port != 0 {
			port = strconv.Itoa(t.Port)
		}
		rows = append(rows, []string{t.Product, t.Flow, t.Source, t.Destination, t.Host, port, string(t.Protocol),
			t.Check, t.Interval.String(), t.Timeout.String(), string(t.Expect), string(t.Required)})
	}
	return rows
}

func skipRows(ss []skip) [][]string {
	rows := make([][]string, 0, len(ss))
	for _, s := range ss {
		rows = append(rows, []string{s.Product, s.Flow, s.Source, s.Destination, s.Host, s.Port, string(s.Code), s.Reason})
	}
	return rows
}

func ruleRows(rs []rule) [][]string {
	rows := make([][]string, 0, len(rs))
	for _, r := range rs {
		ports := r.Ports
		if r.ICMPTypes != "" {
			ports = r.ICMPTypes
		}
		rows = append(rows, []string{string(r.Action), r.Source, r.Destination, string(r.Protocol), ports,
			r.Product, r.Flow, r.SourceRole, r.DestinationRole, string(r.Required), r.Condition, r.Purpose, r.Note})
	}
	return rows
}

// WritePlan writes the targets a plan expands to and the flows it skips,
// in a format: table (the default), json, csv (the targets only) or
// markdown.
func WritePlan(w io.Writer, format string, res *planResult) error {
	switch format {
	case "json":
		out := struct {
			Targets []planTarget       `json:"targets"`
			Skipped []skip             `json:"skipped"`
			Printed []site.PrintedFlow `json:"printed,omitempty"`
		}{Targets: []planTarget{}, Skipped: res.Skipped, Printed: res.Printed}
		if out.Skipped == nil {
			out.Skipped = []skip{}
		}
		for _, t := range res.Targets {
			out.Targets = append(out.Targets, planTarget{
				ID: t.ID, Product: t.Product, Flow: t.Flow, Source: t.Source, Destination: t.Destination,
				Host: t.Host, Port: t.Port, Protocol: t.Protocol, Check: t.Check,
				IntervalSeconds: t.Interval.Seconds(), TimeoutSeconds: t.Timeout.Seconds(),
				Expect: t.Expect, Required: t.Required,
			})
		}
		return writeJSON(w, out)
	case "csv":
		// One CSV table: the targets. Skips have their own shape; use json
		// or table to see them.
		return writeCSV(w, lower(targetHeader), targetRows(res.Targets))
	case "markdown":
		if err := writeMarkdownTable(w, targetHeader, targetRows(res.Targets)); err != nil {
			return err
		}
		if len(res.Skipped) > 0 {
			if _, err := fmt.Fprintf(w, "\nNot checked:\n\n"); err != nil {
				return err
			}
			if err := writeMarkdownTable(w, skipHeader, skipRows(res.Skipped)); err != nil {
				return err
			}
		}
		if len(res.Printed) == 0 {
			return nil
		}
		if _, err := fmt.Fprintf(w, "\n%s\n\n", printedTitle); err != nil {
			return err
		}
		return writeMarkdownTable(w, printedHeader, printedRows(res.Printed))
	}
	if err := writeTable(w, targetHeader, targetRows(res.Targets)); err != nil {
		return err
	}
	tail := "\n"
	if len(res.Skipped) > 0 {
		tail = " Not checked:\n\n"
	}
	if _, err := fmt.Fprintf(w, "\n%d targets.%s", len(res.Targets), tail); err != nil {
		return err
	}
	if len(res.Skipped) > 0 {
		if err := writeTable(w, skipHeader, skipRows(res.Skipped)); err != nil {
			return err
		}
	}
	if len(res.Printed) == 0 {
		return nil
	}
	if _, err := fmt.Fprintf(w, "\n%s\n\n", printedTitle); err != nil {
		return err
	}
	return writeTable(w, printedHeader, printedRows(res.Printed))
}

// printedTitle heads the list of planned flows whose vendor document prints
// another transport or port than the one checked.
const printedTitle = "Checked as corrected; the vendor table prints otherwise:"

var printedHeader = []string{"PRODUCT", "FLOW", "PRINTED"}

func printedRows(ps []site.PrintedFlow) [][]string {
	rows := make([][]string, 0, len(ps))
	for _, p := range ps {
		rows = append(rows, []string{p.Product, p.Flow, p.Printed})
	}
	return rows
}

// RequestHeader heads a firewall request with what a change ticket names:
// the site, when and by which flowprobe it was made, from which config,
// for which products.
type RequestHeader struct {
	Site      string    `json:"site"`
	Config    string    `json:"config"`
	Generated time.Time `json:"generated"`
	Version   string    `json:"flowprobe_version"`
	// Products are "name: title (documents)".
	Products []string `json:"products"`
}

func (h RequestHeader) lines() []string {
	site := h.Site
	if site == "" {
		site = "(no site name in the config)"
	}
	out := []string{
		"Firewall request for site " + site,
		"Generated " + h.Generated.UTC().Format(time.RFC3339) + " by flowprobe " + h.Version + " from " + h.Config,
	}
	for _, p := range h.Products {
		out = append(out, "Product "+p)
	}
	return out
}

// notCheckedTitle heads the flows of the request this instance does not
// check.
const notCheckedTitle = "Not checked by this instance (still in the request when not excluded):"

// WriteRules writes the firewall request, one rule per line, in a format:
// table (the default), json, csv or markdown, with its header and the flows
// this instance does not check. CSV gives the header and the flows not
// checked as "#" comment lines around the rules.
func WriteRules(w io.Writer, format string, h RequestHeader, rules []rule, notChecked []skip) error {
	if rules == nil {
		rules = []rule{}
	}
	if notChecked == nil {
		notChecked = []skip{}
	}
	ew := &errWriter{w: w}
	switch format {
	case "json":
		return writeJSON(w, struct {
			RequestHeader
			Rules      []rule `json:"rules"`
			NotChecked []skip `json:"not_checked"`
		}{h, rules, notChecked})
	case "csv":
		for _, l := range h.lines() {
			ew.printf("# %s\n", oneLine(l))
		}
		if ew.err != nil {
			return ew.err
		}
		if err := writeCSV(w, lower(ruleHeader), ruleRows(rules)); err != nil {
			return err
		}
		if len(notChecked) > 0 {
			ew.printf("# %s\n", notCheckedTitle)
		}
		for _, r := range skipRows(notChecked) {
			ew.printf("# %s\n", oneLine(strings.Join(r[:len(r)-1], " ")+": "+r[len(r)-1]))
		}
		return ew.err
	case "markdown":
		l := h.lines()
		ew.printf("# %s\n\n", mdCell(l[0]))
		for _, x := range l[1:] {
			ew.printf("- %s\n", mdCell(x))
		}
		ew.printf("\n")
		if ew.err != nil {
			return ew.err
		}
		if err := writeMarkdownTable(w, ruleHeader, ruleRows(rules)); err != nil {
			return err
		}
		if len(notChecked) == 0 {
			return nil
		}
		ew.printf("\n## %s\n\n", mdCell(notCheckedTitle))
		if ew.err != nil {
			return ew.err
		}
		return writeMarkdownTable(w, skipHeader, skipRows(notChecked))
	}
	for _, l := range h.lines() {
		ew.printf("%s\n", Sanitize(l))
	}
	ew.printf("\n")
	if ew.err != nil {
		return ew.err
	}
	if err := writeTable(w, ruleHeader, ruleRows(rules)); err != nil {
		return err
	}
	if len(notChecked) == 0 {
		return nil
	}
	ew.printf("\n%s\n\n", notCheckedTitle)
	if ew.err != nil {
		return ew.err
	}
	return writeTable(w, skipHeader, skipRows(notChecked))
}

// oneLine keeps a comment on one line.
func oneLine(s string) string { return strings.ReplaceAll(Sanitize(s), "\n", " ") }

// lower is the header of a CSV table: the table's header in lower case.
func lower(header []string) []string {
	out := make([]string, len(header))
	for i, h := range header {
		out[i] = strings.ToLower(h)
	}
	return out
}
